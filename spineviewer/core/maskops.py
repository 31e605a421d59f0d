"""Exact, faster forms of a few whole-slice mask operations.

Each function returns exactly what the ``numpy``/``scipy.ndimage`` call it names returns;
it only works on the mask's bounding box (a body is a few percent of a slice), which the
per-vertebra mode runs thousands of times per study.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1), half-open, of the nonzero pixels of a 2-D ``mask``; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[r0:r1].any(axis=0))
    return r0, r1, int(cols[0]), int(cols[-1]) + 1


def argwhere(mask: np.ndarray) -> np.ndarray:
    """``np.argwhere(mask)`` of a 2-D mask (same values, same row-major order)."""
    box = bounding_box(mask)
    if box is None:
        return np.argwhere(mask)
    r0, r1, c0, c1 = box
    pts = np.argwhere(mask[r0:r1, c0:c1])
    pts += (r0, c0)
    return pts


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``ndi.label(mask)`` (cross structure) of a 2-D mask, labelled on its bounding box.

    The same labels: components are numbered in the order a row-major scan first meets them,
    and that order is the same inside the box as in the whole slice.
    """
    box = bounding_box(mask)
    if box is None:
        return ndi.label(mask)
    r0, r1, c0, c1 = box
    sub, n = ndi.label(mask[r0:r1, c0:c1])
    lab = np.zeros(mask.shape, sub.dtype)
    lab[r0:r1, c0:c1] = sub
    return lab, n


def component_areas(lab: np.ndarray, n: int) -> np.ndarray:
    """Pixel counts (float) of components 1..n of a label image: ``ndi.sum(mask, lab, 1..n)``."""
    return np.bincount(lab.ravel(), minlength=n + 1)[1:n + 1].astype(float)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``ndi.binary_fill_holes(mask)`` of a 2-D mask, run on its bounding box plus a 1-pixel ring.

    The same result as on the whole slice: every pixel outside the box reaches the image
    border, and a background path out of the box passes the ring (or the image border).
    """
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)
    if box is None:
        return out
    r0, r1, c0, c1 = box
    r0, r1 = max(r0 - 1, 0), min(r1 + 1, mask.shape[0])
    c0, c1 = max(c0 - 1, 0), min(c1 + 1, mask.shape[1])
    out[r0:r1, c0:c1] = ndi.binary_fill_holes(mask[r0:r1, c0:c1])
    return out


def dilate(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``ndi.binary_dilation(mask, iterations=iterations)`` (cross structure) of a 2-D mask.

    Run on the bounding box grown by ``iterations`` pixels: the dilation reaches no further.
    """
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)
    if box is None:
        return out
    r0, r1, c0, c1 = box
    r0, r1 = max(r0 - iterations, 0), min(r1 + iterations, mask.shape[0])
    c0, c1 = max(c0 - iterations, 0), min(c1 + iterations, mask.shape[1])
    out[r0:r1, c0:c1] = ndi.binary_dilation(mask[r0:r1, c0:c1], iterations=iterations)
    return out


def centres_of_mass(mask: np.ndarray, lab: np.ndarray, index) -> list[tuple[float, float]]:
    """``ndi.center_of_mass(mask, lab, index)`` of a 2-D bool ``mask`` and its labels ``lab``
    (nonzero only inside ``mask``), summed over the mask's bounding box only.

    The same numbers bit for bit: each label's pixels are summed in the same (row-major)
    order with the same global coordinates.
    """
    box = bounding_box(mask)
    if box is None:
        return ndi.center_of_mass(mask, lab, index)
    r0, r1, c0, c1 = box
    sub, labs = mask[r0:r1, c0:c1], lab[r0:r1, c0:c1]
    normalizer = ndi.sum_labels(sub, labs, index)
    grids = np.ogrid[r0:r1, c0:c1]
    results = [ndi.sum_labels(sub * g.astype(float), labs, index) / normalizer for g in grids]
    return [tuple(v) for v in np.array(results).T]
