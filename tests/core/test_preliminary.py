"""The early centre-slice result of the per-vertebra analysis (``analyze_study(preliminary=)``,
issue 15: the viewer shows results within 1 s while every slice is still being segmented)."""

from pathlib import Path

import numpy as np
import pytest

from spineviewer.core import errors
from spineviewer.core.pipeline import (
    PRELIMINARY_FLAG,
    PRELIMINARY_WARNING,
    analyze_study,
)
from spineviewer.core.segment import SegmentationModel
from spineviewer.synth.params import PhantomParams
from spineviewer.synth.study import write_study

ROOT = Path(__file__).resolve().parents[2]
HAS_MODEL = any((ROOT / "models").glob("*.onnx"))
needs_model = pytest.mark.skipif(not HAS_MODEL, reason="no shipped ONNX model in models/")
N_SLICES = 5


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    params = PhantomParams(deformities={"L2": ("wedge", 2)}, midline_offset_mm=3.0)
    return write_study(tmp_path_factory.mktemp("prelim"), 1515, params=params,
                       n_slices=N_SLICES, distractors=False)


@pytest.fixture(scope="module")
def study_dirs(study, tmp_path_factory):
    """The study as written (16-bit) and as a PACS's 8-bit export (its own intensity scale)."""
    from spineviewer.synth.eight_bit import export_study

    out = tmp_path_factory.mktemp("prelim8") / "s8"
    export_study(study.out_dir, out)
    return {"16-bit": study.dicom_dir, "8-bit": out / "dicom"}


def comparable(result) -> dict:
    d = result.to_dict()
    d.pop("timings_s", None)
    return d


def unmarked(result) -> dict:
    d = comparable(result)
    d["parameters"].pop("preliminary")
    d["flags"].remove(PRELIMINARY_FLAG)
    d["warnings"].remove(PRELIMINARY_WARNING)
    return d


@needs_model
@pytest.mark.parametrize("bits", ["16-bit", "8-bit"])
def test_early_result_is_the_centre_analysis_and_the_final_result_is_unchanged(
        study_dirs, monkeypatch, bits):
    folder = study_dirs[bits]
    plain = analyze_study(folder, threads=2)
    centre = analyze_study(folder, threads=2, slice_mode="centre")
    segmented: list[int] = []  # slices per ONNX call
    real = SegmentationModel.run_batch

    def counting(self, x, session=None):
        segmented.append(len(x))
        return real(self, x, session)

    monkeypatch.setattr(SegmentationModel, "run_batch", counting)
    early = []
    final = analyze_study(folder, threads=2, preliminary=early.append)
    assert len(early) == 1
    pre = early[0]
    # marked, and says so in every output
    assert pre.preliminary and not final.preliminary
    assert PRELIMINARY_FLAG in pre.flags and pre.warnings[0] == PRELIMINARY_WARNING
    # centre semantics: the centre slice's analysis, the same as the centre mode's
    assert pre.parameters["slice_mode"] == "centre"
    assert {v.measurement_slice for v in pre.vertebrae} == {centre.slice_index}
    assert unmarked(pre) == comparable(centre)
    # the final result is today's per-vertebra result, each slice segmented once
    assert final.parameters["slice_mode"] == "per-vertebra"
    assert comparable(final) == comparable(plain)
    assert sum(segmented) == N_SLICES and segmented[0] == 1
    assert len({v.measurement_slice for v in final.vertebrae}) > 1  # really per vertebra


@needs_model
def test_cancel_after_the_early_result_stops_the_full_analysis(study):
    early = []
    with pytest.raises(errors.Cancelled):
        analyze_study(study.dicom_dir, threads=2, preliminary=early.append,
                      cancel=lambda: bool(early))
    assert len(early) == 1


def test_no_early_result_without_the_network_or_in_centre_mode(study):
    labels = np.load(Path(study.out_dir) / "truth_labels.npy")
    early = []
    result = analyze_study(study.dicom_dir, masks_override=labels, preliminary=early.append)
    assert early == [] and not result.preliminary
    if HAS_MODEL:
        analyze_study(study.dicom_dir, threads=2, slice_mode="centre", preliminary=early.append)
        assert early == []


def test_a_preliminary_result_is_never_corrected(tmp_path):
    from spineviewer.core import review
    from spineviewer.core.pipeline import mark_preliminary
    from tests.core.test_review import make_result, stub_remeasure

    r = make_result(tmp_path)
    mark_preliminary(r)
    s = review.ReviewSession(r, remeasure=stub_remeasure)
    for edit in (lambda: s.override_call("L2", True, "looks broken"),
                 lambda: s.shift_levels(1),
                 lambda: s.move_corner("L2", "AS", (10.0, 10.0))):
        with pytest.raises(errors.SpineViewerError, match="preliminary"):
            edit()
    assert not r.edits and not s.can_undo and s.last_autosave_path is None
    assert [v.level for v in r.vertebrae] == ["L1", "L2", "L3", "L4", "L5"]
