"""Endplate refinement from the image (core.endplates): a mask that fills a depression or stops
inside the cortex is corrected to the image's outer cortical margin."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import draw

from spineviewer.core.corners import find_corners
from spineviewer.core.endplates import refine_endplates, unconfirmed_edge_reason
from spineviewer.core.morphometry import measure
from tests.core._body_shapes import make_body

SS, SHAPE, SP = 4, (200, 180), (0.6, 0.6)


def _fine(poly_rc: np.ndarray) -> np.ndarray:
    fine = np.zeros((SHAPE[0] * SS, SHAPE[1] * SS), bool)
    p = (np.asarray(poly_rc) + 0.5) * SS - 0.5
    rr, cc = draw.polygon(p[:, 0], p[:, 1], fine.shape)
    fine[rr, cc] = True
    return fine


def _down(a: np.ndarray) -> np.ndarray:
    return a.reshape(SHAPE[0], SS, SHAPE[1], SS).mean(axis=(1, 3))


def _scene(truth, outer=None, *, fill=0.85, disc=0.85, rim_mm=1.0, erode_mm=0.0, seed=0):
    """Image of the true body (marrow 0.4, 1 mm dark cortex) in disc signal; the mask is
    ``outer`` (a filled-in body) or the true body eroded by ``erode_mm``."""
    body = _fine(truth.poly_rc)
    dist = ndimage.distance_transform_edt(body) * SP[0] / SS
    img = np.where(body, 0.4, disc).astype(np.float32)
    img[body & (dist <= rim_mm)] = 0.1
    if outer is not None:
        filled = _fine(outer.poly_rc)
        img[filled & ~body] = fill
        mask = _down(filled) >= 0.5
    else:
        mask = _down(dist > erode_mm) >= 0.5
    img = _down(img) + np.random.default_rng(seed).normal(0, 0.02, SHAPE).astype(np.float32)
    return img, mask


def _measured(img, mask):
    cr = find_corners(mask, SP)
    before = measure(cr.corners_rc, cr.outline_rc, SP)
    ref = refine_endplates(img, cr.corners_rc, cr.outline_rc, SP)
    return before, measure(ref.corners_rc, ref.outline_rc, SP), ref


@pytest.mark.parametrize("fill", [0.85, 0.4], ids=["disc_fill", "marrow_fill"])
@pytest.mark.parametrize("tilt", [0.0, 30.0])
def test_depression_under_a_filled_mask_is_measured_at_the_image_edge(fill, tilt):
    truth = make_body(ah=26.0, ph=28.0, sc=7.0, ic=5.0, span=0.6, tilt_deg=tilt)
    filled = make_body(ah=26.0, ph=28.0, tilt_deg=tilt)
    before, after, ref = _measured(*_scene(truth, filled, fill=fill))
    assert before.MH_mm > truth.MH_mm + 10.0          # the mask hides the depression
    assert after.MH_mm == pytest.approx(truth.MH_mm, abs=1.0)
    assert after.SC_mm == pytest.approx(truth.SC_mm, abs=0.6)
    assert after.IC_mm == pytest.approx(truth.IC_mm, abs=0.6)
    assert after.AH_mm == pytest.approx(truth.AH_mm, abs=0.5)
    assert after.PH_mm == pytest.approx(truth.PH_mm, abs=0.5)
    assert ref.flags == []
    assert min(ref.confidence.values()) > 0.8


def test_mask_inside_the_cortex_is_moved_out_to_the_outer_margin():
    truth = make_body(ah=24.0, ph=28.0, sc=2.0, ic=2.0, tilt_deg=20.0)
    before, after, _ = _measured(*_scene(truth, erode_mm=1.5))
    assert before.AH_mm < truth.AH_mm - 2.0
    for name in ("AH_mm", "PH_mm", "MH_mm"):
        assert getattr(after, name) == pytest.approx(getattr(truth, name), abs=0.5), name


def test_exact_mask_of_a_healthy_body_is_left_where_it_is():
    truth = make_body(ah=26.0, ph=28.0, sc=1.0, ic=1.0, tilt_deg=-12.0)
    _before, after, ref = _measured(*_scene(truth, erode_mm=0.0, seed=3))
    for name in ("AH_mm", "PH_mm", "MH_mm"):
        assert getattr(after, name) == pytest.approx(getattr(truth, name), abs=0.4), name
    assert np.nanmax(np.abs(ref.offsets_mm["superior"])) < 1.0


def test_no_edge_in_the_image_keeps_the_mask_and_flags_it():
    truth = make_body(ah=26.0, ph=28.0, tilt_deg=5.0)
    _, mask = _scene(truth)
    flat = np.full(SHAPE, 0.4, np.float32) + np.random.default_rng(2).normal(
        0, 0.02, SHAPE).astype(np.float32)
    cr = find_corners(mask, SP)
    ref = refine_endplates(flat, cr.corners_rc, cr.outline_rc, SP)
    assert ref.flags == ["endplate_from_mask"]
    for k in cr.corners_rc:
        assert np.allclose(ref.corners_rc[k], cr.corners_rc[k])


def test_dark_fill_is_flagged_not_trusted():
    # a dark degenerated disc in the depression is as dark as the cortex: no clear edge
    truth = make_body(ah=26.0, ph=28.0, sc=7.0, ic=5.0, span=0.6)
    filled = make_body(ah=26.0, ph=28.0)
    _, _, ref = _measured(*_scene(truth, filled, fill=0.15))
    assert "endplate_from_mask" in ref.flags


def test_band_of_endplate_signal_change_left_out_of_the_mask_is_flagged():
    """A dark band under the superior endplate (a Modic 3 change, sclerosis) that the mask left
    out: the image shows no cortical edge at the mask's endplate, so the refinement keeps the
    mask's (short) height and says which endplate it could not confirm."""
    truth = make_body(ah=26.0, ph=28.0, tilt_deg=8.0)
    img, _ = _scene(truth)
    short = make_body(ah=21.0, ph=23.0, tilt_deg=8.0)   # the body less a 5 mm top band
    shift = truth.corners_rc["AI"] - short.corners_rc["AI"]   # inferior endplates coincide
    band = _fine(truth.poly_rc) & ~_fine(short.poly_rc + shift)
    img[_down(band) > 0.5] = 0.08
    mask = _down(_fine(short.poly_rc + shift)) >= 0.5
    cr = find_corners(mask, SP)
    ref = refine_endplates(img, cr.corners_rc, cr.outline_rc, SP)
    assert "endplate_from_mask" in ref.flags
    assert ref.confidence["superior"] < 0.5 < ref.confidence["inferior"]
    text = unconfirmed_edge_reason(ref.confidence)
    assert "along the superior endplate (" in text and "inferior" not in text
    assert "Modic" in text
    both = unconfirmed_edge_reason({"superior": 0.2, "inferior": 0.1})
    assert "the superior endplate (20% of profiles) and the inferior endplate (10%" in both
    assert "middle third" in unconfirmed_edge_reason({"superior": 0.9, "inferior": 0.8})


