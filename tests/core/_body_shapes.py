"""Analytic vertebral-body outlines with known morphometry, rasterised with supersampling.

Test helper for the corner and morphometry tests (independent of ``spineviewer.synth``).
Body frame: u runs anterior -> posterior, v superior -> inferior, in millimetres; the
canonical image has superior at row 0 and anterior at col 0, so with no tilt u is +col and
v is +row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage import draw


@dataclass
class Shape:
    poly_rc: np.ndarray            # (N, 2) closed polygon in pixels (row, col)
    corners_rc: dict               # true AS/AI/PS/PI in pixels
    AH_mm: float
    PH_mm: float
    VA_deg: float
    SC_mm: float
    IC_mm: float
    MH_mm: float
    spacing_mm: tuple


def _bump(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    """cos^2 bump of height 1 and full width ``width`` (fraction of the chord)."""
    x = (t - centre) / width
    return np.where(np.abs(x) < 0.5, np.cos(np.pi * x) ** 2, 0.0)


def _endplate(a: np.ndarray, p: np.ndarray, inward: np.ndarray, depth: float, span: float,
              notch: tuple | None, n: int = 200) -> tuple[np.ndarray, float]:
    """Points from a to p dipping ``depth`` (cos^2 over ``span``) plus an optional notch."""
    t = np.linspace(0.0, 1.0, n)
    d = depth * _bump(t, 0.5, span)
    if notch is not None:
        nd, nw, nc = notch
        d = d + nd * _bump(t, nc, nw)
    pts = a + t[:, None] * (p - a) + d[:, None] * inward
    return pts, float(d.max())


def make_body(ah: float = 26.0, ph: float = 28.0, width: float = 38.0, tilt_deg: float = 0.0,
              *, sc: float = 0.0, ic: float = 0.0, span: float = 0.7,
              sc_notch: tuple | None = None, beak: tuple | None = None,
              spacing_mm: tuple = (0.6, 0.6), centre_rc: tuple = (100.37, 90.61)) -> Shape:
    """One body outline and its truth.

    ``sc``/``ic``: endplate depression depth (mm) over the central ``span`` of the chord;
    ``sc_notch``: (depth mm, width fraction, centre fraction) of a narrow superior notch;
    ``beak``: (length mm, base mm) of an anterior-superior osteophyte spur at AS.
    """
    c = {"AS": np.array([-width / 2, -ah / 2]), "PS": np.array([width / 2, -ph / 2]),
         "PI": np.array([width / 2, ph / 2]), "AI": np.array([-width / 2, ah / 2])}

    def inward(a, p, towards):
        e = (p - a) / np.linalg.norm(p - a)
        n = np.array([-e[1], e[0]])
        return n if np.dot(towards - a, n) > 0 else -n

    mid_inf = (c["AI"] + c["PI"]) / 2
    mid_sup = (c["AS"] + c["PS"]) / 2
    sup, sc_true = _endplate(c["AS"], c["PS"], inward(c["AS"], c["PS"], mid_inf), sc, span,
                             sc_notch)
    inf, ic_true = _endplate(c["AI"], c["PI"], inward(c["AI"], c["PI"], mid_sup), ic, span, None)
    pts = [sup, inf[::-1]]                  # AS..PS, then PI..AI
    if beak is not None:
        length, base = beak
        e_down = (c["AI"] - c["AS"]) / np.linalg.norm(c["AI"] - c["AS"])
        e_back = (c["PS"] - c["AS"]) / np.linalg.norm(c["PS"] - c["AS"])
        tip_dir = -(e_down + e_back) / np.linalg.norm(e_down + e_back)
        b1 = c["AS"] + base * e_down
        b2 = c["AS"] + base * e_back
        tip = c["AS"] + length * tip_dir
        keep = np.linalg.norm(sup - c["AS"], axis=1) > base
        pts = [np.array([b1, tip, b2]), sup[keep], inf[::-1]]
    poly_uv = np.vstack(pts)
    mh = _mid_height(sup, inf, mid_sup, mid_inf)
    th = np.radians(tilt_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])

    def to_rc(uv):
        uv = np.atleast_2d(uv) @ rot.T
        rows = centre_rc[0] + uv[:, 1] / spacing_mm[0]
        cols = centre_rc[1] + uv[:, 0] / spacing_mm[1]
        return np.stack([rows, cols], axis=1)

    u, v = c["PS"] - c["AS"], c["PI"] - c["AI"]
    va = np.degrees(np.arccos(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v)))
    return Shape(poly_rc=to_rc(poly_uv), corners_rc={k: to_rc(p)[0] for k, p in c.items()},
                 AH_mm=ah, PH_mm=ph, VA_deg=va if ah < ph else -va, SC_mm=sc_true,
                 IC_mm=ic_true, MH_mm=mh, spacing_mm=tuple(spacing_mm))


def _mid_height(sup: np.ndarray, inf: np.ndarray, m_s: np.ndarray, m_i: np.ndarray) -> float:
    """Distance between the two endplate paths along the line through the chord mid-points."""
    u = (m_i - m_s) / np.linalg.norm(m_i - m_s)
    n = np.array([-u[1], u[0]])

    def hit(path):
        side = (path - m_s) @ n
        k = np.nonzero(np.sign(side[:-1]) != np.sign(side[1:]))[0][0]
        f = side[k] / (side[k] - side[k + 1])
        return (path[k] + f * (path[k + 1] - path[k]) - m_s) @ u

    return float(hit(inf) - hit(sup))


def rasterise(poly_rc: np.ndarray, shape: tuple = (200, 180), ss: int = 4) -> np.ndarray:
    """Boolean mask: a pixel is in when >= half of its ss x ss sub-samples are."""
    fine = np.zeros((shape[0] * ss, shape[1] * ss), bool)
    p = (np.asarray(poly_rc) + 0.5) * ss - 0.5
    rr, cc = draw.polygon(p[:, 0], p[:, 1], fine.shape)
    fine[rr, cc] = True
    return fine.reshape(shape[0], ss, shape[1], ss).mean(axis=(1, 3)) >= 0.5
