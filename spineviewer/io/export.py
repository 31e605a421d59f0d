"""Write a result's outputs (PDF report, CSV, DICOM SEG/SR/Encapsulated PDF) into a folder.

Everything is built in memory first, existing files are checked before anything is written,
and each file is written atomically (temporary file, then rename): an export either writes
all its files or, on a refusal, none of them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import StudyResult, atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

#: Output names inside ``out_dir``.
PDF_NAME = "report.pdf"
CSV_NAME = "results.csv"
DICOM_DIR = "dicom"
DICOM_NAMES = {"seg": "vertebrae_seg.dcm", "sr": "morphometry_sr.dcm", "pr": "overlay_pr.dcm",
               "pdf": "report_pdf.dcm"}


class ExportExists(SpineViewerError):
    """An output file exists and overwriting was not allowed."""


def planned_paths(out_dir: str | Path, *, pdf: bool = True, csv: bool = True,
                  dicom: bool = False) -> list[Path]:
    """The files `export_all` writes for these options, in writing order."""
    out = Path(out_dir)
    paths = []
    if pdf:
        paths.append(out / PDF_NAME)
    if csv:
        paths.append(out / CSV_NAME)
    if dicom:
        keys = ("seg", "sr", "pr", "pdf") if pdf else ("seg", "sr", "pr")
        paths += [out / DICOM_DIR / DICOM_NAMES[k] for k in keys]
    return paths


def _check_free(paths: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for p in paths:
        if p.exists():
            raise ExportExists(f"{p} already exists; choose another folder or allow "
                               "overwriting (--force)")


def write_files(contents: dict[Path, bytes | str], *, overwrite: bool = False) -> list[Path]:
    """Write prepared contents atomically, after checking that none would overwrite a file.

    Parameters
    ----------
    contents : dict of Path -> bytes or str
        Text is written as UTF-8.
    overwrite : bool
        Otherwise the first existing path raises `ExportExists` before anything is written.

    Returns
    -------
    list of Path, in the order of ``contents``.
    """
    paths = list(contents)
    _check_free(paths, overwrite)
    for path in paths:
        data = contents[path]
        if isinstance(data, str):
            atomic_write_text(path, data)
        else:
            atomic_write_bytes(path, data)
        logger.info("wrote %s", path.name)
    return paths


def export_all(result: StudyResult, out_dir: str | Path, *, pdf: bool = True, csv: bool = True,
               dicom: bool = False, deidentify: bool = False, overwrite: bool = False,
               paper: str = "A4") -> list[Path]:
    """Write the chosen outputs of ``result`` into ``out_dir``.

    Parameters
    ----------
    result : StudyResult
        The (possibly corrected) result.
    out_dir : str or Path
        Created when missing.
    pdf, csv, dicom : bool
        Which outputs: ``report.pdf``, ``results.csv``, and ``dicom/`` with the SEG, the
        TID 1500 SR, a presentation state with the overlays and (when ``pdf``) the report as
        Encapsulated PDF, all new series in the source study (needs
        ``result.source_slice_file``).
    deidentify : bool
        CSV and PDF without names, IDs or dates, UIDs replaced by stable hashes. DICOM
        objects belong to the patient's study and cannot be de-identified: combining both
        is refused.
    overwrite : bool
        Replace existing files; otherwise an existing file raises `ExportExists` and
        nothing is written.
    paper : {"A4", "Letter"}

    Returns
    -------
    list of Path
        The files written, in `planned_paths` order.
    """
    if dicom and deidentify:
        raise SpineViewerError("DICOM outputs go into the patient's study and cannot be "
                               "de-identified; export DICOM without --deidentify")
    paths = planned_paths(out_dir, pdf=pdf, csv=csv, dicom=dicom)
    _check_free(paths, overwrite)  # before the (slow) build: fail fast
    payload = _build(result, pdf=pdf, csv=csv, dicom=dicom, deidentify=deidentify, paper=paper)
    return write_files({p: payload[p.name] for p in paths}, overwrite=overwrite)


def _build(result: StudyResult, *, pdf: bool, csv: bool, dicom: bool, deidentify: bool,
           paper: str) -> dict[str, bytes | str]:
    """All output contents by file name, before anything touches the disk."""
    from spineviewer.io.csv_export import deidentify_result

    shown = deidentify_result(result) if deidentify else result
    out: dict[str, bytes | str] = {}
    pdf_bytes = None
    if pdf:
        from spineviewer.io.report_figure import load_slice_pixels
        from spineviewer.io.report_pdf import build_report_pdf

        # the de-identified copy has no file path: render the pixels of the original slice
        image = load_slice_pixels(result.source_slice_file)
        pdf_bytes = build_report_pdf(shown, paper=paper, image=image)
        out[PDF_NAME] = pdf_bytes
    if csv:
        from spineviewer.io.csv_export import result_csv

        out[CSV_NAME] = result_csv(result, deidentify=deidentify)
    if dicom:
        from spineviewer.io.dicom_out import build_dicom_outputs, dataset_bytes

        for key, ds in build_dicom_outputs(result, pdf_bytes).items():
            out[DICOM_NAMES[key]] = dataset_bytes(ds)
    return out
