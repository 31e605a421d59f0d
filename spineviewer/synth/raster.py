"""Anti-aliased polygon rasterisation by supersampling, limited to the polygon's bounding box."""

from __future__ import annotations

import numpy as np


def _fill(rr: np.ndarray, cc: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the grid points (integer (row, col)) inside a polygon (even-odd rule).

    Scanline fill, vectorised over edges x rows: O(edges * rows + pixels), unlike
    ``skimage.draw.polygon`` which tests every pixel against every edge.
    """
    r0, r1 = rr, np.roll(rr, -1)
    c0, c1 = cc, np.roll(cc, -1)
    keep = r0 != r1
    r0, r1, c0, c1 = r0[keep], r1[keep], c0[keep], c1[keep]
    lo, hi = np.minimum(r0, r1), np.maximum(r0, r1)
    rows = np.arange(shape[0], dtype=float)
    # half-open rule: an edge counts for rows with lo <= row < hi
    hit = (rows[None, :] >= lo[:, None]) & (rows[None, :] < hi[:, None])
    e, row = np.nonzero(hit)
    x = c0[e] + (rows[row] - r0[e]) * (c1[e] - c0[e]) / (r1[e] - r0[e])
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    start, stop = np.ceil(x[0::2]), np.ceil(x[1::2])
    start = np.clip(start, 0, shape[1]).astype(np.intp)
    stop = np.clip(stop, 0, shape[1]).astype(np.intp)
    diff = np.zeros((shape[0], shape[1] + 1), dtype=np.int32)
    np.add.at(diff, (row[0::2], start), 1)
    np.add.at(diff, (row[1::2], stop), -1)
    return np.cumsum(diff[:, :-1], axis=1) > 0


def coverage(poly_mm: np.ndarray, spacing_mm: tuple[float, float], shape: tuple[int, int],
             ss: int = 4) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Fraction of each pixel covered by a polygon.

    Parameters
    ----------
    poly_mm : (N, 2) polygon vertices, (y, x) mm; pixel (r, c) has its centre at
        (r * spacing_row, c * spacing_col).
    spacing_mm : (row, col) pixel spacing.
    shape : image shape.
    ss : supersampling factor per axis (ss*ss samples per pixel).

    Returns
    -------
    (window, cov) where ``cov`` (float32, in [0, 1]) covers ``image[window]``, or None when the
    polygon misses the image.
    """
    rc = poly_mm / np.asarray(spacing_mm, dtype=float)
    r0 = max(int(np.floor(rc[:, 0].min())) - 1, 0)
    r1 = min(int(np.ceil(rc[:, 0].max())) + 2, shape[0])
    c0 = max(int(np.floor(rc[:, 1].min())) - 1, 0)
    c1 = min(int(np.ceil(rc[:, 1].max())) + 2, shape[1])
    if r1 <= r0 or c1 <= c0:
        return None
    # sub-sample k of pixel r sits at r - 0.5 + (k + 0.5) / ss  ->  index R = (r + 0.5) * ss - 0.5
    rr = (rc[:, 0] - r0 + 0.5) * ss - 0.5
    cc = (rc[:, 1] - c0 + 0.5) * ss - 0.5
    sub_shape = ((r1 - r0) * ss, (c1 - c0) * ss)
    mask = _fill(rr, cc, sub_shape)
    cov = mask.reshape(r1 - r0, ss, c1 - c0, ss).sum(axis=(1, 3), dtype=np.float32) / (ss * ss)
    return (slice(r0, r1), slice(c0, c1)), cov


def full_coverage(poly_mm: np.ndarray, spacing_mm, shape, ss: int = 4) -> np.ndarray:
    """Coverage of a polygon as a full-size float32 image."""
    out = np.zeros(shape, dtype=np.float32)
    res = coverage(poly_mm, spacing_mm, shape, ss)
    if res is not None:
        out[res[0]] = res[1]
    return out
