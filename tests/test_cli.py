"""The command line: exit codes and one-line messages for bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from spineviewer.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "spineviewer.cli", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return proc


@pytest.mark.parametrize("setup", ["missing", "empty", "not_dicom", "truncated"])
def test_bad_input_exits_2_with_one_line(tmp_path, setup):
    target = tmp_path / "study"
    if setup != "missing":
        target.mkdir()
    if setup == "not_dicom":
        (target / "notes.txt").write_text("hello")
        (target / "image.dcm").write_bytes(b"\x00" * 50)
    if setup == "truncated":
        (target / "x.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00")
    proc = _run(["analyze", str(target), "-q"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("spineviewer: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_sagittal_t2_exits_2(tmp_path, capsys):
    sys.path.insert(0, str(ROOT))
    from tests.dicom_factory import SeriesSpec, write_series

    write_series(tmp_path / "s", SeriesSpec(description="T1 sag", te_ms=10,
                                            tr_ms=500))
    code = main(["analyze", str(tmp_path / "s"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "sagittal T2" in err and "Traceback" not in err


def test_truth_mask_free_analyze_writes_outputs_and_refuses_overwrite(tmp_path, capsys):
    pytest.importorskip("spineviewer.synth.study")
    if not any((ROOT / "models").glob("*.onnx")):
        pytest.skip("no shipped ONNX model in models/")
    from spineviewer.synth.study import write_study

    truth = write_study(tmp_path / "st", 5, n_slices=5, distractors=True)
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    args = ["analyze", str(truth.dicom_dir), "-q", "--csv", str(out_csv), "--json", str(out_json)]
    assert main(args) == 0
    header = out_csv.read_text().splitlines()[0]
    assert header.startswith("study_uid,series_uid,level,AH_mm")
    assert main(args) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_version_names_the_app_and_the_shipped_model(capsys):
    import json

    from spineviewer import __version__

    cards = sorted((ROOT / "models").glob("*.json"))
    if not any((ROOT / "models").glob("*.onnx")) or not cards:
        pytest.skip("no shipped ONNX model in models/")
    card = json.loads(cards[0].read_text())
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == f"spineviewer {__version__} (model {card['name']} {card['version']})"


def test_version_without_a_model_says_so(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SPINEVIEWER_MODEL", str(tmp_path / "absent.onnx"))
    with pytest.raises(SystemExit):
        main(["--version"])
    out = capsys.readouterr().out
    assert out.startswith("spineviewer ") and "no model:" in out and "absent.json" in out


def test_gui_is_the_default_command(capsys):
    """Options the top-level parser does not know go to ``gui`` (here its --help)."""
    with pytest.raises(SystemExit) as exc:
        main(["--light", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: spineviewer gui") and "--exit-after-analysis" in out


def test_series_that_is_not_t2_needs_force_series(tmp_path, capsys, monkeypatch):
    """Issue 15: `analyze --series <T1>` is refused with the reason; --force-series analyses it
    and the output carries the warning."""
    import numpy as np

    from spineviewer.core import pipeline

    sys.path.insert(0, str(ROOT))
    from tests.dicom_factory import typical_study, write_study

    specs = typical_study()
    write_study(tmp_path / "s", specs)
    real = pipeline.analyze_study
    monkeypatch.setattr(pipeline, "analyze_study", lambda path, **kw: real(
        path, masks_override=np.zeros((specs[1].rows, specs[1].cols), np.uint8), **kw))
    args = ["analyze", str(tmp_path / "s"), "-q", "--series", specs[1].series_uid]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not a sagittal T2" in err and "TE 10 ms < 80 ms" in err and "--force-series" in err
    out_json = tmp_path / "r.json"
    assert main([*args, "--force-series", "--json", str(out_json)]) == 0
    assert '"unsuitable_series"' in out_json.read_text()
    assert main([*args, "--force-series"]) == 0
    assert capsys.readouterr().out.startswith("WARNING: the analysed series is unsuitable")
