"""Domain-randomised phantom samples for training the segmentation network (SynthSeg style).

``train_sample(rng)`` returns an image already in the model grid (0.6 mm, 448 x 320, canonical
orientation) and normalised like the paper (scanner units / 2500, clipped to 1), plus the target
class map (0 background, 1 vertebral body, 2 sacrum, 3 disc). Geometry is drawn with many
deformities; tissue intensities, bias field, noise, blur, resolution, contrast curve, field of
view and in-plane rotation are randomised so the network learns shape rather than one look.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from spineviewer.synth.anatomy import build_anatomy
from spineviewer.synth.layers import (
    CLASS_IDS,
    T2_INTENSITY,
    bone_coverage,
    bone_rim,
    build_layers,
    compose_image,
    compose_labels,
)
from spineviewer.synth.params import random_params
from spineviewer.synth.phantom import lateral_variant

#: Model grid of the paper's pre-processing.
MODEL_SPACING_MM = 0.6
MODEL_SHAPE = (448, 320)
#: Paper's intensity normalisation: 12-bit scanner units / 2500, clipped to 1.
NORM_SCALE = 2500.0
#: Target classes of the network.
TARGET_CLASSES = ("background", "body", "sacrum", "disc")

_TARGET_LUT = np.zeros(256, dtype=np.uint8)
_TARGET_LUT[CLASS_IDS["body"]] = 1
_TARGET_LUT[CLASS_IDS["sacrum"]] = 2
_TARGET_LUT[CLASS_IDS["disc"]] = 3


def _tissue_values(rng: np.random.Generator) -> dict[str, float]:
    """T2-like values with jitter most of the time, fully random values sometimes."""
    if rng.random() < 0.2:
        return {k: float(rng.uniform(0.02, 1.0)) for k in T2_INTENSITY}
    vals = {k: float(v * rng.lognormal(0.0, 0.25)) for k, v in T2_INTENSITY.items()}
    vals["marrow"] = float(rng.uniform(0.2, 0.75))       # fatty marrow may be bright
    vals["sacrum"] = vals["marrow"] * float(rng.uniform(0.8, 1.2))
    return vals


def _bias_field(rng: np.random.Generator, shape, strength: float) -> np.ndarray:
    """Smooth multiplicative field: exp of a random low-order cosine series."""
    y = np.linspace(0.0, np.pi, shape[0], dtype=np.float32)
    x = np.linspace(0.0, np.pi, shape[1], dtype=np.float32)
    coef = rng.normal(0.0, strength, (3, 3)) / np.array([[1.0, 1.5, 2.5]]).T / [1.0, 1.5, 2.5]
    fy = np.stack([np.cos(k * y) for k in range(3)])          # (3, rows)
    fx = np.stack([np.cos(k * x + rng.uniform(0, 1)) for k in range(3)])
    return np.exp(fy.T @ coef.astype(np.float32) @ fx).astype(np.float32)


def _degrade(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Resolution loss (acquired at 0.4-1.0 mm), blur, bias field, noise."""
    shape = img.shape
    res_mm = rng.uniform(0.4, 1.0)
    if res_mm > 0.65:
        f = MODEL_SPACING_MM / res_mm
        small = zoom(gaussian_filter(img, 0.4 / f), f, order=1)
        img = zoom(small, (shape[0] / small.shape[0], shape[1] / small.shape[1]), order=1)
        img = img[: shape[0], : shape[1]]
    if rng.random() < 0.4:
        img = gaussian_filter(img, rng.uniform(0.3, 1.0))
    img = img * _bias_field(rng, shape, rng.uniform(0.0, 0.35))
    sd = rng.uniform(0.0, 0.06)
    if rng.random() < 0.6:     # Rician magnitude noise
        img = np.hypot(img + rng.normal(0, sd, shape), rng.normal(0, sd, shape))
    else:
        img = img + rng.normal(0, sd, shape)
    return np.clip(img, 0.0, None).astype(np.float32)


def _crop_fov(rng: np.random.Generator, img: np.ndarray, target: np.ndarray) -> None:
    """Zero a band at a border, as when the source field of view is smaller than the grid."""
    side = int(rng.integers(0, 4))
    width = int(rng.integers(10, 90))
    sl = [(slice(0, width), slice(None)), (slice(-width, None), slice(None)),
          (slice(None), slice(0, width)), (slice(None), slice(-width, None))][side]
    img[sl] = 0.0
    target[sl] = 0