def test_bad_input_is_a_clear_error():
    truth = make_body()
    img, mask = _scene(truth)
    cr = find_corners(mask, SP)
    with pytest.raises(ValueError, match="2-D"):
        refine_endplates(img[None], cr.corners_rc, cr.outline_rc, SP)
    with pytest.raises(ValueError, match="spacing"):
        refine_endplates(img, cr.corners_rc, cr.outline_rc, (0.0, 0.6))


def test_a_dark_line_inside_the_rim_does_not_pull_a_corner_in():
    """At the rim of a real endplate a dark line a few millimetres inside the bone (ring
    apophysis, basivertebral vein) is no depression: the corner on the mask's edge moves in
    by at most 0.5 mm, so the height is not cut short."""
    truth = make_body(ah=26.0, ph=28.0)
    img, mask = _scene(truth, erode_mm=0.0, seed=5)
    r_sup = 100.37 - 14.0 / SP[0]                       # superior endplate row (no tilt)
    cols = slice(int(90.61 + 12.0 / SP[1]), int(90.61 + 19.0 / SP[1]) + 1)  # posterior rim
    top = int(np.floor(r_sup))
    img[top:top + 3, cols] = 0.4                        # no cortical line at the rim ...
    img[top + 4:top + 7, cols] = 0.1                    # ... but a dark line 2.5-4 mm inside
    cr = find_corners(mask, SP)
    ref = refine_endplates(img, cr.corners_rc, cr.outline_rc, SP)
    moved_in = (ref.corners_rc["PS"][0] - cr.corners_rc["PS"][0]) * SP[0]
    assert moved_in <= 0.5 + 1e-6
    after = measure(ref.corners_rc, ref.outline_rc, SP)
    assert after.PH_mm >= truth.PH_mm - 0.7


def test_line_hits_of_many_origins_are_each_origins_own_crossing():
    """The profiles' crossings with the mask's endplate, computed at once, are those of one
    ray at a time (the same arithmetic: the same numbers)."""
    from spineviewer.core.endplates import _line_hits

    def one(o, u, path):
        n = np.array([-u[1], u[0]])
        side, along = (path - o) @ n, (path - o) @ u
        a, b = side[:-1], side[1:]
        cross = (a == 0) | (a * b < 0)
        if not np.any(cross):
            return np.nan
        a, b = a[cross], b[cross]
        f = np.where(a == b, 0.0, a / np.where(a == b, 1.0, a - b))
        s = along[:-1][cross] + f * (along[1:][cross] - along[:-1][cross])
        return s[np.argmin(np.abs(s))]

    rng = np.random.default_rng(11)
    t = np.linspace(0, 30, 120)
    path = np.c_[5 * np.sin(t / 4) + rng.normal(0, 0.3, t.size), t]   # a wavy endplate
    u = np.array([1.0, 0.2]) / np.hypot(1.0, 0.2)
    origins = np.c_[rng.uniform(-10, 10, 40), rng.uniform(-5, 40, 40)]  # some miss it
    got = _line_hits(origins, u, path)
    want = np.array([one(o, u, path) for o in origins])
    assert np.isnan(want).any() and np.isfinite(want).sum() > 20
    assert np.array_equal(got, want, equal_nan=True)
