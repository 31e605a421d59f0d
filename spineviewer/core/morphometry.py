"""Vertebral body morphometry (AH, PH, MH, SC, IC, VA) from four corners and an outline.

Everything is computed in millimetres after scaling (row, col) by the pixel spacing, and only
the corner *names* carry anatomy, so the same numbers come out in the canonical model grid and
in a (possibly flipped) source slice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Measurements", "endplate_depth", "endplate_folds_mm", "measure", "split_endplates"]

#: Stretch of each endplate next to its corners left out of SC/IC: a border rounded at the
#: rim (pixel corners, smoothing, real bone) falls below the chord there by up to ~0.5 mm
#: (measured on rasterised flat endplates at 0.5-0.8 mm pixels).
RIM_MARGIN_MM = 2.0
RIM_MARGIN_FRACTION = 0.06
_FLAT_MM = 1e-6  # depths below this are rounding error on a flat endplate


@dataclass(frozen=True)
class Measurements:
    """Morphometry of one vertebral body (millimetres and degrees).

    Notes
    -----
    ``SC_mm``/``IC_mm`` are the largest depths of the superior/inferior endplate below its
    rim-to-rim chord (0 when the endplate bulges out); ``*_notch_width_mm`` is the width,
    along the chord, of the depression where it is deeper than half its maximum;
    ``*_chord_mm`` is the rim-to-rim chord length. ``VA_deg`` is positive when the endplates
    converge anteriorly (AH < PH).
    """

    AH_mm: float
    PH_mm: float
    MH_mm: float
    SC_mm: float
    IC_mm: float
    VA_deg: float
    sc_notch_width_mm: float
    ic_notch_width_mm: float
    sc_chord_mm: float = 0.0
    ic_chord_mm: float = 0.0


def to_mm(corners_rc: Mapping[str, Sequence[float]], outline_rc: np.ndarray | Sequence,
          spacing_mm: Sequence[float], *, min_points: int):
    """Spacing, corners and outline converted from (row, col) pixels to millimetres, checked.

    Returns ``(spacing, corners, outline)``: spacing as a 2-vector, corners as a dict of
    2-vectors keyed ``AS``, ``AI``, ``PS``, ``PI``, outline as an (N, 2) array.
    """
    sp = np.asarray(spacing_mm, dtype=float).reshape(2)
    if np.any(sp <= 0):
        raise ValueError(f"pixel spacing must be positive, got {tuple(sp)}")
    c = {k: np.asarray(corners_rc[k], dtype=float).reshape(2) * sp
         for k in ("AS", "AI", "PS", "PI")}
    outline = np.asarray(outline_rc, dtype=float).reshape(-1, 2) * sp
    if len(outline) < min_points:
        raise ValueError(f"outline needs at least {min_points} points")
    return sp, c, outline


def measure(corners_rc: Mapping[str, Sequence[float]], outline_rc: np.ndarray | Sequence,
            spacing_mm: Sequence[float]) -> Measurements:
    """Measure one vertebral body.

    Parameters
    ----------
    corners_rc : mapping
        ``AS``, ``AI``, ``PS``, ``PI`` (anterior/posterior, superior/inferior) as (row, col)
        pixels, sub-pixel floats allowed.
    outline_rc : (N, 2) array_like
        Closed body border, (row, col) pixels in the same frame, either winding.
    spacing_mm : (float, float)
        Pixel spacing (row, col) in millimetres.

    Returns
    -------
    Measurements

    Notes
    -----
    Frame-independent: mirroring or flipping the points leaves every value unchanged.
    """
    _, c, outline = to_mm(corners_rc, outline_rc, spacing_mm, min_points=4)
    ah = float(np.linalg.norm(c["AS"] - c["AI"]))
    ph = float(np.linalg.norm(c["PS"] - c["PI"]))
    sup, inf = split_endplates(c, outline)
    inferior_mid = 0.5 * (c["AI"] + c["PI"])
    superior_mid = 0.5 * (c["AS"] + c["PS"])
    sc, sc_w = endplate_depth(c["AS"], c["PS"], sup, inferior_mid)
    ic, ic_w = endplate_depth(c["AI"], c["PI"], inf, superior_mid)
    mh = _mid_height(superior_mid, inferior_mid, sup, inf)
    return Measurements(
        AH_mm=ah, PH_mm=ph, MH_mm=mh, SC_mm=sc, IC_mm=ic,
        VA_deg=_vertebral_angle(c, ah, ph),
        sc_notch_width_mm=sc_w, ic_notch_width_mm=ic_w,
        sc_chord_mm=float(np.linalg.norm(c["PS"] - c["AS"])),
        ic_chord_mm=float(np.linalg.norm(c["PI"] - c["AI"])),
    )


def _vertebral_angle(c: Mapping[str, np.ndarray], ah: float, ph: float) -> float:
    """Unsigned angle between the endplate chords, signed + when AH < PH."""
    u, v = c["PS"] - c["AS"], c["PI"] - c["AI"]
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return 0.0
    cosang = np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0)
    ang = float(np.degrees(np.arccos(cosang)))
    return ang if ah < ph else -ang


def _nearest_index(outline: np.ndarray, p: np.ndarray) -> int:
    return int(np.argmin(np.sum((outline - p) ** 2, axis=1)))


def _walk(n: int, i: int, j: int, step: int) -> np.ndarray:
    """Indices from i to j (inclusive) walking the closed contour by +-1."""
    length = ((j - i) * step) % n
    return (i + step * np.arange(length + 1)) % n


def split_endplates(corners_mm: Mapping[str, np.ndarray],
                    outline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Superior (AS..PS) and inferior (AI..PI) parts of a closed outline.

    Parameters
    ----------
    corners_mm : mapping of (2,) arrays
        Corner points in the same frame as ``outline``.
    outline : (N, 2) ndarray
        Closed contour (the last point may repeat the first).

    Returns
    -------
    superior, inferior : (K, 2) ndarrays
        The contour between the corners' nearest outline points, on the walk that avoids the
        other two corners (the shorter walk when neither or both avoid them).
    """
    if len(outline) > 1 and np.allclose(outline[0], outline[-1]):
        outline = outline[:-1]
    n = len(outline)
    idx = {k: _nearest_index(outline, corners_mm[k]) for k in ("AS", "AI", "PS", "PI")}

    def path(a: str, b: str, others: tuple[str, str]) -> np.ndarray:
        best = None
        for step in (1, -1):
            ids = _walk(n, idx[a], idx[b], step)
            inner = set(ids[1:-1].tolist()) if len(ids) > 2 else set()
            clean = not any(idx[o] in inner for o in others)
            key = (not clean, len(ids))
            if best is None or key < best[0]:
                best = (key, ids)
        return outline[best[1]]

    return path("AS", "PS", ("AI", "PI")), path("AI", "PI", ("AS", "PS"))


