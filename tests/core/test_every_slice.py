"""Whole field of view and per-vertebra measurement slices (issue 13, parts 1-2), on phantoms
run through the shipped ONNX model."""

from pathlib import Path

import numpy as np
import pytest

from spineviewer.core.pipeline import analyze_study
from spineviewer.core.preprocess import preprocess_volume, whole_fov_shape
from spineviewer.core.slices import midplane_position
from spineviewer.synth.params import PhantomParams
from spineviewer.synth.study import write_study

ROOT = Path(__file__).resolve().parents[2]
HAS_MODEL = any((ROOT / "models").glob("*.onnx"))
needs_model = pytest.mark.skipif(not HAS_MODEL, reason="no shipped ONNX model in models/")
LUMBAR = ("L1", "L2", "L3", "L4", "L5")


def test_whole_fov_grid_covers_the_slice_and_maps_back_exactly():
    shape = whole_fov_shape((512, 512), (0.744, 0.744), spacing_mm=0.6, stride=16)
    assert shape == (640, 640)  # 381 mm / 0.6 mm = 635 px, padded to a multiple of 16
    assert whole_fov_shape((1024, 1024), (0.6, 0.6), stride=16) == (848, 848)  # capped 500 mm
    vol = np.random.default_rng(0).uniform(0, 3000, (3, 512, 400)).astype(np.float32)
    x, tr = preprocess_volume(vol, (0.744, 0.744), None, shape=None)
    assert x.shape == (3, 640, 496)
    assert 634 <= tr.in_view().any(axis=1).sum() <= 637  # 381 mm of image, the rest padding
    corners = np.array([[0, 0], [511, 399], [255.5, 199.5]], float)
    np.testing.assert_allclose(tr.to_source(tr.to_model(corners)), corners, atol=1e-9)
    inside = tr.to_model(corners[:2])
    assert (inside >= -0.5).all() and (inside <= np.array(tr.model_shape) - 0.5).all()


def test_midplane_is_the_vertex_of_the_section_profile_even_when_the_series_ends():
    # sections of a body centred at stack position 6.8 (x0); the series stops at 8
    def disc(area):
        m = np.zeros((60, 60), bool)
        m[:max(1, round(area / 50)), :50] = True
        return m

    track = {p: disc(2500 * np.sqrt(max(0.02, 1 - ((p - 6.8) / 5.0) ** 2))) for p in range(9)}
    assert midplane_position(track) == 7
    # the plain area-weighted centre would be biased towards the long side
    pos = np.array(sorted(track))
    areas = np.array([track[p].sum() for p in pos], float)
    keep = areas >= 0.5 * areas.max()
    assert round((pos[keep] * areas[keep]).sum() / areas[keep].sum()) < 7


@needs_model
@pytest.mark.parametrize("fov_mm", [280.0, 381.0, 450.0])
def test_every_body_fully_in_view_is_outlined_and_measured(tmp_path, fov_mm):
    # The paper's fixed 448 x 320 crop at 0.6 mm covers 269 mm: at 381 mm it cut T12.
    truth = write_study(tmp_path, 1300 + int(fov_mm), params=PhantomParams(), n_slices=3,
                        matrix=(512, 512), pixel_spacing_mm=fov_mm / 512, distractors=False)
    result = analyze_study(truth.dicom_dir, threads=2)
    got = {v.level: v for v in result.vertebrae}
    for t in truth.vertebrae:                     # T12..L5, all fully inside the image
        v = got.get(t.level)
        assert v is not None, (fov_mm, t.level, list(got))
        assert "partial_body" not in v.flags, (fov_mm, t.level)
        assert len(v.outline_rc) >= 8 and v.AH_mm is not None, (fov_mm, t.level)
        assert abs(v.PH_mm - t.PH_mm) < 3.0, (fov_mm, t.level, v.PH_mm, t.PH_mm)


