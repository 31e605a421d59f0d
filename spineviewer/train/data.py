"""Training data: SPIDER targets derived from the released masks, augmentation, mixing.

No PyTorch here (numpy / scipy only), so the target derivation is testable anywhere.

SPIDER masks (as redistributed, see the data README): 0 background, 1 vertebra (whole bone,
body and posterior elements), 2 intervertebral disc, 3 spinal canal; the sacrum is not
labelled. Network targets: 0 background, 1 vertebral body, 2 sacrum, 3 disc and
:data:`IGNORE` (255) for pixels excluded from the loss (everything caudal to the lowest
labelled disc, where the unlabelled sacrum lies).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from spineviewer.train.reference import posterior_wall

__all__ = [
    "IGNORE",
    "MODEL_SHAPE",
    "MODEL_SPACING_MM",
    "NORM_SCALE",
    "TARGET_CLASSES",
    "SpiderCase",
    "augment_spider",
    "derive_spider_target",
    "intensity_augment",
    "load_spider",
    "read_manifest",
    "spider_eval_sample",
]

IGNORE = 255
#: Partial label: background or sacrum (SPIDER below the lowest labelled disc).
BG_OR_SACRUM = 254
MODEL_SHAPE = (448, 320)
MODEL_SPACING_MM = 0.6
#: Input H and W must be multiples of this (four 2x2 poolings).
MODEL_STRIDE = 16
NORM_SCALE = 2500.0
TARGET_CLASSES = ("background", "body", "sacrum", "disc")

# SPIDER mask values (data README).
SPIDER_VERTEBRA, SPIDER_DISC, SPIDER_CANAL = 1, 2, 3
#: Assumed range of SPIDER native in-plane spacing (README: roughly 0.3-0.9 mm).
SPIDER_SPACING_RANGE_MM = (0.45, 0.85)
#: Spacing assumed for deterministic evaluation resampling.
SPIDER_EVAL_SPACING_MM = 0.65


@dataclass(frozen=True)
class SpiderCase:
    """One SPIDER image/mask pair from the manifest."""

    file: str
    case: int
    slice: int
    central_rank: int
    split: str


def holdout_patients(root: str | Path, n: int, seed: int) -> list[int]:
    """The ``n`` SPIDER train patients a run withholds for checkpoint selection (seeded)."""
    if n <= 0:
        return []
    ids = sorted({c.case for c in read_manifest(root, "train")})
    rng = np.random.default_rng([seed, 4242])
    return sorted(int(i) for i in rng.choice(ids, size=min(n, len(ids) - 1), replace=False))


def read_manifest(root: str | Path, split: str | None = None) -> list[SpiderCase]:
    """Rows of ``manifest.csv`` (optionally one split), in file order."""
    out = []
    with open(Path(root) / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if split is None or row["split"] == split:
                out.append(SpiderCase(row["file"], int(row["case"]), int(row["slice"]),
                                      int(row["central_rank"]), row["split"]))
    return out


def load_spider(root: str | Path, case: SpiderCase) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (H, W), SPIDER mask uint8 (H, W)) in canonical orientation.

    SPIDER slices already have superior at row 0 and anterior at col 0 (the discs lie at
    smaller column than the canal), so no flip is needed; :func:`derive_spider_target`
    checks this per mask.
    """
    from skimage.io import imread

    root = Path(root)
    image = np.asarray(imread(root / "images" / case.file))
    mask = np.asarray(imread(root / "masks" / case.file))
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2).astype(np.uint8)
    return image, mask.astype(np.uint8)


def _lowest_disc(mask: np.ndarray, min_area_px: int = 30) -> np.ndarray | None:
    """(row, col) pixels of the lowest labelled disc of at least ``min_area_px``, or None."""
    lab, n = ndi.label(mask == SPIDER_DISC)
    comps = [np.argwhere(lab == k) for k in range(1, n + 1)]
    comps = [c for c in comps if len(c) >= min_area_px]
    return max(comps, key=lambda c: c[:, 0].mean()) if comps else None