def endplate_folds_mm(corners_rc: Mapping[str, Sequence[float]], outline_rc: np.ndarray | Sequence,
                      spacing_mm: Sequence[float]) -> dict[str, float]:
    """How far each endplate's outline runs back along its own chord (mm; 0 for an endplate
    that, walked from the anterior to the posterior corner, never turns back).

    An endplate is a curve over its chord: depressions and notches go down and up again, but
    forwards. An outline that folds back by millimetres has taken in tissue beside the
    endplate (seen where the mask took in part of a filled depression, or a neighbour's rim),
    and its heights are not the body's.
    """
    _, c, outline = to_mm(corners_rc, outline_rc, spacing_mm, min_points=8)
    sup, inf = split_endplates(c, outline)
    out = {}
    for name, (a, p), path in (("superior", ("AS", "PS"), sup), ("inferior", ("AI", "PI"), inf)):
        chord = c[p] - c[a]
        along = (path - c[a]) @ (chord / max(float(np.linalg.norm(chord)), 1e-9))
        out[name] = float(np.max(np.maximum.accumulate(along) - along)) if len(along) else 0.0
    return out


def endplate_depth(a: np.ndarray, p: np.ndarray, path: np.ndarray,
                   inside_point: np.ndarray) -> tuple[float, float]:
    """Largest depth of an endplate below its chord, and the depression's half-depth width.

    Parameters
    ----------
    a, p : (2,) ndarray
        Anterior and posterior rim (chord ends), millimetres.
    path : (K, 2) ndarray
        Endplate outline between the rims, millimetres.
    inside_point : (2,) ndarray
        A point inside the body (the opposite chord's midpoint) giving the inward side.

    Returns
    -------
    depth_mm, width_mm : float
        0, 0 when the endplate does not dip below the chord.
    """
    chord = p - a
    length = float(np.linalg.norm(chord))
    if length == 0 or len(path) < 2:
        return 0.0, 0.0
    t_hat = chord / length
    n_hat = np.array([-t_hat[1], t_hat[0]])
    if np.dot(inside_point - a, n_hat) < 0:
        n_hat = -n_hat
    rel = path - a
    t = rel @ t_hat
    d = rel @ n_hat
    # the rounded rims dip below the chord right next to the corners: not a depression
    margin = max(RIM_MARGIN_MM, RIM_MARGIN_FRACTION * length)
    within = (t > margin) & (t < length - margin)
    if not np.any(within) or float(np.max(d[within])) <= _FLAT_MM:
        return 0.0, 0.0
    d = np.where(within, d, np.minimum(d, 0.0))
    k = int(np.argmax(d))
    depth = float(d[k])
    return depth, _half_depth_width(t, d, k, 0.5 * depth)


