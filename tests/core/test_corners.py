"""Corners from rasterised analytic bodies, then morphometry against the analytic truth."""

from __future__ import annotations

import numpy as np
import pytest

from spineviewer.core.corners import STRATEGIES, CornerResult, column_directions, find_corners
from spineviewer.core.morphometry import measure

try:  # tests/core may or may not be a package
    from ._body_shapes import make_body, rasterise
except ImportError:
    from _body_shapes import make_body, rasterise

CORNERS = ("AS", "AI", "PS", "PI")


def _run(shape, canvas=(220, 200)):
    mask = rasterise(shape.poly_rc, canvas)
    res = find_corners(mask, shape.spacing_mm)
    return mask, res, measure(res.corners_rc, res.outline_rc, shape.spacing_mm)


def _corner_error_mm(shape, res, name):
    d = (np.asarray(res.corners_rc[name]) - shape.corners_rc[name]) * np.asarray(shape.spacing_mm)
    return float(np.hypot(*d))


SHAPES = {
    "box": {"ah": 28.0, "ph": 28.0},
    "wedge_0.6_tilt10": {"ah": 17.0, "ph": 28.5, "tilt_deg": 10.0},
    "wedge_0.7_tilt-25": {"ah": 19.5, "ph": 28.0, "tilt_deg": -25.0},
    "wedge_0.8_tilt-15": {"ah": 22.0, "ph": 27.5, "tilt_deg": -15.0},
    "wedge_0.9_tilt25": {"ah": 25.0, "ph": 28.0, "tilt_deg": 25.0},
    "posterior_wedge_tilt5": {"ah": 29.0, "ph": 25.0, "tilt_deg": 5.0},
    "wide_flat_tilt-8": {"ah": 20.0, "ph": 21.0, "width": 44.0, "tilt_deg": -8.0},
    "spacing_0.5": {"ah": 24.0, "ph": 28.0, "tilt_deg": 8.0, "spacing_mm": (0.5, 0.5)},
    "spacing_0.8": {"ah": 24.0, "ph": 28.0, "tilt_deg": -8.0, "spacing_mm": (0.8, 0.8)},
    "spacing_0.6x0.9": {"ah": 24.0, "ph": 28.0, "tilt_deg": 5.0, "spacing_mm": (0.6, 0.9)},
    "concave_sup_2": {"sc": 2.0},
    "concave_1.5_2.5_tilt15": {"sc": 1.5, "ic": 2.5, "tilt_deg": 15.0},
    "biconcave_4_4": {"ah": 27.0, "ph": 28.0, "sc": 4.0, "ic": 4.0, "span": 0.8},
    "shallow_0.8_1.2_tilt-12": {"sc": 0.8, "ic": 1.2, "tilt_deg": -12.0},
    "schmorl_notch": {"sc_notch": (3.0, 0.12, 0.45)},
    "osteophyte_4x2": {"beak": (4.0, 2.0)},
    "osteophyte_6x2.5_tilt12": {"beak": (6.0, 2.5), "tilt_deg": 12.0},
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_measurements_from_rasterised_bodies(name):
    shape = make_body(**SHAPES[name])
    _, res, m = _run(shape)
    assert isinstance(res, CornerResult)
    assert abs(m.AH_mm - shape.AH_mm) <= 0.5
    assert abs(m.PH_mm - shape.PH_mm) <= 0.5
    assert abs(m.VA_deg - shape.VA_deg) <= 1.0
    assert np.sign(m.VA_deg) == np.sign(shape.VA_deg) or abs(shape.VA_deg) < 1.0
    assert abs(m.SC_mm - shape.SC_mm) <= 0.6
    assert abs(m.IC_mm - shape.IC_mm) <= 0.6
    # The Schmorl notch's steep wall lies 0.1 mm from the mid-line, so MH moves ~3 mm per mm
    # of mid-point shift there: a 0.05 mm corner difference is worth 0.15 mm of MH.
    assert abs(m.MH_mm - shape.MH_mm) <= (0.7 if "sc_notch" in SHAPES[name] else 0.6)
    # every corner carries its own name: each is near its true position, not another corner
    for k in CORNERS:
        assert _corner_error_mm(shape, res, k) <= 0.7, k
    deep = shape.SC_mm + shape.IC_mm > 5.0     # deep depressions are not quadrilateral
    assert res.overlap >= (0.85 if deep else 0.9)


@pytest.mark.parametrize("tilt", [-30.0, -20.0, 20.0, 30.0])
def test_corner_names_follow_the_body_axes_under_lordosis(tilt):
    shape = make_body(ah=20.0, ph=28.0, tilt_deg=tilt)
    _, res, m = _run(shape)
    for k in CORNERS:
        assert _corner_error_mm(shape, res, k) <= 0.7, k
    assert m.VA_deg > 0                       # anterior wedge stays an anterior wedge


@pytest.mark.parametrize("tilt", [-50.0, 47.0])
def test_steep_column_names_the_long_side_anterior_posterior(tilt):
    # beyond 45 deg the nearest image axis would swap AP and SI; a body is deeper than high
    shape = make_body(ah=23.0, ph=26.0, width=38.0, tilt_deg=tilt)
    _, res, m = _run(shape)
    for k in CORNERS:
        assert _corner_error_mm(shape, res, k) <= 0.7, k
    assert abs(m.AH_mm - 23.0) <= 0.5 and abs(m.PH_mm - 26.0) <= 0.5


@pytest.mark.parametrize("tilt", [45.0, -45.0, 50.0, 35.0])
@pytest.mark.parametrize("hint_error", [-25.0, 0.0, 25.0])
def test_squarish_body_at_45_degrees_gets_its_corners_in_the_right_roles(tilt, hint_error):
    # an L5 on a steep sacrum: nearly as high as deep, so its shape cannot tell SI from AP;
    # the column's direction (from the neighbours, good to +-25 deg here) decides
    shape = make_body(ah=28.0, ph=30.0, width=32.0, tilt_deg=tilt)
    mask = rasterise(shape.poly_rc, (220, 200))
    th = np.radians(tilt + hint_error)
    res = find_corners(mask, shape.spacing_mm, si_hint=(np.cos(th), -np.sin(th)))
    for k in CORNERS:
        assert _corner_error_mm(shape, res, k) <= 0.7, k
    m = measure(res.corners_rc, res.outline_rc, shape.spacing_mm)
    assert abs(m.AH_mm - 28.0) <= 0.5 and abs(m.PH_mm - 30.0) <= 0.5


def test_column_directions_from_neighbouring_centroids():
    dirs = column_directions([(10.0, 50.0), (40.0, 50.0), (70.0, 80.0)])
    assert np.allclose(dirs[0], (1.0, 0.0))
    assert np.allclose(dirs[1], np.array([60.0, 30.0]) / np.hypot(60.0, 30.0))
    assert np.allclose(dirs[2], np.array([30.0, 30.0]) / np.hypot(30.0, 30.0))
    assert column_directions([(5.0, 5.0)]) == [None]


def test_upright_body_keeps_its_height_vertical():
    # higher than deep (rare, e.g. a young T12): an upright long side is not taken as AP
    shape = make_body(ah=30.0, ph=30.0, width=24.0, tilt_deg=6.0)
    _, res, m = _run(shape)
    assert abs(m.AH_mm - 30.0) <= 0.5 and abs(m.PH_mm - 30.0) <= 0.5
    for k in CORNERS:
        assert _corner_error_mm(shape, res, k) <= 0.7, k


def test_body_cut_by_the_image_border():
    mask = np.zeros((60, 80), bool)
    mask[0:30, 0:50] = True                   # a box running into the top-left corner
    res = find_corners(mask, (0.6, 0.6))
    m = measure(res.corners_rc, res.outline_rc, (0.6, 0.6))
    assert m.AH_mm == pytest.approx(30 * 0.6, abs=0.5)
    assert m.VA_deg == pytest.approx(0.0, abs=1.0)


def test_osteophyte_does_not_pull_the_corner_to_the_beak_tip():
    shape = make_body(ah=26.0, ph=28.0, beak=(6.0, 2.5))
    _, res, m = _run(shape)
    tip = shape.poly_rc[1]                    # the beak tip (polygon order b1, tip, b2, ...)
    as_rc = np.asarray(res.corners_rc["AS"])
    assert _corner_error_mm(shape, res, "AS") <= 0.5
    assert np.hypot(*((as_rc - tip) * 0.6)) > 5.0
    for strategy, (corners, _) in res.candidates.items():
        if strategy != "hull_curvature":      # the weakest strategy may wander along the rim
            d = (np.asarray(corners["AS"]) - shape.corners_rc["AS"]) * 0.6
            assert np.hypot(*d) <= 1.0, strategy
    assert abs(m.AH_mm - shape.AH_mm) <= 0.5


def test_concave_endplates_keep_the_corners_at_the_rims():
    shape = make_body(ah=27.0, ph=28.0, sc=3.0, ic=3.0, span=0.8, tilt_deg=-10.0)
    _, res, m = _run(shape)
    for k in CORNERS:
        assert _corner_error_mm(shape, res, k) <= 0.6, k
    assert m.SC_mm == pytest.approx(3.0, abs=0.6)
    assert m.IC_mm == pytest.approx(3.0, abs=0.6)
    assert m.MH_mm == pytest.approx(shape.MH_mm, abs=0.6)
    # the quadrilateral cannot cover the depressions, but it fits the rims
    assert res.overlap < 0.93 and res.rim_overlap >= 0.95


def test_result_structure_and_outline():
    shape = make_body(ah=23.0, ph=28.0, tilt_deg=12.0)
    mask, res, _ = _run(shape)
    assert res.strategy == "median"
    assert set(res.candidates) == set(STRATEGIES)
    # each returned corner is the coordinate-wise median of the three candidates
    for k in CORNERS:
        pts = np.array([c[k] for c, _ in res.candidates.values()])
        assert np.allclose(res.corners_rc[k], np.median(pts, axis=0))
    voted = find_corners(mask, shape.spacing_mm, combine="vote")
    assert voted.strategy in STRATEGIES
    assert voted.overlap == voted.candidates[voted.strategy][1]
    assert voted.corners_rc == voted.candidates[voted.strategy][0]
    with pytest.raises(ValueError):
        find_corners(mask, shape.spacing_mm, combine="mean")
    for corners, overlap in res.candidates.values():
        assert set(corners) == set(CORNERS) and 0.0 <= overlap <= 1.0
    outline = np.asarray(res.outline_rc)
    assert outline.ndim == 2 and outline.shape[1] == 2 and len(outline) > 100
    assert np.allclose(outline[0], outline[-1])
    # the outline runs between inside and outside pixels: within a pixel of the mask border
    from scipy import ndimage
    border = mask & ~ndimage.binary_erosion(mask)
    br, bc = np.nonzero(border)
    d = np.min(np.hypot(outline[::7, None, 0] - br[None], outline[::7, None, 1] - bc[None]),
               axis=1)
    assert d.max() < 1.0


def test_deterministic_and_position_independent():
    shape = make_body(ah=22.0, ph=28.0, tilt_deg=-7.0)
    mask = rasterise(shape.poly_rc, (220, 200))
    a = find_corners(mask, shape.spacing_mm)
    b = find_corners(mask, shape.spacing_mm)
    assert a.corners_rc == b.corners_rc and a.strategy == b.strategy
    shifted = np.zeros((300, 260), bool)
    shifted[40:260, 30:230] = mask
    c = find_corners(shifted, shape.spacing_mm)
    for k in CORNERS:
        assert np.allclose(np.asarray(c.corners_rc[k]) - (40, 30), a.corners_rc[k], atol=1e-6)


def test_stray_pixels_are_ignored():
    shape = make_body(ah=24.0, ph=28.0)
    mask = rasterise(shape.poly_rc, (220, 200))
    mask[5:8, 5:8] = True                     # a speck far from the body
    res = find_corners(mask, shape.spacing_mm)
    for k in CORNERS:
        assert _corner_error_mm(shape, res, k) <= 0.7


def test_bad_input():
    with pytest.raises(ValueError):
        find_corners(np.zeros((50, 50), bool))
    with pytest.raises(ValueError):
        find_corners(np.ones((4, 50, 50), bool))
    with pytest.raises(ValueError):
        find_corners(np.ones((50, 50), bool), (0.6, -0.6))


def test_phantom_instance_masks_against_their_truth():
    """Segmentation bypassed: the phantom's own body masks, measured against its analytic truth.

    Binary masks at 0.6 mm lose up to half a pixel per edge, so a rare body may miss a
    tolerance; at least 95% must meet each one and none may miss it by far.
    """
    phantom = pytest.importorskip("spineviewer.synth.phantom")
    from spineviewer.synth.params import INSTANCE_IDS

    rng = np.random.default_rng(20261129)
    errors = []
    for _ in range(20):
        sl = phantom.make_slice(rng)
        for t in sl.truth:
            mask = sl.instance_map == INSTANCE_IDS[t.level]
            res = find_corners(mask, sl.spacing_mm)
            m = measure(res.corners_rc, res.outline_rc, sl.spacing_mm)
            errors.append((m.AH_mm - t.AH_mm, m.PH_mm - t.PH_mm, m.VA_deg - t.VA_deg,
                           m.SC_mm - t.SC_mm, m.IC_mm - t.IC_mm))
    err = np.abs(np.array(errors))
    assert len(err) >= 80
    for j, (name, tol) in enumerate((("AH", 0.5), ("PH", 0.5), ("VA", 1.0), ("SC", 0.6),
                                     ("IC", 0.6))):
        assert np.mean(err[:, j] <= tol) >= 0.95, name
        assert err[:, j].max() <= 2 * tol, name
        assert err[:, j].mean() <= 0.4 * tol, name


def test_median_outvotes_one_strategy_gone_astray(monkeypatch):
    """A strategy that lands one corner 5 mm off does not move the returned corner."""
    import spineviewer.core.corners as corners_mod

    shape = make_body(ah=24.0, ph=28.0, tilt_deg=8.0)
    mask = rasterise(shape.poly_rc, (220, 200))
    good = find_corners(mask, shape.spacing_mm)
    real = corners_mod._hull_curvature

    def astray(body):
        out = dict(real(body))
        out["AS"] = out["AS"] + np.array([5.0, 0.0])   # 5 mm down the anterior wall
        return out

    monkeypatch.setattr(corners_mod, "_hull_curvature", astray)
    res = find_corners(mask, shape.spacing_mm)
    assert _corner_error_mm(shape, res, "AS") <= 0.7
    shift = np.hypot(*((np.asarray(res.corners_rc["AS"]) - good.corners_rc["AS"]) * 0.6))
    assert shift <= 0.5
    assert np.hypot(*((np.asarray(res.candidates["hull_curvature"][0]["AS"])
                       - good.candidates["hull_curvature"][0]["AS"]) * 0.6)) > 4.0