def _lowest_disc_floor(mask: np.ndarray, min_area_px: int = 30) -> np.ndarray | None:
    """Per-column row of the caudal border of the lowest disc (line fit), or None."""
    disc = _lowest_disc(mask, min_area_px)
    if disc is None:
        return None
    rr, cc = disc[:, 0], disc[:, 1]
    cols = np.unique(cc)
    bottom = np.array([rr[cc == c].max() for c in cols], dtype=float)
    if cols.size >= 2:
        slope, icpt = np.polyfit(cols, bottom, 1)
    else:
        slope, icpt = 0.0, bottom[0]
    all_cols = np.arange(mask.shape[1])
    floor = slope * all_cols + icpt
    # Inside the disc's own column range use its true border.
    floor[cols] = bottom
    return floor


#: Depth of the S1 pseudo-label below the lowest disc, as a fraction of L5's height.
S1_PSEUDO_DEPTH = 0.7


def _s1_pseudo_label(mask: np.ndarray, target: np.ndarray) -> np.ndarray:
    """S1's upper body as a band under the lowest labelled disc (bool, source grid).

    SPIDER leaves the sacrum unlabelled, so a network learns S1 only from phantoms and on
    real MRI often calls it a lumbar body. The band spans the disc's AP extent and reaches
    ``S1_PSEUDO_DEPTH`` of L5's height along the column (L5 -> lowest disc); empty when
    either is missing.
    """
    disc = _lowest_disc(mask)
    out = np.zeros(mask.shape, bool)
    if disc is None:
        return out
    blab, nb = ndi.label(target == 1)
    bodies = [np.argwhere(blab == k) for k in range(1, nb + 1)]
    above = [b for b in bodies if b[:, 0].mean() < disc[:, 0].mean()]
    if not above:
        return out
    l5 = max(above, key=lambda b: b[:, 0].mean())
    axis = disc.mean(axis=0) - l5.mean(axis=0)
    axis /= np.linalg.norm(axis)
    normal = np.array([-axis[1], axis[0]])
    height = np.ptp(l5 @ axis)
    lo, hi = np.percentile(disc @ normal, [5, 95])
    base = float((disc @ axis).max())
    rc = np.indices(mask.shape).reshape(2, -1).T.astype(float)
    s, t = rc @ axis, rc @ normal
    band = (s > base) & (s <= base + S1_PSEUDO_DEPTH * height) & (t >= lo) & (t <= hi)
    return band.reshape(mask.shape)


def derive_spider_target(mask: np.ndarray, min_body_area_px: int = 40,
                         s1_pseudo: bool = False) -> np.ndarray:
    """Network target from a SPIDER mask (canonical orientation).

    Vertebral body = vertebra pixels anterior to the posterior vertebral wall
    (``train.reference.posterior_wall``: the canal's front where it agrees with the discs'
    posterior margins, else the line through those margins), keeping connected components of at least ``min_body_area_px`` (drops
    pedicle / posterior-element fragments cut off by the wall); disc = SPIDER disc;
    BG_OR_SACRUM = everything caudal to the lowest labelled disc (unlabelled sacrum there:
    neither body nor disc, so a body predicted on S1 is penalised).

    Parameters
    ----------
    mask : ndarray of uint8, (H, W)
        SPIDER mask: 0 background, 1 vertebra, 2 disc, 3 canal.
    min_body_area_px : int
        Smallest body component kept, in source pixels.
    s1_pseudo : bool
        Label S1's upper body (``_s1_pseudo_label``) as sacrum inside the
        background-or-sacrum region.

    Returns
    -------
    ndarray of uint8, (H, W)
        0 background, 1 body, 2 sacrum (only with ``s1_pseudo``), 3 disc,
        254 background-or-sacrum.
    """
    mask = np.asarray(mask)
    h, w = mask.shape
    target = np.zeros((h, w), dtype=np.uint8)
    border = posterior_wall(mask)
    cols = np.arange(w)[None, :]
    anterior = cols < border[:, None]
    body = (mask == SPIDER_VERTEBRA) & anterior
    body = ndi.binary_opening(body, structure=np.ones((3, 3), bool))
    lab, n = ndi.label(body)
    if n:
        areas = ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
        keep = np.zeros(n + 1, bool)
        keep[1:] = areas >= min_body_area_px
        body = keep[lab]
    target[body] = 1
    target[mask == SPIDER_DISC] = 3
    floor = _lowest_disc_floor(mask)
    if floor is not None:
        rows = np.arange(h)[:, None]
        target[rows > floor[None, :]] = BG_OR_SACRUM
        if s1_pseudo:
            target[_s1_pseudo_label(mask, target) & (target == BG_OR_SACRUM)] = 2
    return target


