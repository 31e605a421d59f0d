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
from scipy import ndimage as ndi

log = logging.getLogger(__name__)

#: A cluster whose centre lies further than this (mm, along the grid's AP axis) from the
#: line through its neighbours along the column is off the column. Body centres of a normal
#: or listhetic column lie within about 10 mm of that line; posterior elements lie 35-50 mm
#: behind it.
MAX_OFF_COLUMN_MM = 18.0
#: The same for the column's top and bottom clusters, whose place is extrapolated from the
#: two bodies next to them: lordosis bends L5 (and a listhesis shifts it) 10-20 mm off the
#: line through L3 and L4.
MAX_OFF_COLUMN_END_MM = 30.0
#: An end cluster further than this many median centre-to-centre steps from the next body is
#: not the column's continuation (a bladder far below the sacrum, bowel far above).
MAX_GAP_STEPS = 2.6
#: Clusters smaller than this are left alone (debris; labelling ignores them).
MIN_CLUSTER_MM2 = 40.0
#: Fewer clusters than this do not define a column.
MIN_CLUSTERS = 4


def _predicted_col(rows: np.ndarray, cols: np.ndarray, i: int, keep: np.ndarray
                   ) -> tuple[float, bool]:
    """Column position at cluster ``i``'s row from a line through its kept neighbours (two
    nearest above and two below; two on one side at the column's ends), and whether ``i``
    is an end (extrapolated)."""
    others = np.nonzero(keep & (np.arange(len(rows)) != i))[0]
    above = others[rows[others] < rows[i]]
    below = others[rows[others] >= rows[i]]
    above = above[np.argsort(rows[i] - rows[above])][:2]
    below = below[np.argsort(rows[below] - rows[i])][:2]
    nb = np.r_[above, below]
    end = len(above) == 0 or len(below) == 0
    if len(nb) < 2:
        return (float(np.median(cols[others])) if len(others) else float(cols[i])), end
    coef = np.polyfit(rows[nb], cols[nb], 1)
    return float(np.polyval(coef, rows[i])), end


def off_column(centres_rc: np.ndarray, spacing_mm: float) -> list[tuple[int, str]]:
    """Indices of the centres that are not on the column, each with why, worst first.

    Parameters
    ----------
    centres_rc : (N, 2) cluster centres (row, col) in the canonical grid.
    spacing_mm : isotropic grid spacing.
    """
    n = len(centres_rc)
    if n < MIN_CLUSTERS:
        return []
    rows, cols = centres_rc[:, 0].astype(float), centres_rc[:, 1].astype(float)
    keep = np.ones(n, bool)
    dropped: list[tuple[int, str]] = []
    while keep.sum() >= MIN_CLUSTERS:
        idx = np.nonzero(keep)[0]
        pred = [_predicted_col(rows, cols, i, keep) for i in idx]
        off = np.array([abs(cols[i] - p) * spacing_mm for i, (p, _) in zip(idx, pred)])
        limit = np.array([MAX_OFF_COLUMN_END_MM if end else MAX_OFF_COLUMN_MM
                          for _, end in pred])
        worst = int(np.argmax(off / limit))
        if off[worst] > limit[worst]:
            i = int(idx[worst])
            dropped.append((i, f"{off[worst]:.0f} mm off the column"))
            keep[i] = False
            continue
        # continuity at the ends: a far isolated cluster above or below
        order = idx[np.argsort(rows[idx])]
        steps = np.hypot(np.diff(rows[order]), np.diff(cols[order]))
        step = float(np.median(steps))
        if step > 0 and len(steps) >= 3:
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
    lab, n = ndi.label(body)
    if n < MIN_CLUSTERS:
        return class_map, []
    idx = np.arange(1, n + 1)
    areas = ndi.sum(body, lab, idx) * spacing_mm ** 2
    big = idx[areas >= MIN_CLUSTER_MM2]
    if len(big) < MIN_CLUSTERS:
        return class_map, []
    centres = np.array(ndi.center_of_mass(body, lab, big))
    gone = off_column(centres, spacing_mm)
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
