"""Analytic geometry of one vertebral body: corners, endplate depressions, outline, truths.

All coordinates are (y, x) millimetres in the slice plane, y pointing inferior (rows) and x
posterior (columns), so ``(row, col) = (y / spacing_row, x / spacing_col)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CORNER_NAMES = ("AS", "AI", "PS", "PI")


@dataclass
class Bump:
    """A raised-cosine depression of an endplate: centre ``t`` (0 anterior .. 1 posterior on the
    chord), full width ``width_t`` (fraction of the chord) and depth in mm."""

    t: float
    width_t: float
    depth_mm: float

    def depth(self, t: np.ndarray) -> np.ndarray:
        """Depth (mm) of this bump at chord parameters ``t``."""
        s = (t - self.t) / (self.width_t / 2.0)
        out = 0.5 * (1.0 + np.cos(np.pi * np.clip(s, -1.0, 1.0)))
        return self.depth_mm * np.where(np.abs(s) < 1.0, out, 0.0)


@dataclass
class BodyGeom:
    """One vertebral body (or the S1 segment): corners plus endplate depressions.

    ``corners`` maps AS/AI/PS/PI to (y, x) mm. ``superior``/``inferior`` are the bumps pushed
    perpendicular to the chord into the body. ``extras`` are extra polygons (osteophytes) that
    belong to the body mask but not to its corner truth.
    """

    level: str
    corners: dict[str, np.ndarray]
    superior: list[Bump] = field(default_factory=list)
    inferior: list[Bump] = field(default_factory=list)
    extras: list[np.ndarray] = field(default_factory=list)
    deformity: str = "none"
    genant_grade: int = 0
    height_loss: float = 0.0
    schmorl: bool = False
    osteophyte: bool = False
    corner_radius_mm: float = 0.3
    marrow_gain: float = 1.0
    in_truth: bool = True
    wall_concavity_mm: tuple[float, float] = (0.0, 0.0)   # (anterior, posterior)

    def transformed(self, fn) -> BodyGeom:
        """Copy with every point mapped by ``fn`` ((N, 2) -> (N, 2)); bumps are unchanged."""
        corners = {k: fn(v[None, :])[0] for k, v in self.corners.items()}
        out = BodyGeom(**{**self.__dict__, "corners": corners,
                          "extras": [fn(p) for p in self.extras]})
        return out


def _inward_normal(a: np.ndarray, b: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Unit normal of chord a->b pointing towards ``inside``."""
    d = (b - a) / np.linalg.norm(b - a)
    n = np.array([-d[1], d[0]])
    if np.dot(inside - (a + b) / 2.0, n) < 0:
        n = -n
    return n


def endplate_curve(body: BodyGeom, which: str, n: int = 200) -> np.ndarray:
    """Endplate outline from its anterior to its posterior corner, (n, 2) mm.

    Parameters
    ----------
    body : the body.
    which : ``"superior"`` or ``"inferior"``.
    n : number of samples along the chord.
    """
    c = body.corners
    a, b = (c["AS"], c["PS"]) if which == "superior" else (c["AI"], c["PI"])
    centre = sum(c.values()) / 4.0
    normal = _inward_normal(a, b, centre)
    t = np.linspace(0.0, 1.0, n)
    depth = np.zeros_like(t)
    for bump in getattr(body, which):
        depth += bump.depth(t)
    return a[None, :] + t[:, None] * (b - a)[None, :] + depth[:, None] * normal[None, :]


def _round_corner(prev: np.ndarray, v: np.ndarray, nxt: np.ndarray, r: float) -> np.ndarray:
    """Quadratic Bezier replacing vertex v, starting r mm before and ending r mm after it."""
    if r <= 0:
        return v[None, :]
    p0 = v + (prev - v) / max(np.linalg.norm(prev - v), 1e-9) * r
    p2 = v + (nxt - v) / max(np.linalg.norm(nxt - v), 1e-9) * r
    s = np.linspace(0.0, 1.0, 6)[:, None]
    return (1 - s) ** 2 * p0 + 2 * (1 - s) * s * v + s**2 * p2


def _wall(a: np.ndarray, b: np.ndarray, depth_mm: float, inside: np.ndarray,
          m: int = 9) -> np.ndarray:
    """Interior points of a body wall from a to b, bowed into the body by ``depth_mm``."""
    t = np.linspace(0.0, 1.0, m + 2)[1:-1, None]
    return a + t * (b - a) + depth_mm * np.sin(np.pi * t) * _inward_normal(a, b, inside)


