"""Outputs of an analysis: reports, tables, DICOM objects, and sending them to a PACS.

- `export` is the one way out for the CLI and the GUI: report.pdf, results.csv, results.json
  and dicom/ (SEG, TID 1500 SR, presentation state, Encapsulated PDF), all or nothing through
  `staging` (refusing overwrites unless asked, special files and duplicate paths always);
- `report_pdf` (layout), `report_figure` (key image), `report_text` (plain-language lines);
- `csv_export` (core CSV contract), `deidentify` (PDF/CSV/JSON without PHI; UIDs
  pseudonymised with HMAC-SHA256 under a project or per-export key);
- `dicom_out` (highdicom SEG and TID 1500 SR; entry points for all DICOM objects),
  `dicom_pr` (presentation state with the overlays), `encapsulated_pdf` (pydicom),
  `dicom_common` (coded concepts incl. the private scheme ``99SPV``, source slice helpers);
- `pacs` (pynetdicom C-ECHO / C-STORE) and `send_cli` (``spineviewer send``), which sends
  only files that `dicom_integrity` finds complete;
- `evaluation_report` (the validation PDF of ``spineviewer evaluate``).

Depends on `spineviewer.core` only, never on the GUI.
"""
