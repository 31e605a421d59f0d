"""CSV of the core contract, optionally de-identified (no names, IDs or dates; keyed UIDs).

The columns are `spineviewer.core.results.CSV_COLUMNS`. De-identification (`deidentify`)
keeps the measurements and calls, replaces study/series/instance UIDs with keyed pseudonyms
and drops the patient block, dates, user names, file paths and free-text comments.
"""

from __future__ import annotations

from pathlib import Path

from spineviewer.core.results import CSV_COLUMNS, StudyResult, atomic_write_text, rows_to_csv
from spineviewer.io.deidentify import (  # noqa: F401 - re-exported for callers
    Pseudonymizer,
    deidentify_csv_text,
    deidentify_result,
)


def result_csv(result: StudyResult, *, deidentify: bool = False,
               pseudonymizer: Pseudonymizer | None = None) -> str:
    """The CSV contract text for ``result`` (de-identified on request).

    Parameters
    ----------
    result : StudyResult
    deidentify : bool
        Replace the study and series UIDs with keyed pseudonyms (`deidentify`).
    pseudonymizer : Pseudonymizer, optional
        Default: `Pseudonymizer.for_export` (the environment's key, else a random one).

    Returns
    -------
    str
        Header plus one row per vertebra; the fracture column is the final (overridden) call.
    """
    if deidentify:
        return deidentified_csv(deidentify_result(result,
                                                  pseudonymizer or Pseudonymizer.for_export()))
    return result.to_csv()


#: The CSV columns of a de-identified export: no free-text reader comment (the columns that
#: `deidentify_csv_text` keeps of the contract).
DEIDENTIFIED_COLUMNS = tuple(c for c in CSV_COLUMNS if c != "reader_comment")


def deidentified_csv(deidentified: StudyResult) -> str:
    """CSV text of an already de-identified result (`DEIDENTIFIED_COLUMNS`)."""
    return rows_to_csv(deidentified.csv_rows(), DEIDENTIFIED_COLUMNS)


def write_csv(result: StudyResult, path: str | Path, *, deidentify: bool = False,
              pseudonymizer: Pseudonymizer | None = None) -> Path:
    """Write `result_csv` atomically to ``path`` and return the path."""
    path = Path(path)
    atomic_write_text(path, result_csv(result, deidentify=deidentify,
                                       pseudonymizer=pseudonymizer))
    return path
