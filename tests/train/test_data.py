"""SPIDER target derivation and augmentation (numpy only, no PyTorch)."""

import numpy as np
import pytest

from spineviewer.train.data import (
    BG_OR_SACRUM,
    IGNORE,
    MODEL_SHAPE,
    augment_spider,
    derive_spider_target,
    intensity_augment,
)


def _tiny_spider_mask() -> np.ndarray:
    """Two vertebrae (body + posterior element joined behind a canal), two discs, canal.

    Anterior is col 0. Bodies at cols 20-59, canal cols 62-71, posterior elements 74-99.
    """
    m = np.zeros((200, 120), np.uint8)
    m[:, 62:72] = 3                       # canal, whole height
    for top in (20, 90):                  # two vertebrae, 50 rows each
        m[top:top + 50, 20:60] = 1        # body
        m[top + 10:top + 30, 74:100] = 1  # posterior element
    m[72:88, 20:60] = 2                   # disc between them
    m[142:158, 20:60] = 2                 # lowest disc (L5-S1)
    m[162:195, 22:58] = 0                 # unlabelled sacrum stays background
    return m


def test_body_is_vertebra_anterior_to_canal():
    t = derive_spider_target(_tiny_spider_mask())
    assert (t[25:65, 20:60] == 1).all()
    assert (t[95:135, 20:60] == 1).all()
    # posterior elements and canal are background
    assert (t[:140, 62:] == 0).all()


def test_disc_class_and_bg_or_sacrum_below_lowest_disc():
    t = derive_spider_target(_tiny_spider_mask())
    assert (t[74:86, 22:58] == 3).all()
    assert (t[143:157, 22:58] == 3).all()
    assert (t[160:, :] == BG_OR_SACRUM).all()    # everything caudal to the lowest disc
    assert not (t[:140] >= BG_OR_SACRUM).any()
    assert not (t == 2).any()                    # sacrum never supervised from SPIDER


def test_small_fragments_anterior_to_canal_dropped():
    m = _tiny_spider_mask()
    m[5:8, 5:8] = 1                              # 9-pixel speck
    t = derive_spider_target(m, min_body_area_px=40)
    assert (t[5:8, 5:8] == 0).all()


def test_augment_spider_shapes_and_ranges():
    rng = np.random.default_rng(3)
    m = _tiny_spider_mask()
    img = (m * 60).astype(np.uint8)
    t = derive_spider_target(m)
    a, b = augment_spider(rng, img, t)
    assert a.shape == MODEL_SHAPE and b.shape == MODEL_SHAPE
    assert a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    assert set(np.unique(b)) <= {0, 1, 3, BG_OR_SACRUM}
    assert IGNORE not in b
    assert (b == 1).sum() > 100                  # the bodies survive resampling


def test_intensity_augment_gain_range():
    rng = np.random.default_rng(0)
    x = np.full((64, 64), 0.5, np.float32)
    means = [intensity_augment(rng, x).mean() for _ in range(200)]
    # gain U(0.3, 1.3) x bias field: the mean spans roughly 0.15 .. 0.65
    assert min(means) < 0.25 and max(means) > 0.55


def test_model_grid_affine_centre_and_scale():
    from spineviewer.train.data import model_grid_affine

    mat, off = model_grid_affine((641, 513), spacing_mm=1.2, shift_mm=(12.0, 0.0))
    centre_model = (np.array(MODEL_SHAPE) - 1) / 2
    src = mat @ centre_model + off
    # model centre -> source centre moved 12 mm = 10 px down
    assert src == pytest.approx([320.0 + 10.0, 256.0])
    # one model pixel (0.6 mm) = half a source pixel (1.2 mm)
    step = mat @ (centre_model + [1.0, 0.0]) + off - src
    assert step == pytest.approx([0.5, 0.0])


def test_lowest_body_kept_when_the_canal_label_ends_above_it():
    # The canal label stops at row 100 after veering forward: a border held constant below
    # it would cut the lowest body away (seen on SPIDER slices where L5 went missing).
    m = _tiny_spider_mask()
    m[100:, 62:72] = 0
    m[92:100, 62:72] = 0
    m[92:100, 30:40] = 3
    t = derive_spider_target(m)
    assert (t[101:135, 20:60] == 1).all()       # below the stray canal pixels
    assert (t[95:135, 62:] == 0).all()


def test_s1_pseudo_label_is_a_band_under_the_lowest_disc():
    m = _tiny_spider_mask()
    t = derive_spider_target(m, s1_pseudo=True)
    sac = t == 2
    rows, cols = np.nonzero(sac)
    assert rows.min() == 158                       # right under the lowest disc (rows 142-157)
    assert rows.max() == 158 + int(0.7 * 49) - 1   # 0.7 x L5's height (50 rows, ptp 49)
    assert cols.min() >= 20 and cols.max() <= 59   # within the disc's AP extent
    assert (t[:158] == derive_spider_target(m)[:158]).all()   # nothing above it changes
    assert (t[~sac] == derive_spider_target(m)[~sac]).all()
    no_disc = m.copy()
    no_disc[no_disc == 2] = 0
    assert not (derive_spider_target(no_disc, s1_pseudo=True) == 2).any()