def _half_depth_width(t: np.ndarray, d: np.ndarray, k: int, half: float) -> float:
    """Chord-wise width of the run of points around k deeper than ``half`` (interpolated)."""
    ends = []
    for step in (-1, 1):
        j = k
        while 0 <= j + step < len(d) and d[j + step] > half:
            j += step
        if 0 <= j + step < len(d):
            j2 = j + step
            f = (d[j] - half) / (d[j] - d[j2]) if d[j] != d[j2] else 0.0
            ends.append(t[j] + f * (t[j2] - t[j]))
        else:
            ends.append(t[j])
    return float(abs(ends[1] - ends[0]))


def _line_polyline_hits(o: np.ndarray, u: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Parameters s of the points o + s*u where the line crosses the polyline."""
    n_hat = np.array([-u[1], u[0]])
    side = (path - o) @ n_hat
    s_along = (path - o) @ u
    a, b = side[:-1], side[1:]
    cross = (a == 0) | (a * b < 0)
    if not np.any(cross):
        return np.empty(0)
    a, b = a[cross], b[cross]
    sa, sb = s_along[:-1][cross], s_along[1:][cross]
    f = np.where(a == b, 0.0, a / np.where(a == b, 1.0, a - b))
    return sa + f * (sb - sa)


def _mid_height(sup_mid: np.ndarray, inf_mid: np.ndarray, sup: np.ndarray,
                inf: np.ndarray) -> float:
    """Distance between the endplates along the line through the two chord mid-points."""
    v = inf_mid - sup_mid
    length = float(np.linalg.norm(v))
    if length == 0:
        return 0.0
    u = v / length
    s_sup = _line_polyline_hits(sup_mid, u, sup)
    s_inf = _line_polyline_hits(sup_mid, u, inf)
    # nearest crossing to each chord's mid-point; fall back to the chord itself
    top = float(s_sup[np.argmin(np.abs(s_sup))]) if len(s_sup) else 0.0
    bottom = float(s_inf[np.argmin(np.abs(s_inf - length))]) if len(s_inf) else length
    return abs(bottom - top)
