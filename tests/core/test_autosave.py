"""Issue 16 case 7: autosave files are validated, bad ones kept aside and reported, and a
failure to save never undoes a correction."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from spineviewer.core import autosave, review
from tests.core.test_review import make_result, stub_remeasure
from tests.unprivileged import run_unprivileged

ROOT = Path(__file__).resolve().parents[2]
UID = "1.2.3.4"


@pytest.fixture(autouse=True)
def user_data(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "userdata"))
    return tmp_path / "userdata"


def _autosave_file(study: Path) -> Path:
    return study / ".spineviewer" / f"{UID}.autosave.json"


def _write(study: Path, text: str) -> Path:
    p = _autosave_file(study)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def _good_json(study: Path) -> str:
    return make_result(study).to_json()


def _malformed(study: Path, how: str) -> str:
    d = json.loads(_good_json(study))
    if how == "vertebra_null":
        d["vertebrae"][1] = None
    elif how == "corner_text":
        d["vertebrae"][0]["corners_rc"]["AS"] = "up"
    elif how == "height_text":
        d["vertebrae"][2]["AH_mm"] = "tall"
    elif how == "vertebrae_dict":
        d["vertebrae"] = {"L1": {}}
    elif how == "spacing_missing":
        del d["pixel_spacing_mm"]
    return json.dumps(d)


@pytest.mark.parametrize("content", ["null", "[]", "{}", "42", '"text"', "{not json",
                                     "vertebra_null", "corner_text", "height_text",
                                     "vertebrae_dict", "spacing_missing", "truncated"])
def test_invalid_autosave_is_kept_aside_and_reported(tmp_path, content):
    if content == "truncated":
        text = _good_json(tmp_path)[:-200]
    elif content in ("vertebra_null", "corner_text", "height_text", "vertebrae_dict",
                     "spacing_missing"):
        text = _malformed(tmp_path, content)
    else:
        text = content
    path = _write(tmp_path, text)
    loaded = autosave.load(tmp_path, UID)  # before the fix: TypeError/AttributeError, or silence
    assert loaded.result is None and len(loaded.problems) == 1
    kept = list(path.parent.glob(f"{UID}.autosave.corrupt-*.json"))
    assert len(kept) == 1 and kept[0].read_text() == text and not path.exists()
    assert str(kept[0]) in loaded.problems[0] and "\n" not in loaded.problems[0]
    assert review.restore(tmp_path, UID) is None  # the old entry point is as safe


def test_valid_autosave_is_used_and_an_older_bad_one_reported(tmp_path, user_data):
    res = make_result(tmp_path)
    good = autosave.save(res)
    assert good.path == _autosave_file(tmp_path) and not good.fallback
    bad = autosave.fallback_autosave_dir(tmp_path.resolve()) / f"{UID}.autosave.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[]")
    os.utime(bad, (1, 1))
    loaded = autosave.load(tmp_path, UID)
    assert loaded.result is not None and loaded.path == good.path
    assert len(loaded.problems) == 1 and "corrupt-" in loaded.problems[0]


def test_autosave_of_another_series_is_not_used(tmp_path):
    _write(tmp_path, _good_json(tmp_path).replace(UID, "9.9.9"))
    loaded = autosave.load(tmp_path, UID)
    assert loaded.result is None and "9.9.9" in loaded.problems[0]


def test_unwritable_everywhere_keeps_the_edit_in_force(tmp_path, monkeypatch):
    (tmp_path / ".spineviewer").write_text("a file where the folder should be")
    (tmp_path / "nodata").write_text("x")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "nodata"))
    s = review.ReviewSession(make_result(tmp_path), remeasure=stub_remeasure)
    s.move_corner("L1", "AS", (40.0, 30.0))  # before the fix: raised, edit reported lost
    assert s.result.vertebra("L1").corners_rc["AS"] == (40.0, 30.0) and s.result.edits
    assert "could not be saved" in s.save_error and s.last_autosave_path is None
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "userdata"))
    s.undo()  # the next successful save clears the error
    assert s.save_error == "" and s.last_save.fallback


def test_read_only_study_folder_falls_back_to_the_user_folder(tmp_path, user_data):
    study = tmp_path / "study"
    study.mkdir()
    (tmp_path / "r.json").write_text(make_result(study).to_json())
    study.chmod(0o555)
    code = ("import sys\n"
            "from spineviewer.core import autosave\n"
            "from spineviewer.core.results import load_json\n"
            "saved = autosave.save(load_json(sys.argv[1]))\n"
            "print(saved.fallback, saved.path, saved.reason)\n")
    proc = run_unprivileged([sys.executable, "-c", code, str(tmp_path / "r.json")],
                            env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"],
                                 "XDG_DATA_HOME": str(user_data), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    fallback, path, reason = proc.stdout.split(" ", 2)
    assert fallback == "True" and path.startswith(str(user_data / "spineviewer" / "autosave"))
    assert "Permission denied" in reason
    assert autosave.load(study, UID).result is not None
