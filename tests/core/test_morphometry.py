"""Morphometry on analytic outlines: exact truths, frame independence, depressions, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from spineviewer.core.morphometry import Measurements, measure, split_endplates

try:  # tests/core may or may not be a package
    from ._body_shapes import make_body
except ImportError:
    from _body_shapes import make_body


def _measure_shape(shape, flip_rows=False, flip_cols=False, reverse=False, roll=0):
    """Measure an analytic shape after mirroring the frame and re-ordering its outline."""
    poly = shape.poly_rc.copy()
    corners = {k: np.array(v, float) for k, v in shape.corners_rc.items()}
    for flip, axis, size in ((flip_rows, 0, 500.0), (flip_cols, 1, 400.0)):
        if flip:
            poly[:, axis] = size - poly[:, axis]
            for v in corners.values():
                v[axis] = size - v[axis]
    if reverse:
        poly = poly[::-1]
    poly = np.roll(poly, roll, axis=0)
    return measure(corners, np.vstack([poly, poly[:1]]), shape.spacing_mm)


@pytest.mark.parametrize("kw", [
    {"ah": 28.0, "ph": 28.0},
    {"ah": 17.0, "ph": 28.0, "tilt_deg": 12.0},
    {"ah": 30.0, "ph": 24.0, "tilt_deg": -20.0},
    {"ah": 26.0, "ph": 28.0, "sc": 2.0, "ic": 3.0, "tilt_deg": 25.0},
    {"ah": 25.0, "ph": 27.0, "sc": 1.2, "spacing_mm": (0.5, 0.8)},
])
def test_analytic_outline_gives_the_truth(kw):
    s = make_body(**kw)
    m = _measure_shape(s)
    assert isinstance(m, Measurements)
    assert m.AH_mm == pytest.approx(s.AH_mm, abs=1e-6)
    assert m.PH_mm == pytest.approx(s.PH_mm, abs=1e-6)
    assert m.VA_deg == pytest.approx(s.VA_deg, abs=1e-6)
    assert m.SC_mm == pytest.approx(s.SC_mm, abs=0.01)
    assert m.IC_mm == pytest.approx(s.IC_mm, abs=0.01)
    assert m.MH_mm == pytest.approx(s.MH_mm, abs=0.02)
    assert m.sc_chord_mm == pytest.approx(np.hypot(kw.get("width", 38.0),
                                                   (s.PH_mm - s.AH_mm) / 2), abs=1e-6)


def test_va_sign_follows_the_wedge():
    anterior_wedge = _measure_shape(make_body(ah=20.0, ph=28.0))
    posterior_wedge = _measure_shape(make_body(ah=28.0, ph=20.0))
    box = _measure_shape(make_body(ah=28.0, ph=28.0))
    assert anterior_wedge.VA_deg > 10.0
    assert posterior_wedge.VA_deg == pytest.approx(-anterior_wedge.VA_deg, abs=1e-9)
    assert box.VA_deg == pytest.approx(0.0, abs=1e-9)
    # 2 * atan(4 / 38): the endplates each lean 4 mm over a 38 mm chord
    assert anterior_wedge.VA_deg == pytest.approx(np.degrees(2 * np.arctan(4 / 38)), abs=1e-6)


@pytest.mark.parametrize("flip_rows,flip_cols,reverse,roll", [
    (False, True, False, 0), (True, False, False, 37), (True, True, True, 211),
    (False, False, True, 5),
])
def test_mirrored_frames_and_outline_order_give_identical_results(flip_rows, flip_cols,
                                                                  reverse, roll):
    s = make_body(ah=21.0, ph=27.5, sc=1.5, ic=2.2, sc_notch=(2.0, 0.1, 0.4), tilt_deg=18.0)
    ref = _measure_shape(s)
    got = _measure_shape(s, flip_rows, flip_cols, reverse, roll)
    for name in ("AH_mm", "PH_mm", "MH_mm", "SC_mm", "IC_mm", "VA_deg", "sc_notch_width_mm",
                 "ic_notch_width_mm"):
        assert getattr(got, name) == pytest.approx(getattr(ref, name), abs=1e-9), name


def test_spacing_scales_rows_and_cols_separately():
    s = make_body(ah=22.0, ph=28.0, tilt_deg=15.0, sc=1.0, spacing_mm=(0.5, 0.9))
    m = _measure_shape(s)
    # the same geometry given in millimetres with unit spacing
    sp = np.array(s.spacing_mm)
    mm = measure({k: np.asarray(v) * sp for k, v in s.corners_rc.items()}, s.poly_rc * sp,
                 (1.0, 1.0))
    assert m.AH_mm == pytest.approx(22.0, abs=1e-6)
    assert mm.AH_mm == pytest.approx(m.AH_mm, abs=1e-9)
    assert mm.VA_deg == pytest.approx(m.VA_deg, abs=1e-9)
    assert mm.SC_mm == pytest.approx(m.SC_mm, abs=1e-9)


def test_notch_depth_and_half_depth_width():
    # cos^2 notch, full width 0.12 x 38 mm: half-depth width is half of that, 2.28 mm
    s = make_body(ah=28.0, ph=28.0, sc_notch=(3.0, 0.12, 0.45))
    m = _measure_shape(s)
    assert s.SC_mm > 2.98
    assert m.SC_mm == pytest.approx(s.SC_mm, abs=0.01)
    assert m.sc_notch_width_mm == pytest.approx(0.5 * 0.12 * 38.0, abs=0.1)
    assert m.IC_mm == 0.0 and m.ic_notch_width_mm == 0.0
    # a broad depression is wide: most of its span
    broad = _measure_shape(make_body(ah=28.0, ph=28.0, ic=2.0, span=0.7))
    assert broad.ic_notch_width_mm == pytest.approx(0.5 * 0.7 * 38.0, abs=0.1)


def test_bulging_endplate_has_no_depression():
    # a negative depth bulges out of the body: SC must be 0, not the bulge height
    s = make_body(ah=27.0, ph=28.0, sc=-2.0, ic=-1.0)
    m = _measure_shape(s)
    assert m.SC_mm == 0.0 and m.IC_mm == 0.0
    assert m.sc_notch_width_mm == 0.0


def test_rounded_rims_next_to_the_corners_are_not_a_depression():
    # the corners sit 0.4 mm outside a border that rounds off at the rims
    s = make_body(ah=28.0, ph=28.0)
    corners = dict(s.corners_rc)
    u = np.array([0.0, 1.0])
    for k, sign in (("AS", -1), ("AI", -1), ("PS", 1), ("PI", 1)):
        corners[k] = corners[k] + sign * 0.4 / 0.6 * u
    m = measure(corners, s.poly_rc, s.spacing_mm)
    assert m.SC_mm < 0.05 and m.IC_mm < 0.05


def test_split_endplates_avoids_the_other_corners():
    s = make_body(ah=24.0, ph=28.0, tilt_deg=-10.0)
    c = {k: np.asarray(v) for k, v in s.corners_rc.items()}
    sup, inf = split_endplates(c, s.poly_rc[::-1])
    assert np.allclose(sup[0], c["AS"], atol=0.3) and np.allclose(sup[-1], c["PS"], atol=0.3)
    assert np.allclose(inf[0], c["AI"], atol=0.3) and np.allclose(inf[-1], c["PI"], atol=0.3)
    # the superior path stays on the superior side of the body's centre line
    centre = np.mean([c["AS"], c["PS"], c["PI"], c["AI"]], axis=0)
    n = c["AI"] - c["AS"]
    assert np.all((sup - centre) @ n < 0) and np.all((inf - centre) @ n > 0)


def test_bad_input():
    s = make_body()
    with pytest.raises(ValueError):
        measure(s.corners_rc, s.poly_rc, (0.0, 0.6))
    with pytest.raises(ValueError):
        measure(s.corners_rc, s.poly_rc[:3], (0.6, 0.6))
    with pytest.raises(KeyError):
        measure({"AS": (0, 0)}, s.poly_rc, (0.6, 0.6))


def _box_outline(top):
    """Closed outline (row, col), anterior col 0: the superior edge is ``top`` (a walk from
    AS to PS), then the posterior wall, a flat inferior edge and the anterior wall."""
    import numpy as np

    top = [np.asarray(p, float) for p in top]
    wall_p = [np.array([r, 40.0]) for r in np.arange(1.0, 30.0)]
    bottom = [np.array([30.0, c]) for c in np.arange(40.0, -0.5, -1.0)]
    wall_a = [np.array([r, 0.0]) for r in np.arange(29.0, 0.0, -1.0)]
    ring = np.array(top + wall_p + bottom + wall_a)
    return np.vstack([ring, ring[:1]])


CORNERS = {"AS": (0.0, 0.0), "PS": (0.0, 40.0), "PI": (30.0, 40.0), "AI": (30.0, 0.0)}


def test_endplate_folds_are_zero_for_flat_and_depressed_endplates():
    import numpy as np

    from spineviewer.core.morphometry import endplate_folds_mm

    flat = _box_outline([(0.0, c) for c in np.arange(0.0, 40.5, 1.0)])
    dip = _box_outline([(8.0 * np.sin(np.pi * c / 40.0) ** 2, c)
                        for c in np.arange(0.0, 40.5, 0.5)])   # an 8 mm central depression
    for outline in (flat, dip):
        folds = endplate_folds_mm(CORNERS, outline, (1.0, 1.0))
        assert folds == {"superior": 0.0, "inferior": 0.0}


def test_an_endplate_that_runs_back_along_its_chord_is_measured_in_mm():
    import numpy as np

    from spineviewer.core.morphometry import endplate_folds_mm

    top = ([(0.0, c) for c in np.arange(0.0, 25.5, 1.0)]          # forwards to col 25
           + [(-r, 25.0) for r in range(1, 6)]                       # up a handle
           + [(-5.0, c) for c in np.arange(24.0, 17.5, -1.0)]        # back to col 18
           + [(-r, 18.0) for r in range(4, -1, -1)]
           + [(1.0, c) for c in np.arange(19.0, 40.5, 1.0)])         # and on to PS
    folds = endplate_folds_mm(CORNERS, _box_outline(top), (0.5, 0.5))
    assert abs(folds["superior"] - 7.0 * 0.5) < 1e-6                 # 7 px back at 0.5 mm
    assert folds["inferior"] == 0.0
