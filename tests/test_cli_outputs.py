"""Issue 16, cases 8-11: the command line's outputs, `send` and `evaluate` refuse bad input
with one line and exit 2, and never leave half a set of outputs.

The analysis itself is replaced by a fixed result (the io tests' five-vertebra slice), so
that these tests exercise only the way out.
"""

from __future__ import annotations

import json
import math
import os
import resource
import stat
import sys
from pathlib import Path

import pytest
from pydicom import dcmread

from spineviewer.cli import main
from tests.io.conftest import make_result, make_source_dataset
from tests.unprivileged import run_unprivileged

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def result(tmp_path, monkeypatch):
    src = tmp_path / "study" / "IM0008"
    src.parent.mkdir()
    make_source_dataset().save_as(src, enforce_file_format=True)
    r = make_result(src, dcmread(src))
    from spineviewer.core import pipeline

    monkeypatch.setattr(pipeline, "analyze_study", lambda *a, **k: r)
    return r


def _analyze(tmp_path, capsys, *extra):
    code = main(["analyze", str(tmp_path / "study"), "-q", *map(str, extra)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return code, err


def _one_line_refusal(code, err, *words):
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("spineviewer: error:"), err
    for w in words:
        assert w in err[0], err


def test_all_outputs_written_and_umask_respected(result, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        code, err = _analyze(tmp_path, capsys, "--csv", tmp_path / "o/r.csv", "--json",
                             tmp_path / "o/r.json", "--pdf", tmp_path / "o/r.pdf",
                             "--dicom-out", tmp_path / "o/dcm")
    finally:
        os.umask(old)
    assert code == 0, err
    files = sorted(p for p in (tmp_path / "o").rglob("*") if p.is_file())
    assert [p.name for p in files] == ["morphometry_sr.dcm", "overlay_pr.dcm", "report_pdf.dcm",
                                       "vertebrae_seg.dcm", "r.csv", "r.json", "r.pdf"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}  # was 0600 (case 8)
    assert json.loads((tmp_path / "o/r.json").read_text())["patient"]["id"] == "PID-4711"


def test_same_path_twice_is_refused(result, tmp_path, capsys):  # case 8
    code, err = _analyze(tmp_path, capsys, "--csv", tmp_path / "x", "--pdf", tmp_path / "x")
    _one_line_refusal(code, err, "same file")
    assert not (tmp_path / "x").exists()


def test_force_never_replaces_a_special_file(result, tmp_path, capsys):  # case 8
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, err = _analyze(tmp_path, capsys, "--csv", fifo, "--force")
    _one_line_refusal(code, err, "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_one_failing_output_writes_none(result, tmp_path, capsys):  # case 8
    result.source_slice_file = str(tmp_path / "gone.dcm")  # the DICOM objects cannot be built
    (tmp_path / "r.csv").write_text("earlier results\n")
    code, err = _analyze(tmp_path, capsys, "--csv", tmp_path / "r.csv", "--json",
                         tmp_path / "r.json", "--dicom-out", tmp_path / "dcm", "--force")
    _one_line_refusal(code, err)
    assert (tmp_path / "r.csv").read_text() == "earlier results\n"
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "dcm").exists()


def test_csv_pointing_at_a_folder(result, tmp_path, capsys):  # case 9
    (tmp_path / "d").mkdir()
    _one_line_refusal(*_analyze(tmp_path, capsys, "--csv", tmp_path / "d"), "is a folder")


def test_dicom_out_pointing_at_a_file(result, tmp_path, capsys):  # case 9
    (tmp_path / "f").write_text("x")
    _one_line_refusal(*_analyze(tmp_path, capsys, "--dicom-out", tmp_path / "f", "--force"),
                      "not a folder")
    assert (tmp_path / "f").read_text() == "x"


def test_long_file_name(result, tmp_path, capsys):  # case 9: 245 characters
    name = tmp_path / ("r" * 241 + ".csv")
    code, err = _analyze(tmp_path, capsys, "--csv", name)
    assert code == 0 and name.is_file(), err
    code, err = _analyze(tmp_path, capsys, "--pdf", tmp_path / ("p" * 300 + ".pdf"))
    _one_line_refusal(code, err, "name too long")


def test_file_too_large(result, tmp_path, capsys):  # case 9: EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, hard))
    try:
        code, err = _analyze(tmp_path, capsys, "--csv", tmp_path / "r.csv", "--pdf",
                             tmp_path / "r.pdf")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    _one_line_refusal(code, err, "File too large")
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "r.pdf").exists()


def test_read_only_output_folder(result, tmp_path):  # case 9
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    saved = tmp_path / "result.json"
    saved.write_text(result.to_json())
    driver = ("import sys\n"
              "import spineviewer.core.pipeline as p\n"
              "from spineviewer.core.results import load_json\n"
              "r = load_json(sys.argv[1])\n"
              "p.analyze_study = lambda *a, **k: r\n"
              "from spineviewer.cli import main\n"
              "sys.exit(main(sys.argv[2:]))\n")
    proc = run_unprivileged([sys.executable, "-c", driver, str(saved), "analyze",
                             str(tmp_path / "study"), "-q", "--csv", str(ro / "r.csv")],
                            env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"],
                                 "HOME": str(tmp_path)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "Permission denied" in lines[0] and not any(ro.iterdir())


@pytest.mark.parametrize("option", [("--timeout", "-1"), ("--timeout", "nan"),
                                    ("--timeout", "inf"), ("--port", "70000"),
                                    ("--port", "0")])
def test_send_validates_port_and_timeout(tmp_path, capsys, option):  # case 9
    args = {"--port": "104", "--timeout": "5"}
    args[option[0]] = option[1]
    code = main(["send", str(tmp_path), "--host", "127.0.0.1", "--aet", "PACS",
                 *[x for kv in args.items() for x in kv]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and option[0] in err[0], err


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("column", ["AH_mm", "fracture"])
def test_evaluate_refuses_non_finite_values(tmp_path, capsys, value, column):  # case 9
    header = "study_uid,level,AH_mm,PH_mm,fracture\n"
    rows = ["1.2,L1,20,22,0", "1.2,L2,21,22,0", "1.2,L3,20,22,1"]
    (tmp_path / "res.csv").write_text(header + "\n".join(rows) + "\n")
    bad = {"AH_mm": f"1.2,L3,{value},22,1", "fracture": f"1.2,L3,20,22,{value}"}[column]
    (tmp_path / "ref.csv").write_text(header + "\n".join([*rows[:2], bad]) + "\n")
    code = main(["evaluate", "--reference", str(tmp_path / "ref.csv"), "--results",
                 str(tmp_path / "res.csv"), "--bootstrap", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "ref.csv" in err[0], err


def _secrets(result) -> list[str]:
    return ["Muster", "Erika", "PID-4711", "19480312", "1948-03-12", "20240102", "2024-01-02",
            "reader1", "healed endplate", result.study_uid, result.series_uid,
            result.sop_instance_uid, result.source_path, "IM0008"]


def test_deidentify_covers_json_pdf_and_csv(result, tmp_path, capsys, monkeypatch):  # case 11
    from tests.io.conftest import pdf_text

    result.warnings.append(f"slice file {result.source_slice_file} has no SliceLocation")
    key_file = tmp_path / "project.key"
    key_file.write_bytes(b"0123456789abcdef-project\n")
    out = tmp_path / "o"
    code, err = _analyze(tmp_path, capsys, "--deidentify", "--pseudonym-key-file", key_file,
                         "--csv", out / "r.csv", "--json", out / "r.json", "--pdf",
                         out / "r.pdf")
    assert code == 0, err
    texts = {"csv": (out / "r.csv").read_text(), "json": (out / "r.json").read_text(),
             "pdf": pdf_text((out / "r.pdf").read_bytes(), tmp_path)}
    for kind, text in texts.items():  # before: the JSON and PDF kept all of this
        leaked = [s for s in _secrets(result) if s and s in text]
        assert leaked == [], (kind, leaked)
    from spineviewer.io.deidentify import Pseudonymizer

    key = Pseudonymizer.from_key_file(key_file)
    assert key.uid(result.study_uid) in texts["csv"] and key.uid(result.study_uid) in texts["json"]
    data = json.loads(texts["json"])
    assert "project key" in data["parameters"]["deidentification"]
    assert [v["AH_mm"] for v in data["vertebrae"]] == [v.AH_mm for v in result.vertebrae]
    # without a key: a random one, said so; pseudonyms differ from the project key's
    monkeypatch.delenv("SPINEVIEWER_PSEUDONYM_KEY", raising=False)
    code = main(["analyze", str(tmp_path / "study"), "--deidentify", "--csv",
                 str(tmp_path / "r2.csv")])
    err = capsys.readouterr().err
    assert code == 0 and "random key made for this export" in err
    assert key.uid(result.study_uid) not in (tmp_path / "r2.csv").read_text()


def test_deidentify_refusals(result, tmp_path, capsys):  # case 11
    code, err = _analyze(tmp_path, capsys, "--deidentify", "--dicom-out", tmp_path / "d")
    _one_line_refusal(code, err, "cannot be de-identified")
    (tmp_path / "short.key").write_bytes(b"short")
    code, err = _analyze(tmp_path, capsys, "--deidentify", "--pseudonym-key-file",
                         tmp_path / "short.key", "--csv", tmp_path / "r.csv")
    _one_line_refusal(code, err, "at least 16")
    assert not (tmp_path / "d").exists() and not (tmp_path / "r.csv").exists()


def test_evaluate_outputs_one_path_or_a_folder_refused(tmp_path, capsys):
    header = "study_uid,level,AH_mm,PH_mm,fracture\n"
    rows = "1.2,L1,20,22,0\n1.2,L2,21,22,0\n1.2,L3,20,22,1\n"
    for name in ("ref.csv", "res.csv"):
        (tmp_path / name).write_text(header + rows)
    base = ["evaluate", "--reference", str(tmp_path / "ref.csv"), "--results",
            str(tmp_path / "res.csv"), "--bootstrap", "0"]
    for extra in (["--json", str(tmp_path / "x"), "--pdf", str(tmp_path / "x")],
                  ["--json", str(tmp_path)]):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ("same file" in err[0] or "is a folder" in err[0]), err
    assert not (tmp_path / "x").exists()
