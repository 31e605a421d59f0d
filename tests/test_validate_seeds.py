"""benchmarks/validate.py keeps test cohorts honest: a test seed is used once, never one that
development has looked at."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def validate(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("validate_bench",
                                                  ROOT / "benchmarks" / "validate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    seeds = tmp_path / "seeds.json"
    shutil.copy(ROOT / "docs" / "seeds.json", seeds)
    monkeypatch.setattr(mod, "SEEDS_FILE", seeds)
    return mod


def test_registry_lists_the_development_seeds(validate):
    used = validate.used_seeds(validate.load_seeds())
    assert {913577, 606060, 616161, 777124} <= used
    assert 913577 + 100000 in used                      # its site population too


def test_a_test_seed_is_used_once(validate):
    validate.register_seed(424242, "test", "release x")
    with pytest.raises(ValueError, match="never used"):
        validate.register_seed(424242, "test", "again")
    with pytest.raises(ValueError, match="never used"):
        validate.register_seed(913577, "test", "a development seed")
    validate.register_seed(777124, "development", "again")           # development may repeat
    reg = json.loads(validate.SEEDS_FILE.read_text())
    assert sum(e["seed"] == 777124 for e in reg["seeds"]) == 1


def test_cli_refuses_a_used_test_seed_before_generating_anything(validate, tmp_path, capsys):
    rc = validate.main(["--purpose", "test", "--seed", "913577", "--n", "1",
                        "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "never used" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_development_run_refuses_a_test_seed(validate, tmp_path, capsys):
    validate.register_seed(515151, "test", "release y")
    rc = validate.main(["--seed", "515151", "--n", "1", "--out", str(tmp_path / "out")])
    assert rc == 2 and "test seed" in capsys.readouterr().err


def test_mask_quality_counts_a_confident_call_from_a_failed_mask(validate, tmp_path):
    """The validation's mask audit: an outline far from its truth body with a fracture call
    and no review flag is reported as a confident call from a failed mask; a flagged one is
    not."""
    from types import SimpleNamespace

    import numpy as np
    from skimage.measure import find_contours

    from spineviewer.synth.params import INSTANCE_IDS
    from spineviewer.synth.study import write_study

    truth = write_study(tmp_path / "s", 5, n_slices=3, distractors=False)
    inst = np.load(tmp_path / "s" / "truth_labels.npy")

    def vert(v, outline, fracture=False, flags=()):
        return SimpleNamespace(level=v.level, corners_rc=dict(v.corners_rc), outline_rc=outline,
                               measurement_slice=truth.slice_index, flags=list(flags),
                               fracture=fracture, deformity="wedge" if fracture else "none",
                               genant_grade=2 if fracture else 0)

    verts = []
    for k, v in enumerate(truth.vertebrae):
        outline = max(find_contours((inst == INSTANCE_IDS[v.level]).astype(float), 0.5),
                      key=len)
        if k == 1:      # the upper half of the body only: Dice about 0.67, called, unflagged
            outline = outline[outline[:, 0] <= np.median(outline[:, 0])]
            verts.append(vert(v, [tuple(p) for p in outline], fracture=True))
        elif k == 2:    # the same failure, flagged for review
            outline = outline[outline[:, 0] <= np.median(outline[:, 0])]
            verts.append(vert(v, [tuple(p) for p in outline], fracture=True,
                              flags=["segmentation_uncertain", "needs_review"]))
        else:
            verts.append(vert(v, [tuple(p) for p in outline]))
    rows = validate.mask_quality_rows(SimpleNamespace(vertebrae=verts), truth)
    assert len(rows) == len(truth.vertebrae)
    bad = sorted(r["level"] for r in rows if r["dice"] < validate.FAILED_MASK_DICE)
    assert bad == sorted(v.level for v in truth.vertebrae[1:3])
    assert min(r["dice"] for r in rows if r["level"] not in bad) > 0.95
    text = "\n".join(validate.mask_quality_lines(rows))
    assert "Failed masks (Dice < 0.80): 2" in text
    assert "flagged for review or not assessable 1, unflagged 1;" in text
    assert "a fracture called from an unflagged failed mask: 1." in text
    assert f"{truth.vertebrae[1].level} (Dice" in text


def test_false_alarms_are_counted_with_their_review_flags(validate):
    """The false-alarm audit: fracture calls on healthy truth vertebrae (paired by vertebra),
    flagged or not; a call on a truly fractured vertebra is no false alarm."""
    from types import SimpleNamespace

    truth = SimpleNamespace(out_dir="/x/study_007",
                            params=SimpleNamespace(deformities={"L1": ("wedge", 2)}))

    def vert(level, fracture, flags=()):
        return SimpleNamespace(level=level, fracture=fracture, flags=list(flags),
                               deformity="crush" if fracture else "none",
                               genant_grade=1 if fracture else 0)

    result = SimpleNamespace(vertebrae=[
        vert("L1", True), vert("L2", True, ["endplate_from_mask", "needs_review"]),
        vert("L3", True, ["mild_deformity"]), vert("L4", False)])
    matched = {"L1": "L1", "L2": "L2", "L3": "L3", "L4": "L4"}
    rows = validate.false_alarm_rows(result, truth, matched)
    assert sorted(r["level"] for r in rows) == ["L2", "L3"]
    text = "\n".join(validate.false_alarm_lines(rows))
    assert "healthy truth vertebrae: 2; flagged for review 1, unflagged 1." in text
    assert "unflagged false alarm: study_007 L3 (crush 1; flags mild_deformity)" in text
