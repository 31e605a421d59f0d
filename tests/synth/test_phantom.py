"""Geometry truths of the phantom slice agree with its own masks and with the definitions."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from spineviewer.synth.params import GRADE_LOSS, INSTANCE_IDS, LEVEL_DESIGN, WEDGE_SD
from spineviewer.synth.phantom import PhantomParams, make_slice


def _slice(seed=3, **kw):
    return make_slice(np.random.default_rng(seed), PhantomParams(**kw))


def _truth(ps, level):
    return next(t for t in ps.truth if t.level == level)


def _mm(ps, a, b):
    d = (np.asarray(a) - np.asarray(b)) * np.asarray(ps.spacing_mm)
    return float(np.hypot(*d))


def test_heights_are_corner_distances_in_mm_with_anisotropic_spacing():
    ps = _slice(spacing_mm=(0.6, 0.75), shape=(448, 260))
    assert [t.level for t in ps.truth] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    for t in ps.truth:
        c = t.corners_rc
        assert t.AH_mm == pytest.approx(_mm(ps, c["AS"], c["AI"]), abs=1e-6)
        assert t.PH_mm == pytest.approx(_mm(ps, c["PS"], c["PI"]), abs=1e-6)
        assert 18.0 < t.PH_mm < 32.0
        assert 28.0 < _mm(ps, c["AS"], c["PS"]) < 48.0


def test_outputs_types_and_classes():
    ps = _slice()
    assert ps.image.dtype == np.float32 and ps.image.shape == (448, 320)
    assert ps.class_map.dtype == np.uint8 and ps.instance_map.dtype == np.uint8
    assert set(np.unique(ps.class_map)) == {0, 1, 2, 3, 4, 5}
    assert {1, 2, 3, 4, 5, 6, 7} <= set(np.unique(ps.instance_map))
    # instances are bodies (class 1) or the sacrum (class 2)
    assert np.all(ps.class_map[ps.instance_map == 7] == 2)
    body = (ps.instance_map >= 1) & (ps.instance_map <= 6)
    assert np.all(ps.class_map[body] == 1)
    # CSF brighter than marrow, discs brighter than marrow on T2
    assert ps.image[ps.class_map == 4].mean() > 1.5 * ps.image[ps.class_map == 1].mean()


def test_corners_lie_on_their_body_mask():
    ps = _slice(seed=5)
    for t in ps.truth:
        lid = INSTANCE_IDS[t.level]
        corners = np.array(list(t.corners_rc.values()))
        centre = corners.mean(axis=0)
        for rc in corners:
            inner = rc + (centre - rc) / np.linalg.norm(centre - rc) * 1.5
            assert ps.instance_map[round(inner[0]), round(inner[1])] == lid
            r, c = round(rc[0]), round(rc[1])
            assert lid in ps.instance_map[r - 1:r + 2, c - 1:c + 2]


@pytest.mark.parametrize("grade", [1, 2, 3])
def test_wedge_grade_sets_anterior_height_loss(grade):
    ps = _slice(seed=11, deformities={"L2": ("wedge", grade)})
    t = _truth(ps, "L2")
    lo, hi = GRADE_LOSS[grade]
    assert t.fracture and t.genant_grade == grade and lo <= t.height_loss <= hi
    mean, sd = LEVEL_DESIGN["L2"]["wedge"], WEDGE_SD
    ratio = t.AH_mm / t.PH_mm
    assert (mean - 4 * sd) * (1 - hi) <= ratio <= (mean + 4 * sd) * (1 - lo)
    assert ratio < mean - 6 * sd          # far outside healthy variation
    assert t.VA_deg > 5.0                 # endplates converge anteriorly


def test_crush_and_biconcave_change_the_right_heights():
    ps = _slice(seed=2, deformities={"L1": ("crush", 2), "L3": ("biconcave", 3)})
    crush, bic, l2 = _truth(ps, "L1"), _truth(ps, "L3"), _truth(ps, "L2")
    assert crush.PH_mm < 0.8 * l2.PH_mm and crush.AH_mm < 0.8 * l2.AH_mm
    assert bic.MH_mm / bic.PH_mm < 0.6
    assert bic.SC_mm > 3.0 and bic.IC_mm > 3.0
    assert abs(bic.AH_mm / bic.PH_mm - LEVEL_DESIGN["L3"]["wedge"]) < 4 * WEDGE_SD


def test_mid_height_follows_the_definition():
    ps = _slice(seed=4)
    for t in ps.truth:
        chord_mid = _mm(ps, np.add(t.corners_rc["AS"], t.corners_rc["PS"]) / 2,
                        np.add(t.corners_rc["AI"], t.corners_rc["PI"]) / 2)
        # endplate depressions shorten MH below the chord mid-point distance by about SC + IC
        assert t.MH_mm == pytest.approx(chord_mid - t.SC_mm - t.IC_mm, abs=0.6)


def _depth_from_mask(ps, t, which):
    """Largest depth of the instance mask below the endplate chord, measured on the mask."""
    c = {k: np.asarray(v, float) for k, v in t.corners_rc.items()}
    a, b = (c["AS"], c["PS"]) if which == "superior" else (c["AI"], c["PI"])
    centre = sum(c.values()) / 4
    d = (b - a) / np.linalg.norm(b - a)
    n = np.array([-d[1], d[0]])
    n = n if np.dot(centre - a, n) > 0 else -n
    mask = (ps.instance_map == INSTANCE_IDS[t.level]).astype(float)
    best = 0.0
    for s in np.linspace(0.15, 0.85, 71):
        p = a + s * (b - a)
        steps = np.arange(-1.0, 12.0, 0.05)
        pts = p[None, :] + steps[:, None] * n[None, :]
        vals = map_coordinates(mask, pts.T, order=1)
        inside = np.nonzero(vals >= 0.5)[0]
        if len(inside):
            best = max(best, steps[inside[0]])
    return best * ps.spacing_mm[0]


def test_endplate_depth_matches_rasterised_mask_within_a_pixel():
    ps = _slice(seed=8, deformities={"L3": ("biconcave", 2)}, schmorl_levels=("L4",),
                corner_radius_mm=0.0)
    for level in ("L2", "L3", "L4"):
        t = _truth(ps, level)
        assert _depth_from_mask(ps, t, "superior") == pytest.approx(t.SC_mm, abs=0.6)
        assert _depth_from_mask(ps, t, "inferior") == pytest.approx(t.IC_mm, abs=0.6)


def test_schmorl_node_is_deep_narrow_and_keeps_heights():
    ps = _slice(seed=9, schmorl_levels=("L2",))
    t = _truth(ps, "L2")
    assert t.schmorl and not t.fracture
    assert 2.0 <= max(t.SC_mm, t.IC_mm) <= 5.5
    assert abs(t.AH_mm / t.PH_mm - LEVEL_DESIGN["L2"]["wedge"]) < 4 * WEDGE_SD


def test_osteophyte_is_in_the_mask_but_not_in_the_corners():
    plain = _slice(seed=6)
    spur = _slice(seed=6, osteophyte_levels=("L4",))
    t0, t1 = _truth(plain, "L4"), _truth(spur, "L4")
    assert t1.osteophyte and not t0.osteophyte
    assert t1.corners_rc == t0.corners_rc      # the beak is drawn after the corner draws
    lid = INSTANCE_IDS["L4"]
    extra = (spur.instance_map == lid).sum() - (plain.instance_map == lid).sum()
    assert 8 <= extra <= 150                    # a few mm^2 of bone (0.36 mm^2 per pixel)


def test_same_seed_same_slice_and_healthy_ratio_spread():
    a, b = _slice(seed=21), _slice(seed=21)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instance_map, b.instance_map)
    ratios = {lv: [] for lv in ("L1", "L3", "L5")}
    for seed in range(12):
        for t in _slice(seed=100 + seed).truth:
            if t.level in ratios:
                ratios[t.level].append(t.AH_mm / t.PH_mm)
    for lv, r in ratios.items():
        assert np.mean(r) == pytest.approx(LEVEL_DESIGN[lv]["wedge"], abs=0.03)
        assert np.std(r) < 0.04
    assert np.mean(ratios["L5"]) > np.mean(ratios["L1"])


def test_crops_remove_t12_or_sacrum_and_transitional_counts():
    no_t12 = _slice(seed=1, t12_in_fov=False)
    assert "T12" not in [t.level for t in no_t12.truth]
    no_s1 = _slice(seed=1, sacrum_in_fov=False)
    assert (no_s1.instance_map == 7).sum() < 0.3 * (_slice(seed=1).instance_map == 7).sum()
    six = _slice(seed=1, n_lumbar=6)
    assert [t.level for t in six.truth][-2:] == ["L5", "L6"]
    four = _slice(seed=1, n_lumbar=4)
    assert [t.level for t in four.truth][-1] == "L4"


def test_wall_concavity_narrows_the_mask_but_keeps_the_corner_truth():
    straight = _slice(seed=6)
    bowed = _slice(seed=6, wall_concavity_mm=1.5)
    t0, t1 = _truth(straight, "L3"), _truth(bowed, "L3")
    assert t1.corners_rc == t0.corners_rc and t1.AH_mm == t0.AH_mm and t1.MH_mm == t0.MH_mm
    lid = INSTANCE_IDS["L3"]
    lost_mm2 = ((straight.instance_map == lid).sum() - (bowed.instance_map == lid).sum()) * 0.36
    # at most the area of two sine bows (2/pi * depth * height), anterior 1.5 mm + posterior 0.9 mm
    assert 3.0 < lost_mm2 <= 2 / np.pi * (1.5 * t1.AH_mm + 0.9 * t1.PH_mm) + 5
