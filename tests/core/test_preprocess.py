"""Tests of core.preprocess: centre slice, 0.6 mm resampling, orientation, crop, intensity,
and the exact mapping back to source pixels."""

from __future__ import annotations

import numpy as np
import pytest

from spineviewer.core.preprocess import (
    SliceTransform,
    canonical_orientation,
    centre_slice_index,
    preprocess_slice,
)

SAG = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # cols posterior, rows inferior: canonical already


@pytest.mark.parametrize("n,expected", [(1, 0), (2, 0), (3, 1), (6, 2), (15, 7), (16, 7)])
def test_centre_slice_index_is_centre_left(n, expected):
    assert centre_slice_index(n) == expected


def test_centre_slice_index_rejects_empty():
    with pytest.raises(ValueError):
        centre_slice_index(0)


def _disc_image(shape, spacing_mm, radius_mm, centre_rc=None, value=2000.0):
    """Disc of ``radius_mm`` drawn with 8x8 supersampling (partial-volume edges)."""
    rows, cols = shape
    centre = np.asarray(centre_rc if centre_rc is not None else ((rows - 1) / 2, (cols - 1) / 2))
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    r = (np.arange(rows)[:, None] + sub[None, :]).ravel()
    c = (np.arange(cols)[:, None] + sub[None, :]).ravel()
    dr = (r - centre[0]) * spacing_mm[0]
    dc = (c - centre[1]) * spacing_mm[1]
    inside = (dr[:, None] ** 2 + dc[None, :] ** 2) <= radius_mm**2
    return inside.reshape(rows, 8, cols, 8).mean(axis=(1, 3)) * value


@pytest.mark.parametrize("spacing", [(0.4, 0.4), (0.6, 0.6), (0.9, 0.9), (0.5, 0.7)])
def test_disc_keeps_its_radius_in_mm(spacing):
    radius_mm = 25.0
    shape = (round(180 / spacing[0]), round(150 / spacing[1]))
    centre_src = (shape[0] * 0.45, shape[1] * 0.55)  # off-centre, so the offset is tested too
    image = _disc_image(shape, spacing, radius_mm, centre_src)
    x, tf = preprocess_slice(image, spacing, SAG)
    assert x.shape == (448, 320) and x.dtype == np.float32
    # area of the disc (values are partial-volume fractions of 0.8) gives its radius
    area_mm2 = x.sum() / 0.8 * 0.6**2
    assert np.sqrt(area_mm2 / np.pi) == pytest.approx(radius_mm, abs=0.05)
    # its centre of mass lands where the transform says the source centre goes
    rr, cc = np.indices(x.shape)
    com = np.array([(rr * x).sum(), (cc * x).sum()]) / x.sum()
    np.testing.assert_allclose(com, tf.to_model(np.array([centre_src]))[0], atol=0.05)
    # round in mm on both axes: a uniform disc has variance R^2 / 4 along any axis
    var_r = ((rr - com[0]) ** 2 * x).sum() / x.sum()
    var_c = ((cc - com[1]) ** 2 * x).sum() / x.sum()
    assert 2 * np.sqrt(var_r) * 0.6 == pytest.approx(radius_mm, abs=0.1)
    assert 2 * np.sqrt(var_c) * 0.6 == pytest.approx(radius_mm, abs=0.1)
    # the half-maximum contour encloses the same area
    assert np.sqrt((x > 0.4).sum() * 0.6**2 / np.pi) == pytest.approx(radius_mm, abs=0.1)


@pytest.mark.parametrize("iop,flips", [
    ((0, 1, 0, 0, 0, -1), (False, False, False)),
    ((0, -1, 0, 0, 0, -1), (False, False, True)),
    ((0, 1, 0, 0, 0, 1), (False, True, False)),
    ((0, -1, 0, 0, 0, 1), (False, True, True)),
    ((0, 0, -1, 0, 1, 0), (True, False, False)),
    (None, (False, False, False)),
])
def test_canonical_orientation(iop, flips):
    assert canonical_orientation(iop) == flips


