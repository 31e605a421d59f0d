"""The one way out: every output of a result (PDF, CSV, JSON, DICOM) for the CLI and the GUI.

Everything is built in memory first; then `staging.write_all` writes the whole set or, on a
refusal or a failed write, none of it (staging folder inside each target folder, moved into
place only when all files are written). Two outputs with the same path, a folder or a
special file as a target, and an existing file without ``overwrite`` are refused before the
(slow) build. ``deidentify`` applies to every output that can be de-identified (PDF, CSV,
JSON); DICOM objects belong to the patient's study and are refused with it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from spineviewer.core.results import StudyResult
from spineviewer.io.deidentify import Pseudonymizer, deidentify_result
from spineviewer.io.staging import ExportExists, OutputError, check_targets, write_all

__all__ = ["ExportExists", "OutputError", "export_all", "plan_outputs", "planned_paths",
           "write_dicom_outputs", "write_files", "write_outputs"]

logger = logging.getLogger(__name__)

#: Output names inside ``out_dir``.
PDF_NAME = "report.pdf"
CSV_NAME = "results.csv"
JSON_NAME = "results.json"
DICOM_DIR = "dicom"
DICOM_NAMES = {"seg": "vertebrae_seg.dcm", "sr": "morphometry_sr.dcm", "pr": "overlay_pr.dcm",
               "pdf": "report_pdf.dcm"}
DEIDENTIFY_DICOM_REFUSED = ("DICOM outputs go into the patient's study (for PACS) and cannot be "
                            "de-identified; export DICOM without --deidentify, separately")


def _dicom_paths(folder: Path, with_pdf: bool) -> dict[str, Path]:
    keys = ("seg", "sr", "pr", "pdf") if with_pdf else ("seg", "sr", "pr")
    return {k: folder / DICOM_NAMES[k] for k in keys}


def _names(stem: str) -> tuple[str, str, str]:
    """PDF, CSV and JSON file names; ``<stem>_report.pdf`` ... with a stem (export_naming)."""
    if not stem:
        return PDF_NAME, CSV_NAME, JSON_NAME
    return f"{stem}_{PDF_NAME}", f"{stem}_{CSV_NAME}", f"{stem}_{JSON_NAME}"


def planned_paths(out_dir: str | Path, *, pdf: bool = True, csv: bool = True,
                  dicom: bool = False, json: bool = False, stem: str = "") -> list[Path]:
    """The files `export_all` writes for these options, in writing order."""
    out = Path(out_dir)
    paths = [out / name for name, on in zip(_names(stem), (pdf, csv, json)) if on]
    if dicom:
        paths += list(_dicom_paths(out / DICOM_DIR, pdf).values())
    return paths


def write_files(contents: dict[Path, bytes | str], *, overwrite: bool = False) -> list[Path]:
    """Write prepared contents all-or-nothing (`staging.write_all`)."""
    paths = write_all(contents, overwrite=overwrite)
    for p in paths:
        logger.info("wrote %s", p)
    return paths


def write_outputs(result: StudyResult, *, pdf: str | Path | None = None,
                  csv: str | Path | None = None, json: str | Path | None = None,
                  dicom_dir: str | Path | None = None, dicom_pdf: bool = True,
                  deidentify: bool = False, overwrite: bool = False,
                  paper: str = "A4", pseudonymizer: Pseudonymizer | None = None) -> list[Path]:
    """Write the requested outputs of ``result``, all of them or none.

    Parameters
    ----------
    result : StudyResult
        The (possibly corrected) result.
    pdf, csv, json : path, optional
        Report, per-vertebra CSV and full JSON result files.
    dicom_dir : path, optional
        Folder for the SEG, the TID 1500 SR, the presentation state and (``dicom_pdf``) the
        report as Encapsulated PDF, all new series in the source study (needs
        ``result.source_slice_file``).
    deidentify : bool
        PDF, CSV and JSON without names, IDs, dates or paths, UIDs pseudonymised
        (`deidentify`). Refused together with ``dicom_dir``.
    overwrite : bool
        Replace existing regular files (never folders or special files).
    paper : {"A4", "Letter"}
    pseudonymizer : Pseudonymizer, optional
        The UID key for ``deidentify``; default `Pseudonymizer.for_export` (the environment's
        key, else a random key for this export, noted in the JSON).

    Returns
    -------
    list of Path
        The files written: pdf, csv, json, then the DICOM files.

    Raises
    ------
    OutputError
        A refused target or a failed write, as one line; nothing was written.
    """
    plan = plan_outputs(pdf=pdf, csv=csv, json=json, dicom_dir=dicom_dir, dicom_pdf=dicom_pdf,
                        deidentify=deidentify, overwrite=overwrite)  # fail fast, before building
    shown = result
    if deidentify:
        shown = deidentify_result(result, pseudonymizer or Pseudonymizer.for_export())
    payload = _build(result, shown, parts=set(plan), paper=paper)
    contents = {p: payload[k] for k, p in plan.items()}
    return write_files(contents, overwrite=overwrite)


def plan_outputs(*, pdf: str | Path | None = None, csv: str | Path | None = None,
                 json: str | Path | None = None, dicom_dir: str | Path | None = None,
                 dicom_pdf: bool = True, deidentify: bool = False,
                 overwrite: bool = False) -> dict[str, Path]:
    """Check the requested targets (see `write_outputs`) without writing anything.

    Returns
    -------
    dict
        ``{"pdf" | "csv" | "json" | "dicom_<seg|sr|pr|pdf>": Path}`` in writing order.

    Raises
    ------
    OutputError
        DICOM with ``deidentify``, a folder or special file as a target, the DICOM folder
        being a file, two outputs with one path, or an existing file without ``overwrite``.
    """
    if dicom_dir and deidentify:
        raise OutputError(DEIDENTIFY_DICOM_REFUSED)
    plan = {k: Path(v) for k, v in (("pdf", pdf), ("csv", csv), ("json", json)) if v}
    if dicom_dir:
        folder = Path(dicom_dir)
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder} is not a folder; DICOM outputs go into a folder")
        plan.update({f"dicom_{k}": p for k, p in _dicom_paths(folder, dicom_pdf).items()})
    check_targets(list(plan.values()), overwrite)
    return plan


def export_all(result: StudyResult, out_dir: str | Path, *, pdf: bool = True, csv: bool = True,
               dicom: bool = False, json: bool = False, deidentify: bool = False,
               overwrite: bool = False, paper: str = "A4", stem: str = "") -> list[Path]:
    """Write the chosen outputs of ``result`` into ``out_dir`` (the GUI's export).

    Files ``report.pdf``, ``results.csv``, ``results.json`` (``<stem>_report.pdf`` ... with
    a ``stem``, see `export_naming.export_stem`) and ``dicom/`` (see `write_outputs`; the
    Encapsulated PDF only with ``pdf``). Returns the files written, in `planned_paths`
    order; nothing is written when anything fails.
    """
    out = Path(out_dir)
    pdf_name, csv_name, json_name = _names(stem)
    return write_outputs(result, pdf=out / pdf_name if pdf else None,
                         csv=out / csv_name if csv else None,
                         json=out / json_name if json else None,
                         dicom_dir=out / DICOM_DIR if dicom else None, dicom_pdf=pdf,
                         deidentify=deidentify, overwrite=overwrite, paper=paper)


def write_dicom_outputs(result: StudyResult, out_dir: str | Path, *, overwrite: bool = False,
                        include_pdf: bool = True, paper: str = "A4") -> list[Path]:
    """Only the DICOM objects into ``out_dir`` (`vertebrae_seg.dcm`, ... `report_pdf.dcm`)."""
    return write_outputs(result, dicom_dir=out_dir, dicom_pdf=include_pdf, overwrite=overwrite,
                         paper=paper)


def _build(result: StudyResult, shown: StudyResult, *, parts: set[str],
           paper: str) -> dict[str, bytes | str]:
    """All output contents by key (pdf, csv, json, dicom_<key>), before touching the disk.

    ``shown`` is ``result`` or its de-identified copy (PDF, CSV, JSON); the DICOM objects
    and the report's image always come from ``result``.
    """
    out: dict[str, bytes | str] = {}
    pdf_bytes = None
    dicom = [k[len("dicom_"):] for k in parts if k.startswith("dicom_")]
    if "pdf" in parts or "pdf" in dicom:
        from spineviewer.io.report_figure import load_slice_pixels
        from spineviewer.io.report_pdf import build_report_pdf

        # the de-identified copy has no file path: render the pixels of the original slice
        image = load_slice_pixels(result.source_slice_file)
        pdf_bytes = build_report_pdf(shown, paper=paper, image=image)
        out["pdf"] = pdf_bytes
    if "csv" in parts:
        from spineviewer.io.csv_export import deidentified_csv

        out["csv"] = shown.to_csv() if shown is result else deidentified_csv(shown)
    if "json" in parts:
        out["json"] = shown.to_json()
    if dicom:
        from spineviewer.io.dicom_common import dataset_bytes
        from spineviewer.io.dicom_out import build_dicom_outputs

        objects = build_dicom_outputs(result, pdf_bytes if "pdf" in dicom else None)
        out.update({f"dicom_{k}": dataset_bytes(ds) for k, ds in objects.items()})
    return out

