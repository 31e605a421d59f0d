"""Quality control of each body's mask before its fracture call is trusted.

A Genant call is only as good as the outline it is measured on: a mask that collapsed around
intraosseous signal reads as a crush fracture. A body is ``segmentation_uncertain`` (and
``needs_review``) when any check fails; its call is then shown and exported as
``NOT_ASSESSABLE`` (``pipeline.classify_all``), with one reason per failed check naming the
check, the value and the limit.

Checks (masks in the canonical model grid):

* **neighbour slices** - Dice of the mask with the same body on the next slices (the best of
  the two): a damaged mask on one slice disagrees with both neighbours;
* **shape** - solidity (area / convex hull area), absolute and against the same body on the
  neighbouring slices; aspect (height along the column / AP depth); area against the
  neighbouring levels;
* **network certainty** - mean softmax margin (top class probability minus the second)
  inside the mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from spineviewer.core.calls import NOT_ASSESSABLE
from spineviewer.core.maskops import argwhere

__all__ = ["FLAG", "NOT_ASSESSABLE", "aspect", "body_checks", "check_all", "dice", "solidity"]

FLAG = "segmentation_uncertain"
DICE_MIN = 0.85
SOLIDITY_MIN = 0.70
SOLIDITY_DROP = 0.08
ASPECT_RANGE = (0.25, 1.4)
AREA_RATIO_RANGE = (0.35, 2.0)
MARGIN_MIN = 0.75


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * int(np.count_nonzero(a & b)) / s if s else 1.0


def solidity(mask: np.ndarray) -> float:
    """Area over the area of the convex hull of the mask's pixel squares."""
    area = int(np.count_nonzero(mask))
    if area < 3:
        return 0.0
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    m = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    edge = m & ~ndi.binary_erosion(m)  # the hull of the border pixels is the mask's hull
    pts = np.argwhere(edge).astype(float)
    offs = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    corners = (pts[:, None, :] + offs[None]).reshape(-1, 2)
    try:
        hull = ConvexHull(corners)
    except QhullError:
        return 0.0
    return float(area / hull.volume)  # 2-D "volume" is the area


def aspect(mask: np.ndarray) -> float:
    """Height along the body's more vertical principal axis over its AP depth (2-98 %)."""
    pts = argwhere(mask).astype(float)
    if len(pts) < 3:
        return 0.0
    c = pts - pts.mean(axis=0)
    _, vecs = np.linalg.eigh(c.T @ c)
    vertical = int(np.argmax(np.abs(vecs[0])))  # axis with the larger row component
    u, w = vecs[:, vertical], vecs[:, 1 - vertical]
    h = np.subtract(*np.percentile(c @ u, [98, 2]))
    d = np.subtract(*np.percentile(c @ w, [98, 2]))
    return float(h / d) if d > 0 else float("inf")


def body_checks(track: dict[int, np.ndarray], position: int, *,
                margin: np.ndarray | None = None,
                neighbour_level_areas: Sequence[float] = (),
                solidities: dict[int, float] | None = None) -> list[str]:
    """Failed checks of the body at stack ``position`` (empty: the mask looks sound).

    Parameters
    ----------
    track : the body's mask per stack position (``slices.TrackedBody.track``).
    position : its measurement slice's stack position.
    margin : (H, W) softmax margin map of that slice (None: not checked).
    neighbour_level_areas : mask areas (pixels) of the levels above and below on their own
        measurement slices.
    solidities : the track's solidity per stack position, filled as computed (the checks of
        neighbouring positions of one track share most of their sections).
    """
    mask = track[position]
    out: list[str] = []
    near = [track[p] for p in (position - 1, position + 1) if p in track]
    if near:
        d = max(dice(mask, m) for m in near)
        if d < DICE_MIN:
            out.append(f"mask disagrees with the neighbouring slices: Dice {d:.2f} "
                       f"< {DICE_MIN:.2f}")
    def solidity_at(p: int) -> float:
        if solidities is None:
            return solidity(track[p])
        if p not in solidities:
            solidities[p] = solidity(track[p])
        return solidities[p]

    sol = solidity_at(position)
    if sol < SOLIDITY_MIN:
        out.append(f"implausible shape: solidity {sol:.2f} < {SOLIDITY_MIN:.2f}")
    else:
        around = [solidity_at(p) for p in (position - 2, position - 1, position + 1,
                                           position + 2) if p in track]
        if around and np.median(around) - sol > SOLIDITY_DROP:
            out.append(f"implausible shape: solidity {sol:.2f} is {np.median(around) - sol:.2f} "
                       f"below the same body on the neighbouring slices (limit "
                       f"{SOLIDITY_DROP:.2f})")
    asp = aspect(mask)
    if not ASPECT_RANGE[0] <= asp <= ASPECT_RANGE[1]:
        out.append(f"implausible shape: height/depth {asp:.2f} outside "
                   f"{ASPECT_RANGE[0]:.2f}-{ASPECT_RANGE[1]:.2f}")
    if len(neighbour_level_areas):
        ratio = float(np.count_nonzero(mask)) / float(np.median(neighbour_level_areas))
        if not AREA_RATIO_RANGE[0] <= ratio <= AREA_RATIO_RANGE[1]:
            out.append(f"implausible size: area {ratio:.2f} x the neighbouring levels' "
                       f"(outside {AREA_RATIO_RANGE[0]:.2f}-{AREA_RATIO_RANGE[1]:.2f})")
    if margin is not None and mask.any():
        m = float(np.mean(margin[mask], dtype=np.float64))
        if m < MARGIN_MIN:
            out.append(f"network unsure: mean softmax margin {m:.2f} < {MARGIN_MIN:.2f}")
    return out


def check_all(bodies, margins: np.ndarray | None = None) -> None:
    """Run `body_checks` on every measurable tracked body (``slices.TrackedBody``) and flag
    it in place: ``qc_reasons`` set, ``segmentation_uncertain`` and ``needs_review`` added."""
    areas = [float(np.count_nonzero(b.mask)) if "partial_body" not in b.flags else np.nan
             for b in bodies]
    for i, b in enumerate(bodies):
        b.qc_reasons = []
        if "partial_body" in b.flags:
            continue
        nb = [areas[j] for j in (i - 1, i + 1) if 0 <= j < len(bodies) and np.isfinite(areas[j])]
        b.qc_reasons = body_checks(b.track, b.position,
                                   margin=None if margins is None else margins[b.position],
                                   neighbour_level_areas=nb,
                                   solidities=getattr(b, "solidities", None))
        if b.qc_reasons:
            b.flags += [f for f in (FLAG, "needs_review") if f not in b.flags]