@pytest.mark.parametrize("iop", [(0, 1, 0, 0, 0, -1), (0, -1, 0, 0, 0, -1), (0, 1, 0, 0, 0, 1),
                                 (0, -1, 0, 0, 0, 1), (0, 0, -1, 0, 1, 0)])
def test_anterior_superior_marker_ends_top_left(iop):
    """A bright block placed at the anatomically anterior-superior corner of the source ends
    up in the top-left of the model grid whatever the stored orientation."""
    rows, cols = 200, 160
    iop_a = np.asarray(iop, float)
    along_cols, along_rows = iop_a[:3], iop_a[3:]
    # anterior = -y, superior = +z in LPS; choose the source corner that is most of both
    corner = []
    for axis_dir, n in ((along_rows, rows), (along_cols, cols)):
        toward = -axis_dir[1] + axis_dir[2]  # > 0: increasing index goes anterior/superior
        corner.append(n - 20 if toward > 0 else 20)
    image = np.zeros((rows, cols))
    image[corner[0] - 5:corner[0] + 6, corner[1] - 5:corner[1] + 6] = 2500.0
    x, tf = preprocess_slice(image, (0.6, 0.6), iop)
    peak = np.unravel_index(np.argmax(x), x.shape)
    model_corner = tf.to_model(np.array([corner], float))[0]
    assert peak[0] < 448 / 2 and peak[1] < 320 / 2
    assert abs(peak[0] - model_corner[0]) <= 5 and abs(peak[1] - model_corner[1]) <= 5
    assert x[round(model_corner[0]), round(model_corner[1])] == pytest.approx(1.0)


@pytest.mark.parametrize("spacing", [(0.4, 0.4), (0.9, 0.9), (0.5, 0.7)])
@pytest.mark.parametrize("iop", [SAG, (0, -1, 0, 0, 0, 1), (0, 0, -1, 0, 1, 0), None])
def test_points_round_trip(spacing, iop):
    rng = np.random.default_rng(3)
    _, tf = preprocess_slice(np.zeros((300, 260)), spacing, iop)
    src = rng.uniform(-10, 310, size=(200, 2))
    np.testing.assert_allclose(tf.to_source(tf.to_model(src)), src, atol=1e-6)
    model = rng.uniform(0, 448, size=(200, 2))
    np.testing.assert_allclose(tf.to_model(tf.to_source(model)), model, atol=1e-6)


def test_point_mapping_values():
    tf = SliceTransform(source_shape=(101, 81), source_spacing_mm=(0.3, 1.2), flip_cols=True)
    # source centre -> model centre; one source row = 0.5 model rows; cols flipped x2
    np.testing.assert_allclose(tf.to_model([[50.0, 40.0]]), [[223.5, 159.5]])
    np.testing.assert_allclose(tf.to_model([[52.0, 41.0]]), [[224.5, 157.5]])


