"""Geometry shared by the corner strategies: the body's working frame, its rim shape and the
exact overlap of a quadrilateral with it (``core.corners`` holds the strategies and the vote).

Coordinates are millimetres (row * spacing, col * spacing) of a padded crop of one body mask
in the canonical grid (superior = row 0, anterior = col 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from skimage import draw, measure

from spineviewer.core.maskops import argwhere

__all__ = ["ON_HULL_MM", "ORDER", "QUADRANTS", "STEP_MM", "Body", "PolygonIoU", "as_vector",
           "hull_gap", "mask_iou", "prepare", "resample", "signed_area", "to_full_rc"]

#: Quadrilateral vertex order used internally (a closed polygon).
ORDER = ("AS", "PS", "PI", "AI")
_NEXT = np.array([1, 2, 3, 0])
_PREV = np.array([3, 0, 1, 2])
#: Corner name and its quadrant (sign along the AP and SI axes) in the body frame.
QUADRANTS = (("AS", -1, -1), ("PS", 1, -1), ("PI", 1, 1), ("AI", -1, 1))
_MIN_PIXELS = 30
_EPS_MM = 1e-7
#: Gaussian smoothing (pixels) of the mask before its 0.5 iso-contour: 1 px damps staircase
#: ripple for the corner search; the returned outline (for SC/IC) uses 0.5 px, which keeps a
#: 2 mm deep, 2.5 mm wide notch within 0.05 mm where 1 px loses 0.6 mm (measured).
_OUTLINE_SIGMA_PX = 1.0
_BORDER_SIGMA_PX = 0.5
#: Outline sampling step and the band (mm) within which outline points count as "on the hull".
STEP_MM = 0.3
ON_HULL_MM = 0.5
_MIN_EDGE_MM = 0.3
#: Depth/height ratio above which the rectangle's long side is taken as the AP axis.
_ELONGATED = 1.15


@dataclass
class Body:
    """Working geometry of one body, in mm (row * spacing, col * spacing) of a padded crop."""

    crop: np.ndarray          # bool mask crop
    origin: np.ndarray        # crop (0, 0) in full-image pixels
    sp: np.ndarray            # spacing (row, col) mm
    border_rc: np.ndarray     # the outline returned: lightly smoothed, full-image pixels
    pts: np.ndarray           # border resampled every STEP_MM (not closed)
    rim: np.ndarray           # bool per pts: not on an osteophyte beak
    ref: np.ndarray           # convex rim shape (hull, ripple bias removed), closed, CCW
    centre: np.ndarray
    e_ap: np.ndarray          # unit vector anterior -> posterior
    e_si: np.ndarray          # unit vector superior -> inferior
    rect: dict[str, np.ndarray]  # min-area rectangle corners by name



# ---- preparation --------------------------------------------------------------------------

def prepare(mask: np.ndarray, spacing_mm: tuple[float, float], radius_mm: float,
            si_hint: np.ndarray | None = None) -> Body:
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    sp = np.asarray(spacing_mm, dtype=float).reshape(2)
    if np.any(sp <= 0):
        raise ValueError(f"pixel spacing must be positive, got {tuple(sp)}")
    rows, cols = argwhere(mask).T  # np.nonzero's pixels, found inside the mask's box
    if len(rows) < _MIN_PIXELS:
        raise ValueError(f"mask has {len(rows)} pixels; a body needs >= {_MIN_PIXELS}")
    pad = int(np.ceil(radius_mm / sp.min() + 3 * _OUTLINE_SIGMA_PX)) + 2
    origin = np.array([rows.min() - pad, cols.min() - pad])
    crop = np.zeros((np.ptp(rows) + 1 + 2 * pad, np.ptp(cols) + 1 + 2 * pad), bool)
    crop[rows - origin[0], cols - origin[1]] = True
    crop = _largest_component(crop)
    outline_mm = _outline(crop, _OUTLINE_SIGMA_PX) * sp
    pts = resample(outline_mm, STEP_MM)
    rim = _off_beaks(pts, crop, _core_body(crop, sp, radius_mm), sp, radius_mm)
    if rim.sum() < 8:
        rim = np.ones(len(pts), bool)
    hull = _convex_hull(pts[rim])
    centre = _polygon_centroid(hull)
    e_ap, e_si, rect = _body_frame(hull, centre, si_hint)
    ref = _offset_polygon(hull, -_hull_ripple(pts[rim], hull))
    return Body(crop=crop, origin=origin.astype(float), sp=sp,
                 border_rc=_outline(crop, _BORDER_SIGMA_PX) + origin, pts=pts,
                 rim=rim, ref=ref, centre=centre, e_ap=e_ap, e_si=e_si, rect=rect)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _core_body(crop: np.ndarray, sp: np.ndarray, radius_mm: float) -> np.ndarray:
    """Mask opened with a disc (isotropic in mm); the input itself if that erases most of it."""
    rr, rc = radius_mm / sp
    hr, hc = int(np.floor(rr)), int(np.floor(rc))
    y, x = np.mgrid[-hr:hr + 1, -hc:hc + 1]
    disc = (y / max(rr, 1e-9)) ** 2 + (x / max(rc, 1e-9)) ** 2 <= 1.0
    core = ndimage.binary_opening(crop, structure=disc)
    return crop if core.sum() < 0.5 * crop.sum() else core


def _off_beaks(points_mm: np.ndarray, crop: np.ndarray, core: np.ndarray, sp: np.ndarray,
               radius_mm: float) -> np.ndarray:
    """Border points not on an osteophyte beak.

    What the opening removed is split into connected pieces; a piece reaching further from
    the opened body than the rounding of a right-angled corner (0.41 x the radius) is a beak
    and goes whole, base included; the corner slivers stay, so the rims keep their corners.
    """
    residue = crop & ~core
    lab, n = ndimage.label(residue)
    keep = np.ones(len(points_mm), bool)
    if n == 0:
        return keep
    dist = ndimage.distance_transform_edt(~core, sampling=sp)
    reach = np.asarray(ndimage.maximum(dist, lab, np.arange(1, n + 1)))
    beak_ids = np.nonzero(reach > 0.45 * radius_mm + 0.5 * float(sp.max()))[0] + 1
    if len(beak_ids) == 0:
        return keep
    beaks = ndimage.binary_dilation(np.isin(lab, beak_ids), iterations=2)
    idx = np.clip(np.round(points_mm / sp).astype(int), 0, np.array(crop.shape) - 1)
    return ~beaks[idx[:, 0], idx[:, 1]]


def _outline(mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Longest 0.5 iso-contour of the smoothed mask, (row, col) pixels, closed."""
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), sigma_px)
    return max(measure.find_contours(smooth, 0.5), key=len)


