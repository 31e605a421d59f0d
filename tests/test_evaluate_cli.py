"""`spineviewer evaluate` end to end: files in, JSON/PDF out, one-line errors."""

import json

import pytest

from spineviewer.core.results import CSV_COLUMNS, rows_to_csv
from spineviewer.evaluate_cli import main


def _write(path, rows, columns):
    path.write_text(rows_to_csv(rows, tuple(columns)), encoding="utf-8")
    return str(path)


def _inputs(tmp_path):
    ref, app = [], []
    for s in range(6):
        for i, lv in enumerate(("L1", "L2", "L3", "L4", "L5")):
            frac = int(i == s % 5)
            ref.append({"study_uid": f"S{s}", "level": lv, "fracture": frac,
                        "AH_mm": 20.0 + i + 0.1 * s, "vendor": "GE" if s < 3 else "Siemens"})
            app.append({"study_uid": f"S{s}", "level": lv, "fracture": frac if s else 0,
                        "AH_mm": 20.5 + i + 0.1 * s + 0.05 * ((s + i) % 3)})
    return (_write(tmp_path / "ref.csv", ref, ["study_uid", "level", "AH_mm", "fracture", "vendor"]),
            _write(tmp_path / "app.csv", app, CSV_COLUMNS))


def test_cli_writes_json_and_pdf(tmp_path, capsys):
    ref, app = _inputs(tmp_path)
    out_json, out_pdf = tmp_path / "e.json", tmp_path / "e.pdf"
    rc = main(["--reference", ref, "--results", app, "--json", str(out_json), "--pdf",
               str(out_pdf), "--bootstrap", "50"])
    assert rc == 0
    summary = json.loads(out_json.read_text())
    g = summary["fracture"]["all"]
    assert (g["tp"], g["fp"], g["tn"], g["fn"]) == (5, 0, 24, 1)
    assert set(summary["fracture"]["by_vendor"]) == {"GE", "Siemens"}
    assert summary["measurements"]["AH_mm"]["bias"] == pytest.approx(0.55, abs=0.05)
    assert out_pdf.read_bytes().startswith(b"%PDF")
    out = capsys.readouterr().out
    assert "sensitivity 0.833" in out and "AH_mm" in out


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    _ref, app = _inputs(tmp_path)
    assert main(["--reference", str(tmp_path / "missing.csv"), "--results", app]) == 2
    err = capsys.readouterr().err.strip()
    assert "reference file not found" in err and "\n" not in err
    other = _write(tmp_path / "o.csv", [{"study_uid": "X", "level": "L1", "fracture": 1}],
                   ["study_uid", "level", "fracture"])
    assert main(["--reference", other, "--results", app]) == 2
    assert "no vertebra is in both files" in capsys.readouterr().err
    assert main(["--results", app]) == 2  # argparse usage error