def test_crop_and_pad_are_centred():
    big = np.arange(1000 * 700, dtype=float).reshape(1000, 700) % 2000
    x, _ = preprocess_slice(big, (0.6, 0.6), SAG)
    # same spacing: a pure centred crop, values copied exactly (/2500)
    r0, c0 = (1000 - 448) // 2, (700 - 320) // 2
    np.testing.assert_allclose(x, big[r0:r0 + 448, c0:c0 + 320] / 2500.0, atol=1e-6)
    small = np.full((100, 60), 1000.0)
    x, _tf = preprocess_slice(small, (0.6, 0.6), SAG)
    assert x.sum() == pytest.approx(100 * 60 * 0.4, rel=1e-6)
    rows = np.flatnonzero(x.any(axis=1))
    cols = np.flatnonzero(x.any(axis=0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (174, 273, 130, 189)


def test_intensity_scaling_and_clip():
    image = np.zeros((448, 320))
    image[:, :80] = -100.0
    image[:, 80:160] = 1250.0
    image[:, 160:240] = 2500.0
    image[:, 240:] = 6000.0
    x, _ = preprocess_slice(image, (0.6, 0.6))
    assert x[200, 40] == 0.0
    assert x[200, 120] == pytest.approx(0.5)
    assert x[200, 200] == pytest.approx(1.0)
    assert x[200, 300] == pytest.approx(1.0)
    x, _ = preprocess_slice(image, (0.6, 0.6), scale=4096.0, clip=2.0)
    assert x[200, 300] == pytest.approx(6000 / 4096)


@pytest.mark.parametrize("spacing,iop", [((0.6, 0.6), SAG), ((0.5, 0.7), (0, -1, 0, 0, 0, 1)),
                                         ((0.9, 0.9), (0, 0, -1, 0, 1, 0))])
def test_label_map_back_to_source(spacing, iop):
    """A label map resampled to the model grid and back matches the source labels."""
    shape = (300, 250)
    labels = np.zeros(shape, np.uint8)
    labels[60:120, 40:140] = 1
    labels[150:230, 100:200] = 2
    _, tf = preprocess_slice(labels.astype(float), spacing, iop)
    model_labels = tf.image_to_model(labels, order=0)
    assert model_labels.dtype == np.uint8
    back = tf.mask_to_source(model_labels, shape)
    assert back.dtype == np.uint8 and back.shape == shape
    inside = np.ones(shape, bool)  # pixels whose model position is inside the model grid
    uv = tf.to_model(np.argwhere(inside).astype(float))
    in_grid = ((uv[:, 0] > -0.5) & (uv[:, 0] < 447.5) & (uv[:, 1] > -0.5) & (uv[:, 1] < 319.5))
    agree = (back.ravel() == labels.ravel())[in_grid].mean()
    # only a boundary layer of about one model pixel may differ
    assert agree > 0.99
    for k in (1, 2):
        assert abs((back == k).sum() - (labels == k).sum()) < 0.03 * (labels == k).sum()


def test_mask_to_source_outside_model_grid_is_zero():
    tf = SliceTransform(source_shape=(1000, 100), source_spacing_mm=(0.6, 0.6))
    back = tf.mask_to_source(np.ones((448, 320), np.int32), (1000, 100))
    rows = np.flatnonzero(back.any(axis=1))
    assert (rows[0], rows[-1]) == (276, 723)  # 448 centred rows of 1000
    assert back.dtype == np.int32


def test_transform_serialises():
    _, tf = preprocess_slice(np.zeros((100, 90)), (0.5, 0.7), (0, -1, 0, 0, 0, 1))
    assert SliceTransform.from_dict(tf.to_dict()) == tf


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="2-D"):
        preprocess_slice(np.zeros((3, 4, 5)), (0.6, 0.6))
    with pytest.raises(ValueError, match="spacing"):
        preprocess_slice(np.zeros((30, 40)), (0.0, 0.6))
    _, tf = preprocess_slice(np.zeros((30, 40)), (0.6, 0.6))
    with pytest.raises(ValueError, match="mask shape"):
        tf.mask_to_source(np.zeros((30, 40)), (30, 40))
    with pytest.raises(ValueError, match="points"):
        tf.to_model(np.zeros((5, 3)))


def test_in_view_marks_the_source_slice_in_the_model_grid():
    image = np.ones((200, 150), np.float32)           # 120 x 90 mm at 0.6 mm: smaller grid
    x, tf = preprocess_slice(image, (0.6, 0.6), SAG)
    view = tf.in_view()
    assert view.shape == x.shape and view.dtype == bool
    assert abs(int(view.sum()) - 200 * 150) <= 2 * (200 + 150)
    assert np.all(x[~view] == 0) and np.all(x[view] > 0)


def test_preprocess_into_slice_by_slice_gives_preprocess_volume():
    from spineviewer.core.preprocess import preprocess_into, preprocess_volume, slice_transform

    rng = np.random.default_rng(3)
    pixels = rng.uniform(0, 3000, (4, 90, 70)).astype(np.uint16)
    whole, transform = preprocess_volume(pixels, (0.75, 0.75), shape=None)
    t2 = slice_transform(pixels.shape[1:], (0.75, 0.75), shape=None)
    out = np.full_like(whole, np.nan)
    for i in (2, 0, 3, 1):
        preprocess_into(out, pixels, t2, slice(i, i + 1))
    assert t2 == transform and np.array_equal(out, whole)
