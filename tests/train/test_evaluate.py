"""Evaluation helpers (no PyTorch): Dice, ground-truth level naming, matching."""

from dataclasses import dataclass

import numpy as np
import pytest

from spineviewer.train.data import IGNORE
from spineviewer.train.evaluate import dice, gt_levels, naming_matches


def _column(n_bodies: int = 6, rows: int = 448) -> np.ndarray:
    """Model-grid target: ``n_bodies`` bodies (40 rows) separated by discs (12 rows), the
    lowest disc at rows ~330-342 and IGNORE below it."""
    t = np.zeros((rows, 320), np.uint8)
    bottom = 342
    for k in range(n_bodies):
        d1 = bottom - 12 - k * 52
        t[d1:d1 + 12, 100:160] = 3
        b1 = d1 - 40
        if b1 + 40 > 0:
            t[max(b1, 0):b1 + 40, 100:160] = 1
    t[bottom + 1:] = IGNORE
    return t


@dataclass
class _Body:
    level: str
    mask: np.ndarray


def test_dice_ignores_ignore_pixels():
    t = _column()
    p = (t == 1).astype(np.uint8)
    assert dice(p, t, 1) == pytest.approx(1.0)
    p2 = p.copy()
    p2[400:, :] = 1                       # predictions inside IGNORE do not count
    assert dice(p2, t, 1) == pytest.approx(1.0)
    assert np.isnan(dice(p, t, 2))


def test_gt_levels_names_from_the_lowest_disc_up():
    named, visible = gt_levels(_column(6))
    assert [n for n, _ in named] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert visible                        # 105 rows (63 mm) of grid below the lowest disc
    l5 = dict(named)["L5"]
    assert np.nonzero(l5)[0].max() == 342 - 12 - 1


def test_sacrum_not_visible_when_lowest_disc_at_the_edge():
    t = _column(5)
    cut = t[:352]                         # grid ends 9 rows (5 mm) below the lowest disc
    cut = np.vstack([np.zeros((96, 320), np.uint8), cut])
    _, visible = gt_levels(cut)
    assert not visible


def test_naming_matches_counts_wrong_and_missing_names():
    named, _ = gt_levels(_column(6))
    masks = dict(named)
    preds = [_Body("L5", masks["L5"]), _Body("L3", masks["L4"]),   # L4 misnamed
             _Body("L3", masks["L3"]), _Body("L2", masks["L2"])]   # L1 missing
    res = dict(naming_matches(named, preds))
    assert res == {"L5": "L5", "L4": "L3", "L3": "L3", "L2": "L2", "L1": None}


def test_measurement_agreement_is_perfect_for_identical_masks_and_sees_a_shift():
    from spineviewer.train.evaluate import measurement_agreement

    pairs, shifted = [], []
    for k, (h, w) in enumerate([(40, 60), (44, 62), (46, 66), (42, 58), (48, 64)]):
        m = np.zeros((120, 120), bool)
        m[30:30 + h, 20:20 + w] = True
        m[30:30 + h // 4, 20:24 + k] = False            # bodies differ in shape
        pairs.append((m, m))
        s = m.copy()
        s[30:34, :] = False                             # prediction 4 rows short at the top
        shifted.append((m, s))
    same = measurement_agreement(pairs)
    assert same["bodies"] == 5
    assert same["AH_mm"]["bias"] == 0.0 and same["PH_mm"]["icc2_1"] == 1.0
    moved = measurement_agreement(shifted)
    assert moved["PH_mm"]["bias"] == pytest.approx(-4 * 0.6, abs=0.4)
    assert measurement_agreement(pairs[:2]) == {"bodies": 2}


def test_matched_bodies_carry_each_columns_direction_as_the_app_measures():
    """The agreement figures measure both masks as the app does: with the column's direction
    at each body (a steep L5 keeps its corner roles), from each column's own centroids."""
    from scipy import ndimage

    from spineviewer.train.evaluate import _matched_bodies, measurement_agreement

    named, _ = gt_levels(_column(6))
    masks = dict(named)
    # the predicted column lists its bodies bottom-up: the directions must not care
    preds = [_Body(lv, ndimage.binary_erosion(masks[lv])) for lv in ("L5", "L4", "L3", "L2")]
    pairs = _matched_bodies(named, preds)
    assert len(pairs) == 4                               # L1 has no predicted body
    for gm, pm, g_dir, p_dir in pairs:
        assert g_dir == pytest.approx((1.0, 0.0)) and p_dir == pytest.approx((1.0, 0.0))
        assert gm.sum() > pm.sum()
    agree = measurement_agreement(pairs)
    assert agree["bodies"] == 4 and agree["AH_mm"]["bias"] < 0