def outline(body: BodyGeom, n: int = 200, rounded: bool = True) -> np.ndarray:
    """Closed body outline (without osteophytes): AS -> PS -> PI -> AI, (N, 2) mm.

    The walls between the corners bow slightly into the body (``wall_concavity_mm``); the
    corners may be rounded by ``corner_radius_mm``. Neither changes the corner truth.
    """
    c = body.corners
    centre = sum(c.values()) / 4.0
    sup = endplate_curve(body, "superior", n)                 # AS .. PS
    inf = endplate_curve(body, "inferior", n)[::-1]           # PI .. AI
    post = _wall(c["PS"], c["PI"], body.wall_concavity_mm[1], centre)
    ant = _wall(c["AI"], c["AS"], body.wall_concavity_mm[0], centre)
    if not rounded or body.corner_radius_mm <= 0:
        return np.concatenate([sup, post, inf, ant])
    r = body.corner_radius_mm
    return np.concatenate([
        _round_corner(ant[-1], sup[0], sup[3], r), sup[3:-3],
        _round_corner(sup[-4], sup[-1], post[0], r), post,
        _round_corner(post[-1], inf[0], inf[3], r), inf[3:-3],
        _round_corner(inf[-4], inf[-1], ant[0], r), ant])


def _line_crossing(curve: np.ndarray, p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Point where the polyline ``curve`` crosses the infinite line p + s*d (first crossing)."""
    side = (curve[:, 0] - p[0]) * d[1] - (curve[:, 1] - p[1]) * d[0]
    idx = np.nonzero(np.sign(side[:-1]) * np.sign(side[1:]) <= 0)[0]
    if len(idx) == 0:
        raise ValueError("line does not cross the endplate")
    i = idx[0]
    f = side[i] / (side[i] - side[i + 1]) if side[i] != side[i + 1] else 0.0
    return curve[i] + f * (curve[i + 1] - curve[i])


@dataclass(frozen=True)
class GeomTruth:
    """Morphometry of a body computed from its analytic geometry (mm, degrees)."""

    AH_mm: float
    PH_mm: float
    MH_mm: float
    SC_mm: float
    IC_mm: float
    VA_deg: float


def measure_geometry(body: BodyGeom, n: int = 4001) -> GeomTruth:
    """Truth measurements by the definitions of ``docs/INTERFACES.md`` (core.morphometry).

    AH = |AS-AI|, PH = |PS-PI|; MH between the endplate outlines along the line joining the
    chord mid-points; SC/IC = largest perpendicular depth below the chord; VA = angle between
    (PS-AS) and (PI-AI), positive when AH < PH.
    """
    c = body.corners
    ah = float(np.linalg.norm(c["AS"] - c["AI"]))
    ph = float(np.linalg.norm(c["PS"] - c["PI"]))
    t = np.linspace(0.0, 1.0, n)
    sc = float(max(sum((b.depth(t) for b in body.superior), np.zeros(n)).max(), 0.0))
    ic = float(max(sum((b.depth(t) for b in body.inferior), np.zeros(n)).max(), 0.0))
    m_s = (c["AS"] + c["PS"]) / 2.0
    m_i = (c["AI"] + c["PI"]) / 2.0
    d = m_i - m_s
    x_s = _line_crossing(endplate_curve(body, "superior", n), m_s, d)
    x_i = _line_crossing(endplate_curve(body, "inferior", n), m_s, d)
    mh = float(np.linalg.norm(x_i - x_s))
    u = c["PS"] - c["AS"]
    v = c["PI"] - c["AI"]
    ang = np.degrees(np.arccos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v),
                                       -1.0, 1.0)))
    va = float(ang if ah < ph else -ang)
    return GeomTruth(ah, ph, mh, sc, ic, va)


def rotate_slope(points: np.ndarray, angle_rad: float, centre: np.ndarray) -> np.ndarray:
    """Rotate (y, x) points about ``centre`` so that a chord of slope s gets slope s+angle.

    Slope is positive when the anterior end of an antero-posterior chord is lower (larger y).
    """
    ca, sa = np.cos(angle_rad), np.sin(angle_rad)
    y = points[:, 0] - centre[0]
    x = points[:, 1] - centre[1]
    return np.stack([-x * sa + y * ca, x * ca + y * sa], axis=1) + centre


def chord_slope(a: np.ndarray, p: np.ndarray) -> float:
    """Slope (rad) of the chord from anterior point a to posterior point p."""
    return float(np.arctan2(a[0] - p[0], p[1] - a[1]))


def up_normal(slope_rad: float) -> np.ndarray:
    """Unit vector perpendicular to a chord of this slope, pointing superior."""
    return np.array([-np.cos(slope_rad), -np.sin(slope_rad)])
