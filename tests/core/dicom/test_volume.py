"""Tests of core.dicom.volume: rescale, slice order, headers, unreadable files."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from spineviewer.core.dicom.index import scan_folder, slice_normal
from spineviewer.core.dicom.volume import load_series
from spineviewer.core.errors import UnreadableSeries


def _series(tmp_path, factory, **kw):
    spec = factory.SeriesSpec(**kw)
    paths = factory.write_series(tmp_path, spec)
    return scan_folder(tmp_path).series[0], spec, paths


def test_rescale_slope_intercept_applied(tmp_path, factory):
    series, spec, _ = _series(tmp_path, factory, slope=2.5, intercept=-100.0, n_slices=3)
    vol = load_series(series)
    assert vol.pixels.dtype == np.float32 and vol.pixels.shape == (3, 64, 48)
    stored = factory.default_pixels(1, spec).astype(np.float64)
    k = int(np.argmin(np.abs(vol.pixels[:, 0, 0] - (100 * 1 * 2.5 - 100))))
    np.testing.assert_allclose(vol.pixels[k], stored * 2.5 - 100.0, atol=1e-3)


def test_slices_sorted_along_normal_not_instance_number(tmp_path, factory):
    series, _, paths = _series(tmp_path, factory, n_slices=6,
                                  shuffle_instance_numbers=True, file_names="uid")
    vol = load_series(series)
    along = vol.image_positions @ slice_normal(vol.image_orientation)
    assert np.all(np.diff(along) > 0)
    np.testing.assert_allclose(np.diff(along), 4.0, atol=1e-3)  # 4 mm slices, no gap
    # slice i was written with stored value 100*i at (0, 0) at position -4*(i-3) along x;
    # the normal of IOP (0,1,0, 0,0,-1) is -x, so ascending order along it is i = 0..5
    np.testing.assert_array_equal(vol.pixels[:, 0, 0], [0, 100, 200, 300, 400, 500])
    assert vol.pixel_spacing_mm == (0.6, 0.6)
    assert [str(p) for p in paths] == vol.files  # written in ascending order along the normal
    assert vol.centre_index == 2  # six slices: centre-left
    np.testing.assert_array_equal(vol.slice(2), vol.pixels[2])


def test_headers_kept_without_pixel_data(tmp_path, factory):
    series, spec, _ = _series(tmp_path, factory, n_slices=5)
    vol = load_series(series)
    assert vol.centre_index == 2
    assert len(vol.datasets) == 5 and len(set(vol.sop_instance_uids)) == 5
    ds = vol.centre_dataset
    assert "PixelData" not in ds
    assert ds.SOPInstanceUID == vol.sop_instance_uids[2]
    assert ds.SeriesInstanceUID == spec.series_uid and ds.Rows == 64


def _corrupt(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_unreadable_file_beside_good_ones_is_skipped(tmp_path, factory, caplog):
    series, _, _ = _series(tmp_path, factory, n_slices=7)
    _corrupt(tmp_path / series.files[0].split("/")[-1])  # index taken before the damage
    with caplog.at_level(logging.WARNING, logger="spineviewer.core.dicom.volume"):
        vol = load_series(series)
    assert vol.n_slices == 6
    assert [f for f, _ in vol.skipped] == [series.files[0]]
    assert any("skipping unreadable file" in r.message for r in caplog.records)
    assert vol.files[vol.centre_index] == series.files[3]  # still the series' centre


def test_skipped_edge_file_does_not_move_the_centre(tmp_path, factory):
    series, _, _ = _series(tmp_path, factory, n_slices=7)
    _corrupt(tmp_path / series.files[6].split("/")[-1])
    vol = load_series(series)
    assert vol.n_slices == 6
    assert vol.centre_index == 3 and vol.files[3] == series.files[3]


def test_unreadable_centre_slice_raises(tmp_path, factory):
    series, _, _ = _series(tmp_path, factory, n_slices=7)
    _corrupt(tmp_path / series.files[3].split("/")[-1])
    with pytest.raises(UnreadableSeries, match="the centre slice of series '#1 T2 SAG'"):
        load_series(series)


def test_mostly_unreadable_series_raises(tmp_path, factory):
    series, _, _ = _series(tmp_path, factory, n_slices=6)
    for k in (0, 1, 5):  # the centre (index 2) stays readable
        f = series.files[k]
        _corrupt(tmp_path / f.split("/")[-1])
    with pytest.raises(UnreadableSeries, match="3 of 6 files"):
        load_series(series)


def test_enhanced_multiframe_series(tmp_path, factory):
    spec = factory.SeriesSpec(description="T2W_TSE", vendor="PHILIPS", n_slices=5, slope=2.0,
                              intercept=1.0, te_ms=120.0, tr_ms=3800.0)
    factory.write_enhanced(tmp_path / "enh.dcm", spec)
    series = scan_folder(tmp_path).series[0]
    assert (series.n_slices, series.n_frames, series.plane) == (5, 5, "sagittal")
    assert (series.echo_time_ms, series.repetition_time_ms) == (120.0, 3800.0)
    assert series.pixel_spacing_mm == (0.6, 0.6) and series.slice_thickness_mm == 4.0
    vol = load_series(series)
    assert vol.pixels.shape == (5, 64, 48)
    # frames were stored in reverse; sorted along the normal they read 0, 100, ... again
    np.testing.assert_allclose(vol.pixels[:, 0, 0], np.array([0, 100, 200, 300, 400]) * 2 + 1)
    along = vol.image_positions @ slice_normal(vol.image_orientation)
    assert np.all(np.diff(along) > 0)
