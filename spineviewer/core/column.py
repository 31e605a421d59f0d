"""Column logic: a vertebral body lies on the column.

The bodies' centres lie on a smooth curve (lordosis, kyphosis, a scoliotic shift seen as a
change between slices), one body after the other. A body-class cluster whose centre lies far
off the line through its neighbours along the column - bowel or bladder in front of and below
the column, iliac bone, posterior elements behind the canal - is no vertebral body: it is
dropped before the levels are named (it would take a name and move every name below it), and
the drop is logged with where it was and how far off the column it lay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

#: A cluster whose centre lies further than this (mm, along the grid's AP axis) from the
#: curve through its neighbours along the column is off the column. Body centres of a normal
#: or listhetic column lie within about 10 mm of that curve (up to 20 mm for L5 between L4
#: and an S1 read as a body); posterior elements lie 35-50 mm
#: behind it.
MAX_OFF_COLUMN_MM = 25.0
#: The column's top and bottom clusters are compared with the line through the two bodies
#: next to them. Lordosis sets L5 (and a listhesis shifts it) up to 50 mm *behind* the line
#: through L3 and L4 (SPIDER train, at 0.65 mm assumed pixels); bowel and bladder lie *in
#: front of* it.
MAX_END_ANTERIOR_MM = 25.0
MAX_END_POSTERIOR_MM = 60.0
#: An end cluster further than this many median centre-to-centre steps from the next body is
#: not the column's continuation (a bladder far below the sacrum, bowel far above).
MAX_GAP_STEPS = 2.6
#: Clusters smaller than this are left alone (debris; labelling ignores them).
MIN_CLUSTER_MM2 = 40.0
#: Only clusters of at least this fraction of the median cluster anchor the curve.
ANCHOR_AREA = 0.4
#: Fewer clusters than this do not define a column.
MIN_CLUSTERS = 4


def _predicted_col(rows: np.ndarray, cols: np.ndarray, i: int, anchors: np.ndarray
                   ) -> tuple[float, bool]:
    """Column position at cluster ``i``'s row from the curve through its anchor neighbours
    (up to two above and two below: a quadratic through three or four, a line through two;
    at the column's ends the line through the two nearest), and whether ``i`` is an end."""
    others = np.nonzero(anchors & (np.arange(len(rows)) != i))[0]
    above = others[rows[others] < rows[i]]
    below = others[rows[others] >= rows[i]]
    above = above[np.argsort(rows[i] - rows[above])][:2]
    below = below[np.argsort(rows[below] - rows[i])][:2]
    end = len(above) == 0 or len(below) == 0
    nb = np.r_[above, below]
    if len(nb) < 2:
        return (float(np.median(cols[others])) if len(others) else float(cols[i])), end
    deg = 1 if end or len(nb) < 3 else 2
    coef = np.polyfit(rows[nb], cols[nb], deg)
    return float(np.polyval(coef, rows[i])), end


def off_column(centres_rc: np.ndarray, spacing_mm: float, areas: np.ndarray | None = None
               ) -> list[tuple[int, str]]:
    """Indices of the centres that are not on the column, each with why, worst first.

    Parameters
    ----------
    centres_rc : (N, 2) cluster centres (row, col) in the canonical grid (anterior = col 0).
    spacing_mm : isotropic grid spacing.
    areas : (N,) cluster areas; only clusters of ``ANCHOR_AREA`` x the median anchor the
        curve (all do when None).
    """
    n = len(centres_rc)
    if n < MIN_CLUSTERS:
        return []
    rows, cols = centres_rc[:, 0].astype(float), centres_rc[:, 1].astype(float)
    keep = np.ones(n, bool)
    big = (np.ones(n, bool) if areas is None
           else np.asarray(areas, float) >= ANCHOR_AREA * np.median(areas))
    dropped: list[tuple[int, str]] = []
    while keep.sum() >= MIN_CLUSTERS and (keep & big).sum() >= 3:
        idx = np.nonzero(keep)[0]
        excess = []
        for i in idx:
            pred, end = _predicted_col(rows, cols, i, keep & big)
            d = (cols[i] - pred) * spacing_mm             # > 0: behind the curve
            limit = ((MAX_END_POSTERIOR_MM if d > 0 else MAX_END_ANTERIOR_MM) if end
                     else MAX_OFF_COLUMN_MM)
            excess.append((abs(d) / limit, d))
        worst = int(np.argmax([e for e, _ in excess]))
        if excess[worst][0] > 1.0:
            i, d = int(idx[worst]), excess[worst][1]
            side = "behind" if d > 0 else "in front of"
            dropped.append((i, f"{abs(d):.0f} mm {side} the column"))
            keep[i] = False
            continue
        # continuity at the ends: a far isolated cluster above or below
        order = idx[np.argsort(rows[idx])]
        steps = np.hypot(np.diff(rows[order]), np.diff(cols[order]))
        if len(steps) >= 3:
            if steps[-1] > MAX_GAP_STEPS * np.median(steps[:-1]):
                i = int(order[-1])
                dropped.append((i, f"{steps[-1] * spacing_mm:.0f} mm below the next body"))
                keep[i] = False
                continue
            if steps[0] > MAX_GAP_STEPS * np.median(steps[1:]):
                i = int(order[0])
                dropped.append((i, f"{steps[0] * spacing_mm:.0f} mm above the next body"))
                keep[i] = False
                continue
        break
    return dropped


def drop_off_column(class_map: np.ndarray, class_names: Sequence[str], spacing_mm: float
                    ) -> tuple[np.ndarray, list[str]]:
    """Remove off-column body-class clusters from a class map.

    Returns the cleaned class map (a copy when anything was removed) and one warning per
    dropped cluster (`slices.label_series` logs those of the slice that names the levels).
    """
    if "body" not in class_names:
        return class_map, []
    kb = list(class_names).index("body")
    body = class_map == kb
    from spineviewer.core.maskops import centres_of_mass, component_areas, label

    lab, n = label(body)
    if n < MIN_CLUSTERS:
        return class_map, []
    idx = np.arange(1, n + 1)

    areas = component_areas(lab, n) * spacing_mm ** 2
    big = idx[areas >= MIN_CLUSTER_MM2]
    if len(big) < MIN_CLUSTERS:
        return class_map, []
    centres = np.array(centres_of_mass(body, lab, big))
    gone = off_column(centres, spacing_mm, areas[big - 1])
    if not gone:
        return class_map, []
    out = class_map.copy()
    warnings = []
    for i, why in gone:
        out[lab == big[i]] = 0
        r, c = centres[i]
        a = float(areas[big[i] - 1])
        msg = (f"body-class cluster of {a:.0f} mm2 at grid row {r:.0f}, col {c:.0f} dropped: "
               f"{why} (bowel, bladder, iliac bone or posterior elements)")
        log.debug(msg)
        warnings.append(msg)
    return out, warnings