#: Share of samples whose endplate depressions are filled with marrow-like, dark or bright
#: signal instead of the disc's own (a depression that the network should not fill in).
FILL_PROB = 0.5
#: Cortical rim thickness range (mm) and how dark it is (fraction of the local signal removed).
RIM_WIDTH_MM = (0.5, 2.2)
RIM_DARKNESS = (0.2, 0.97)
#: Share of samples whose cortex is a hard-edged dark band of even thickness (sharp on the
#: marrow side and on the disc side; thick endplates, calcified cartilage, chemical shift)
#: instead of the soft rim that fades into the marrow; its thickness (mm) and darkness. The
#: label is bone across the whole band: heights run between its outer margins. Off (0) by
#: default, and then the samples are those of before: fine-tunes with 0.5 and 0.3 (model card
#: v4, ``stage5_hardrim_not_adopted``: 5g, 5h, 5i) brought renderer B's heights to the outer
#: margin but lowered real-MRI Dice or posterior-height agreement below the adoption rules.
#: A training run sets it per run (``train --hard-rim-prob``, recorded in its recipe).
HARD_RIM_PROB = 0.0
HARD_RIM_MM = (0.4, 2.0)
HARD_RIM_DARKNESS = (0.6, 0.97)


def _hard_rim(layers, shape, spacing_mm: float, thickness_mm: float) -> np.ndarray:
    """Weight in [0, 1] of a dark band ``thickness_mm`` thick just inside every bone's border
    (endplates included), with partial-volume edges on both sides."""
    from scipy.ndimage import distance_transform_edt

    bone = bone_coverage(layers, shape)
    # pixel centre to the border: half a pixel less than to the nearest outside centre
    depth = distance_transform_edt(bone >= 0.5) - 0.5
    band = np.clip(thickness_mm / spacing_mm - depth + 0.5, 0.0, 1.0)
    return (band * bone).astype(np.float32)


def _bodies(cls: np.ndarray, inst: np.ndarray, min_px: int):
    """Each vertebral body's mask (full grid), in instance order, skipping bodies under
    ``min_px`` pixels."""
    is_body = cls == CLASS_IDS["body"]
    for k in np.unique(inst[is_body]):
        if k == 0:
            continue
        body = (inst == k) & is_body
        if body.sum() >= min_px:
            yield body


def _fill_depressions(rng: np.random.Generator, img: np.ndarray, cls: np.ndarray,
                      inst: np.ndarray, values: dict[str, float]) -> None:
    """Paint each body's endplate depressions (its convex hull minus the body, where the
    labels say disc) with one fill per body: marrow-like, dark (degenerated disc, sclerosis)
    or bright (fluid-like disc). Labels stay as they are: a depression is not bone."""
    from skimage.morphology import convex_hull_image

    disc = cls == CLASS_IDS["disc"]
    for body in _bodies(cls, inst, 50):
        rows, cols = np.nonzero(body)
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        pit = convex_hull_image(body[box]) & ~body[box] & disc[box]
        if pit.sum() < 15:
            continue
        kind = rng.choice(["marrow", "dark", "bright"])
        value = (values["marrow"] * rng.uniform(0.7, 1.3) if kind == "marrow"
                 else rng.uniform(0.02, 0.2) if kind == "dark" else rng.uniform(0.6, 1.0))
        w = gaussian_filter(pit.astype(np.float32), 0.7) * pit
        win = img[box]
        win += w * (value - win)


#: Share of samples with marrow changes along endplates (Modic-like bands, bright as oedema or
#: fat, dark as sclerosis) or round bright haemangiomas, all still labelled body: on the
#: second renderer the network left such bands out of the body (heights 4-5 mm short, false
#: "crush" calls).
MARROW_CHANGE_PROB = 0.35
MODIC_ENDPLATE_PROB = 0.3
MODIC_DEPTH_MM = (1.5, 8.0)
#: Rim darkness in samples with marrow changes (see ``train_sample``).
MARROW_RIM_DARKNESS = (0.6, 0.97)