@needs_model
@pytest.mark.parametrize("kind", ["off_centre", "scoliotic"])
def test_each_body_is_measured_on_its_own_mid_sagittal_slice(tmp_path, kind):
    params = (PhantomParams(midline_offset_mm=7.5) if kind == "off_centre"
              else PhantomParams(scoliosis_mm=9.0))
    truth = write_study(tmp_path, 77 if kind == "off_centre" else 78, params=params,
                        n_slices=11, distractors=False)
    want = {lv: truth.mid_slice_by_level[lv] for lv in LUMBAR}
    assert len(set(want.values()) | {truth.slice_index}) > 1  # the centre slice is wrong
    result = analyze_study(truth.dicom_dir, threads=2)
    got = {v.level: v.measurement_slice for v in result.vertebrae if v.level in LUMBAR}
    assert set(got) == set(LUMBAR)
    exact = sum(got[lv] == want[lv] for lv in LUMBAR)
    assert all(abs(got[lv] - want[lv]) <= 1 for lv in LUMBAR), (got, want)
    assert exact >= 3, (got, want)
    sop = {v.level: v.measurement_sop_uid for v in result.vertebrae}
    assert all(sop[lv] for lv in LUMBAR)
    # the paper's centre mode measures everything on the centre slice
    centre = analyze_study(truth.dicom_dir, threads=2, slice_mode="centre")
    assert {v.measurement_slice for v in centre.vertebrae} == {truth.slice_index}
    assert sum(want[lv] == truth.slice_index for lv in LUMBAR) < exact


def test_unknown_slice_mode_is_a_clear_error(tmp_path):
    from spineviewer.core import errors

    with pytest.raises(errors.SpineViewerError, match="slice mode"):
        analyze_study(tmp_path, slice_mode="diagonal")


@needs_model
def test_most_deformed_slice_and_its_call_are_recorded(tmp_path):
    params = PhantomParams(deformities={"L2": ("wedge", 2)}, midline_offset_mm=10.0)
    truth = write_study(tmp_path, 91, params=params, n_slices=11, distractors=False)
    result = analyze_study(truth.dicom_dir, threads=2)
    v = result.vertebra("L2")
    assert v.fracture and v.deformity == "wedge"
    assert v.most_deformed_slice is not None and v.most_deformed_call.startswith("wedge grade")
    for u in result.vertebrae:
        if u.AH_mm is not None:
            track_ok = abs(u.most_deformed_slice - u.measurement_slice) <= 2
            assert track_ok and u.most_deformed_call, u.level
    healthy = [u for u in result.vertebrae if u.level in ("L3", "L4", "L5")]
    assert all(u.most_deformed_call == "no fracture" for u in healthy)
    assert all("off_centre_deformity" not in u.flags for u in healthy)


def test_boxed_iou_gives_the_iou_of_the_whole_masks():
    from spineviewer.core.slices import BoxedIoU, _iou

    rng = np.random.default_rng(5)
    masks = [np.zeros((60, 50), bool) for _ in range(6)]
    for m in masks[:4]:
        r, c = rng.integers(0, 40, 2)
        m[r:r + rng.integers(3, 20), c:c + rng.integers(3, 20)] = True
        m &= rng.uniform(size=m.shape) > 0.2
    masks[4][55:, 45:] = True            # far from the others: no overlap
    iou = BoxedIoU()                      # masks[5] stays empty
    for _ in range(2):                    # the second round from its cache
        for a in masks:
            for b in masks:
                assert iou(a, b) == _iou(a, b)
    assert iou(masks[0], masks[0]) == 1.0 and iou(masks[5], masks[5]) == 0.0


@needs_model
def test_a_one_image_series_has_every_name_up_for_review(tmp_path):
    from spineviewer.core.slices import NAMES_UNCHECKED

    t = write_study(tmp_path / "one", 4242, n_slices=1, distractors=False)
    r = analyze_study(t.dicom_dir, threads=2)
    assert {"few_slices", NAMES_UNCHECKED} <= set(r.flags)
    assert len(r.vertebrae) >= 5
    assert all({"label_uncertain", "needs_review"} <= set(v.flags) for v in r.vertebrae)
    assert any("confirm the level names" in w for w in r.warnings)
