"""The phantom's sagittal STIR series: fat suppressed, acute fractures bright, same position."""

from __future__ import annotations

import numpy as np
import pytest

from spineviewer.core.dicom.index import scan_folder
from spineviewer.core.dicom.select import choose_series
from spineviewer.core.dicom.volume import load_series
from spineviewer.synth.params import PhantomParams
from spineviewer.synth.study import load_truth, main, write_study

SEED = 11


def _params(acute=("L1",)) -> PhantomParams:
    return PhantomParams(deformities={"L1": ("wedge", 2), "L3": ("biconcave", 2)},
                         acute_levels=acute)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("stir")
    truth = write_study(out, SEED, n_slices=5, params=_params(), stir=True)
    index = scan_folder(out / "dicom")
    return truth, index


def _series(index, number):
    return next(s for s in index.series if s.series_number == number)


def _body_mean(volume, corners_rc, scale):
    """Mean of the centre slice inside the quadrilateral of truth corners (T2 pixels) scaled
    to this series' pixels."""
    from matplotlib.path import Path as MplPath

    img = volume.pixels[volume.centre_index]
    quad = np.array([corners_rc[k] for k in ("AS", "PS", "PI", "AI")]) * scale
    centre = quad.mean(axis=0)
    quad = centre + (quad - centre) * 0.7  # stay clear of the cortical rim
    rr, cc = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    inside = MplPath(quad).contains_points(np.c_[rr.ravel(), cc.ravel()]).reshape(img.shape)
    return float(img[inside].mean())


def test_without_stir_there_is_no_stir_series(tmp_path):
    truth = write_study(tmp_path, SEED, n_slices=5, params=_params(), distractors=False)
    assert truth.stir_series_uid == ""
    assert [s.series_number for s in scan_folder(tmp_path / "dicom").series] == [3]


def test_stir_series_headers_and_geometry(study):
    truth, index = study
    stir = _series(index, 5)
    t2 = _series(index, 3)
    assert stir.series_uid == truth.stir_series_uid
    assert stir.plane == "sagittal"
    assert 150 <= stir.inversion_time_ms <= 180
    assert stir.pixel_spacing_mm == (0.8, 0.8)
    # same field of view: rows * spacing agree within one pixel
    assert abs(stir.rows * 0.8 - t2.rows * t2.pixel_spacing_mm[0]) <= 0.8
    v5, v3 = load_series(stir), load_series(t2)
    np.testing.assert_allclose(v5.image_positions[v5.centre_index],
                               v3.image_positions[v3.centre_index], atol=1e-3)
    # the T2 is still the series analysed
    assert choose_series(index).series.series_uid == truth.t2_series_uid


def test_truth_records_acute_fractures_only(study, tmp_path):
    truth, _ = study
    acute = {v.level: v.acute for v in truth.vertebrae}
    assert acute["L1"] is True and acute["L3"] is False and acute["L2"] is False
    back = load_truth(truth.out_dir)
    assert back.stir_series_uid == truth.stir_series_uid
    assert back.params.acute_levels == ("L1",)
    assert {v.level: v.acute for v in back.vertebrae} == acute


def test_acute_fracture_is_bright_on_stir_and_dark_on_t1(study):
    truth, index = study
    corners = {v.level: v.corners_rc for v in truth.vertebrae}
    stir = load_series(_series(index, 5))
    t1 = load_series(_series(index, 2))
    s = 0.6 / 0.8
    acute, chronic, normal = (_body_mean(stir, corners[lv], s) for lv in ("L1", "L3", "L2"))
    assert acute > 2.5 * normal  # oedema
    assert chronic < 1.3 * normal  # an old fracture has no oedema
    assert acute > 2.0 * chronic
    t1_acute, t1_normal = (_body_mean(t1, corners[lv], 1.0) for lv in ("L1", "L2"))
    assert t1_acute < 0.75 * t1_normal


def test_cli_writes_stir(tmp_path, capsys):
    assert main([str(tmp_path), "--n", "1", "--seed", "3", "--stir", "--no-distractors"]) == 0
    truth = load_truth(tmp_path / "study_000")
    assert truth.stir_series_uid
    numbers = sorted(s.series_number for s in scan_folder(tmp_path / "study_000" / "dicom").series)
    assert numbers == [3, 5]