def model_grid_affine(src_shape: tuple[int, int], spacing_mm: float, rot_deg: float = 0.0,
                      shift_mm: tuple[float, float] = (0.0, 0.0)
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset mapping model-grid (row, col) to source (row, col), as
    ``scipy.ndimage.affine_transform`` takes them.

    The model grid's centre lands on the source centre moved by ``shift_mm`` (row, col);
    ``spacing_mm`` is the (assumed) source pixel spacing, ``rot_deg`` an in-plane rotation.
    """
    zoom = MODEL_SPACING_MM / spacing_mm          # source px per model px
    th = np.deg2rad(rot_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    mat = rot * zoom
    src_c = (np.array(src_shape, float) - 1) / 2 + np.array(shift_mm) / spacing_mm
    mdl_c = (np.array(MODEL_SHAPE, float) - 1) / 2
    offset = src_c - mat @ mdl_c
    return mat, offset


def resample_pair(image: np.ndarray, target: np.ndarray, mat: np.ndarray, offset: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Image (linear) and target (nearest) in the model grid; 0 outside the source."""
    img = ndi.affine_transform(image.astype(np.float32), mat, offset, output_shape=MODEL_SHAPE,
                               order=1, mode="constant", cval=0.0)
    tgt = ndi.affine_transform(target, mat, offset, output_shape=MODEL_SHAPE, order=0,
                               mode="constant", cval=0)
    return img, tgt


def intensity_augment(rng: np.random.Generator, image01: np.ndarray) -> np.ndarray:
    """Random gain U(0.3, 1.3), gamma, smooth bias, noise; clipped to [0, 1] (float32)."""
    img = np.clip(image01, 0.0, None)
    peak = max(float(img.max()), 1e-6)
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    img = peak * (img / peak) ** gamma
    if rng.random() < 0.5:
        h, w = img.shape
        yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        a, b, c = rng.normal(0, 0.2, 3)
        img = img * np.exp(a * yy + b * xx + c * yy * xx).astype(np.float32)
    img = img * rng.uniform(0.3, 1.3)
    if rng.random() < 0.3:
        img = ndi.gaussian_filter(img, rng.uniform(0.3, 1.0))
    sd = rng.uniform(0.0, 0.04)
    img = img + rng.normal(0.0, sd, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def augment_spider(rng: np.random.Generator, image: np.ndarray, target: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One augmented training pair in the model grid.

    Native spacing U(0.45, 0.85) mm resampled to 0.6 mm, rotation +-15 deg, translation
    (crops that cut off the sacrum or T12 included), intensity curve / gain / noise.
    Pixels outside the source field of view are background in both image and target.
    """
    spacing = rng.uniform(*SPIDER_SPACING_RANGE_MM)
    rot = rng.uniform(-15.0, 15.0)
    h, w = image.shape
    # Centre on the spine's column most of the time; rows: image centre +- 60 mm.
    spine_cols = np.nonzero(np.isin(target, (1, 3)).any(axis=0))[0]
    col_c = (w - 1) / 2
    if spine_cols.size and rng.random() < 0.7:
        col_c = float(spine_cols.mean()) + rng.normal(0, 10.0 / spacing)
    shift = (rng.uniform(-60.0, 60.0), (col_c - (w - 1) / 2) * spacing + rng.uniform(-20, 20))
    mat, offset = model_grid_affine((h, w), spacing, rot, shift)
    img, tgt = resample_pair(image.astype(np.float32) / 255.0, target, mat, offset)
    return intensity_augment(rng, img), tgt


def spider_eval_sample(image: np.ndarray, target: np.ndarray,
                       spacing_mm: float = SPIDER_EVAL_SPACING_MM
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic model-grid pair for validation: fixed spacing, centred, image/255."""
    mat, offset = model_grid_affine(image.shape, spacing_mm)
    img, tgt = resample_pair(image.astype(np.float32) / 255.0, target, mat, offset)
    return np.clip(img, 0.0, 1.0).astype(np.float32), tgt