def _marrow_changes(rng: np.random.Generator, img: np.ndarray, cls: np.ndarray,
                    inst: np.ndarray) -> None:
    """Paint Modic-like bands under some endplates and the odd haemangioma, inside bodies."""
    from scipy.ndimage import center_of_mass, distance_transform_edt

    disc = cls == CLASS_IDS["disc"]
    if not disc.any():
        return
    dist_mm = distance_transform_edt(~disc) * MODEL_SPACING_MM
    rows, cols_at = np.ogrid[:img.shape[0], :img.shape[1]]
    for body in _bodies(cls, inst, 200):
        r0, _ = center_of_mass(body)
        for upper in (True, False):
            if rng.random() >= MODIC_ENDPLATE_PROB:
                continue
            depth = rng.uniform(*MODIC_DEPTH_MM)
            band = body & (dist_mm <= depth) & ((rows < r0) if upper else (rows >= r0))
            cols = np.nonzero(band.any(axis=0))[0]
            if cols.size < 5:
                continue
            if rng.random() < 0.5:      # part of the endplate only
                lo, hi = np.sort(rng.uniform(cols.min(), cols.max(), 2))
                band &= (cols_at >= lo) & (cols_at <= max(hi, lo + 8))
            value = rng.uniform(0.5, 1.1) if rng.random() < 0.7 else rng.uniform(0.02, 0.15)
            w = gaussian_filter(band.astype(np.float32), rng.uniform(0.5, 1.5)) * body
            img += w * (value - img)
        if rng.random() < 0.15:          # haemangioma: a round bright spot
            rr, cc = np.nonzero(body)
            i = int(rng.integers(len(rr)))
            rad = rng.uniform(2.0, 6.0) / MODEL_SPACING_MM
            spot = ((rows - rr[i]) ** 2 + (cols_at - cc[i]) ** 2 <= rad ** 2) & body
            w = gaussian_filter(spot.astype(np.float32), 0.8) * body
            img += w * (rng.uniform(0.6, 1.1) - img)


def train_sample(rng: np.random.Generator, fracture_prob: float = 0.25,
                 hard_rim_prob: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One domain-randomised training pair in the model grid.

    Parameters
    ----------
    rng : the only source of randomness.
    fracture_prob : chance that a vertebra carries a deformity (wedge, biconcave, crush).
    hard_rim_prob : share of samples drawn with the hard cortical band (None:
        `HARD_RIM_PROB`); at 0 the samples are those of before the band existed.

    Returns
    -------
    image : float32 (448, 320) in [0, 1] (scanner units / 2500, clipped).
    target : uint8 (448, 320), 0 background, 1 vertebral body, 2 sacrum, 3 disc.
    """
    params = random_params(rng, fracture_prob=fracture_prob, schmorl_prob=0.12, osteophyte_prob=0.15,
                           degeneration_prob=0.25, crop_prob=0.2, transitional_prob=0.05,
                           spacing_mm=(MODEL_SPACING_MM, MODEL_SPACING_MM), shape=MODEL_SHAPE)
    params.tilt_deg = float(rng.uniform(-15.0, 15.0))
    params.column_offset_mm = (float(rng.normal(0, 15.0)), float(rng.normal(0, 12.0)))
    params.size_scale = float(rng.uniform(0.85, 1.15))
    params.wall_concavity_mm = float(rng.uniform(0.0, 1.5))
    anat = build_anatomy(rng, params)
    if rng.random() < 0.3:
        anat = lateral_variant(anat, rng.uniform(0.0, 7.0))
    spacing = (MODEL_SPACING_MM, MODEL_SPACING_MM)
    layers = build_layers(anat, spacing, MODEL_SHAPE, ss=2)
    cls, inst = compose_labels(layers, MODEL_SHAPE)
    target = _TARGET_LUT[cls]
    tex = gaussian_filter(rng.standard_normal(MODEL_SHAPE).astype(np.float32), rng.uniform(0.6, 2.0))
    tex /= max(float(tex.std()), 1e-6)
    values = _tissue_values(rng)
    img = compose_image(layers, MODEL_SHAPE, values, tex,
                        texture_amp=float(rng.uniform(0.0, 0.3)))
    if rng.random() < FILL_PROB:
        _fill_depressions(rng, img, cls, inst, values)
    darkness = rng.uniform(*RIM_DARKNESS)
    if rng.random() < MARROW_CHANGE_PROB:
        _marrow_changes(rng, img, cls, inst)
        # a band is told from a filled depression by where the cortex runs (outside the band,
        # inside the depression): draw that cortex clearly
        darkness = max(darkness, rng.uniform(*MARROW_RIM_DARKNESS))
    hard = HARD_RIM_PROB if hard_rim_prob is None else float(hard_rim_prob)
    if hard > 0 and rng.random() < hard:
        darkness = max(darkness, rng.uniform(*HARD_RIM_DARKNESS))
        img *= 1.0 - darkness * _hard_rim(layers, MODEL_SHAPE, MODEL_SPACING_MM,
                                          rng.uniform(*HARD_RIM_MM))
    else:
        img *= 1.0 - darkness * bone_rim(layers, MODEL_SHAPE, spacing,
                                         width_mm=rng.uniform(*RIM_WIDTH_MM))
    img = _degrade(rng, img)
    img = img ** float(np.exp(rng.normal(0.0, 0.25)))
    img *= rng.uniform(1200.0, 3600.0)
    if rng.random() < 0.3:
        _crop_fov(rng, img, target)
    image = np.clip(img / NORM_SCALE, 0.0, 1.0).astype(np.float32)
    return image, target