def resample(poly: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` along a closed polyline (last point not repeated)."""
    seg = np.sqrt(np.sum(np.diff(poly, axis=0) ** 2, axis=1))
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, s[-1], step)
    return np.stack([np.interp(t, s, poly[:, 0]), np.interp(t, s, poly[:, 1])], axis=1)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise (in row, col) hull polygon, closed."""
    try:
        hull = ConvexHull(points)
    except QhullError as exc:  # collinear border
        raise ValueError("body mask is degenerate (no area)") from exc
    poly = points[hull.vertices]
    if signed_area(poly) < 0:
        poly = poly[::-1]
    # drop vertices crowding the last kept one: offsetting a tiny edge would turn it inside
    # out (any subset of a convex polygon's vertices is still convex)
    keep = [0]
    for i in range(1, len(poly)):
        if np.hypot(*(poly[i] - poly[keep[-1]])) >= _MIN_EDGE_MM:
            keep.append(i)
    if len(keep) > 3 and np.hypot(*(poly[keep[-1]] - poly[0])) < _MIN_EDGE_MM:
        keep.pop()
    poly = poly[keep]
    return np.vstack([poly, poly[:1]])


def signed_area(p: np.ndarray) -> float:
    """Shoelace area of an open polygon, positive when counter-clockwise in (row, col)."""
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _polygon_centroid(poly: np.ndarray) -> np.ndarray:
    x, y, x1, y1 = poly[:-1, 0], poly[:-1, 1], poly[1:, 0], poly[1:, 1]
    cross = x * y1 - x1 * y
    area = cross.sum() / 2.0
    if abs(area) < 1e-12:
        return poly[:-1].mean(axis=0)
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6.0 * area)


def _inward_halfplanes(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit inward normals n and offsets b (inside: n . x >= b) of an open CCW polygon."""
    e = np.roll(p, -1, axis=0) - p
    n = np.stack([-e[:, 1], e[:, 0]], axis=1)
    n /= np.maximum(np.sqrt(np.sum(n ** 2, axis=1)), 1e-12)[:, None]
    return n, np.sum(n * p, axis=1)


def hull_gap(points: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """Distance of points inside a closed CCW convex polygon to its border."""
    n, b = _inward_halfplanes(hull[:-1])
    return np.min(points[:, :1] * n[:, 0] + points[:, 1:] * n[:, 1] - b, axis=1)


def _hull_ripple(points: np.ndarray, hull: np.ndarray) -> float:
    """How far the hull sits outside the border on its straight runs (rides on ripple tips)."""
    gap = hull_gap(points, hull)
    on = gap < ON_HULL_MM
    return float(np.mean(gap[on])) if np.any(on) else 0.0


def _offset_polygon(poly: np.ndarray, d: float) -> np.ndarray:
    """Move every edge of a closed CCW convex polygon outward by d (mitred vertices)."""
    p = poly[:-1]
    n_in, _ = _inward_halfplanes(p)
    n_prev = np.roll(n_in, 1, axis=0)
    miter = (n_prev + n_in) / np.maximum(1.0 + np.sum(n_prev * n_in, axis=1), 0.2)[:, None]
    q = p - d * miter
    return np.vstack([q, q[:1]])


def _body_frame(hull: np.ndarray, centre: np.ndarray, si_hint: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Axes (anterior->posterior, superior->inferior) and corners of the min-area rectangle.

    A body is deeper (AP) than high, so a clearly elongated rectangle's long side is the AP
    axis up to 60 deg of tilt; a squarish (or upright) one takes the rectangle axis nearest
    the image axes (right up to +-45 deg). Posterior is towards larger columns, inferior
    towards larger rows. With ``si_hint`` (the column's superior -> inferior direction in
    (row, col) mm, e.g. from the neighbours' centroids) the rectangle axis nearest the hint is
    the SI axis whatever the shape: a squarish body at 45 deg (L5 on a steep sacrum) has no
    shape cue, and the column's direction is good to +-45 deg.
    """
    edges = np.diff(hull, axis=0)
    ang = np.unique(np.round(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2), 6))
    pts = hull[:-1] - centre
    cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]
    a = pts[:, 0] * cos + pts[:, 1] * sin          # (n_ang, n_pts)
    b = -pts[:, 0] * sin + pts[:, 1] * cos
    k = int(np.argmin(np.ptp(a, axis=1) * np.ptp(b, axis=1)))
    d = np.array([np.cos(ang[k]), np.sin(ang[k])])
    d_perp = np.array([-d[1], d[0]])
    ext_d, ext_perp = float(np.ptp(a[k])), float(np.ptp(b[k]))
    ap, si = (d, d_perp) if ext_d > ext_perp else (d_perp, d)
    hint = None if si_hint is None else np.asarray(si_hint, dtype=float).reshape(2)
    if hint is not None and np.all(np.isfinite(hint)) and np.hypot(*hint) > 0:
        axes = [d, -d, d_perp, -d_perp]
        e_si = max(axes, key=lambda v: float(v @ hint))
        e_ap = np.array([-e_si[1], e_si[0]])     # the canonical grid's handedness
    elif max(ext_d, ext_perp) >= _ELONGATED * min(ext_d, ext_perp) and abs(ap[1]) >= 0.5:
        e_ap = ap if ap[1] >= 0 else -ap
        e_si = si if si[0] >= 0 else -si
    else:
        axes = [d, -d, d_perp, -d_perp]
        e_si = max(axes, key=lambda v: v[0])   # towards larger row = inferior
        e_ap = max(axes, key=lambda v: v[1])   # towards larger col = posterior
    u, v = pts @ e_ap, pts @ e_si
    rect = {name: centre + (u.max() if su > 0 else u.min()) * e_ap
            + (v.max() if sv > 0 else v.min()) * e_si for name, su, sv in QUADRANTS}
    return e_ap, e_si, rect


# ---- scoring ------------------------------------------------------------------------------

def as_vector(corners: dict[str, np.ndarray]) -> np.ndarray:
    return np.array([corners[k] for k in ORDER], dtype=float).ravel()


def mask_iou(body: Body, corners_mm: dict[str, np.ndarray]) -> float:
    """IoU of the quadrilateral (pixel-centre raster) with the mask crop."""
    quad = np.array([corners_mm[k] for k in ORDER]) / body.sp
    rr, cc = draw.polygon(quad[:, 0], quad[:, 1], body.crop.shape)
    inter = int(np.count_nonzero(body.crop[rr, cc]))
    union = len(rr) + int(np.count_nonzero(body.crop)) - inter
    return inter / union if union > 0 else 0.0


def to_full_rc(body: Body, corners_mm: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    out = {}
    for k in ("AS", "AI", "PS", "PI"):
        r, c = np.asarray(corners_mm[k]) / body.sp + body.origin
        out[k] = (float(r), float(c))
    return out


class PolygonIoU:
    """1 - IoU of a quadrilateral with a convex polygon R, exact, and its gradient.

    The intersection area comes from Green's theorem over the parts of each border inside the
    other polygon (Cyrus-Beck clipping); moving a quadrilateral vertex changes it at the rate
    of the inside length of its two edges, weighted linearly along them. The quadrilateral's
    own arithmetic is plain Python floats and the clipping elementwise numpy, on purpose: this
    runs a few dozen times per body, and tiny BLAS calls stall on a loaded machine.
    """

    def __init__(self, poly: np.ndarray) -> None:
        p = poly[:-1]
        self.rx, self.ry = p[:, 0].copy(), p[:, 1].copy()
        e = np.roll(p, -1, axis=0) - p
        self.ex, self.ey = e[:, 0].copy(), e[:, 1].copy()
        n, b = _inward_halfplanes(p)
        self.nx, self.ny, self.b = n[:, 0].copy(), n[:, 1].copy(), b - _EPS_MM
        self.area = signed_area(p)

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        v = [float(t) for t in x]
        pts = [(v[0], v[1]), (v[2], v[3]), (v[4], v[5]), (v[6], v[7])]
        a2 = sum(pts[i][0] * pts[i - 3][1] - pts[i - 3][0] * pts[i][1] for i in range(4))
        flip = a2 < 0
        if flip:                                   # work counter-clockwise, map back at the end
            pts = pts[::-1]
        qx = np.array([p[0] for p in pts])
        qy = np.array([p[1] for p in pts])
        ex, ey = qx[_NEXT] - qx, qy[_NEXT] - qy
        length = np.maximum(np.sqrt(ex * ex + ey * ey), 1e-12)
        nx, ny = -ey / length, ex / length          # inward unit normals
        # shared border runs count once: R grown and Q shrunk by a hair for the clipping
        lo_q, hi_q = _clip(qx[:, None], qy[:, None], ex[:, None], ey[:, None],
                           self.nx, self.ny, self.b)
        lo_r, hi_r = _clip(self.rx[:, None], self.ry[:, None], self.ex[:, None],
                           self.ey[:, None], nx, ny, nx * qx + ny * qy + _EPS_MM)
        inter = _green(qx, qy, ex, ey, lo_q, hi_q) + _green(self.rx, self.ry, self.ex, self.ey,
                                                            lo_r, hi_r)
        union = abs(a2) / 2.0 + self.area - inter
        sq = hi_q * hi_q - lo_q * lo_q
        w_start = length * ((hi_q - lo_q) - 0.5 * sq)
        w_end = (length * 0.5 * sq)[_PREV]
        gx = -(nx * w_start + nx[_PREV] * w_end)   # d inter / d vertex
        gy = -(ny * w_start + ny[_PREV] * w_end)
        ax = 0.5 * (qy[_NEXT] - qy[_PREV])   # d area / d vertex
        ay = 0.5 * (qx[_PREV] - qx[_NEXT])
        k = inter / union ** 2
        dx = gx / union - k * (ax - gx)
        dy = gy / union - k * (ay - gy)
        if flip:
            dx, dy = dx[::-1], dy[::-1]
        grad = np.empty(8)
        grad[0::2], grad[1::2] = -dx, -dy
        return 1.0 - inter / union, grad


def _clip(px: np.ndarray, py: np.ndarray, ex: np.ndarray, ey: np.ndarray, nx: np.ndarray,
          ny: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cyrus-Beck: interval [lo, hi] of each segment p + s e (column arrays) in {n . x >= b}."""
    num = b - (px * nx + py * ny)                 # inside when s * den >= num
    den = ex * nx + ey * ny
    den[den == 0] = 1e-30                         # parallel: outside iff num > 0
    ratio = num / den
    lo = np.where(den > 0, ratio, 0.0).max(axis=1).clip(0.0, None)
    hi = np.where(den < 0, ratio, 1.0).min(axis=1).clip(None, 1.0)
    return lo, np.maximum(hi, lo)


def _green(px: np.ndarray, py: np.ndarray, ex: np.ndarray, ey: np.ndarray, lo: np.ndarray,
           hi: np.ndarray) -> float:
    """Sum of (x dy - y dx) / 2 over the sub-segments [lo, hi] of the segments p + s e."""
    ax, ay = px + lo * ex, py + lo * ey
    zx, zy = px + hi * ex, py + hi * ey
    return 0.5 * float((ax * zy - ay * zx).sum())
