"""Random lumbar column anatomy (all draws from one generator) placed in the slice plane.

The column is stacked from the sacrum upwards: the S1 superior endplate has the sacral slope,
each disc adds its lordotic angle, each body its own wedge angle. Coordinates are (y, x) mm,
y inferior (rows), x posterior (columns); the image is ``shape * spacing`` mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import ConvexHull

from spineviewer.synth.geometry import (
    BodyGeom,
    Bump,
    chord_slope,
    outline,
    rotate_slope,
    up_normal,
)
from spineviewer.synth.params import (
    GRADE_LOSS,
    HEIGHT_SD,
    LEVEL_DESIGN,
    THORACIC_ABOVE,
    WEDGE_SD,
    PhantomParams,
    view_box_mm,
)


@dataclass
class Disc:
    """Disc between ``upper`` and ``lower`` bodies (indices into Anatomy.bodies)."""

    name: str
    upper: int
    lower: int
    degenerated: bool
    bulge_mm: float


@dataclass
class Anatomy:
    """Geometry of one phantom in mm. ``bodies`` top to bottom, the last one is S1."""

    bodies: list[BodyGeom]
    discs: list[Disc]
    sacrum_lower: list[np.ndarray]          # S2.. segments (polygons, other bone)
    canal_ligament_mm: float
    canal_width_mm: float
    posterior_elements: list[np.ndarray] = field(default_factory=list)
    fat_depth_mm: float = 60.0
    fat_thickness_mm: float = 20.0
    blobs: list[tuple[np.ndarray, float]] = field(default_factory=list)
    hemangiomas: list[tuple[np.ndarray, int]] = field(default_factory=list)  # (poly, body index)
    roots: list[np.ndarray] = field(default_factory=list)       # cauda equina strands
    vessel: tuple[np.ndarray, float] | None = None              # aorta/IVC anterior to column


def _healthy_bumps(rng: np.random.Generator, which: str) -> list[Bump]:
    depth = rng.uniform(0.4, 1.3) if which == "superior" else rng.uniform(0.8, 2.0)
    return [Bump(t=float(rng.uniform(0.42, 0.58)), width_t=float(rng.uniform(0.65, 0.85)),
                 depth_mm=float(depth))]


def _schmorl_bump(rng: np.random.Generator, depth_mm_chord: float) -> Bump:
    width_mm = rng.uniform(3.0, 6.0)
    side = rng.choice([-1.0, 1.0])
    return Bump(t=float(0.5 + side * rng.uniform(0.12, 0.22)), width_t=float(width_mm / depth_mm_chord),
                depth_mm=float(rng.uniform(2.0, 5.0)))


def _body(rng, level: str, params: PhantomParams, size: float) -> BodyGeom:
    """A body in its local frame (walls vertical, centred at 0), deformity applied."""
    design = LEVEL_DESIGN[level]
    ph = design["PH_mm"] * size * (1 + rng.normal(0, HEIGHT_SD))
    ah = ph * (design["wedge"] + rng.normal(0, WEDGE_SD))
    depth = design["depth_mm"] * size * (1 + rng.normal(0, 0.04))
    sup, inf = _healthy_bumps(rng, "superior"), _healthy_bumps(rng, "inferior")
    kind, grade = params.deformities.get(level, ("none", 0))
    loss = float(rng.uniform(*GRADE_LOSS[grade])) if grade else 0.0
    if kind == "wedge":
        ah *= 1 - loss
    elif kind == "crush":
        ah *= 1 - loss
        ph *= 1 - loss
    elif kind == "biconcave":
        mid = (ah + ph) / 2.0
        healthy_mh = mid - sup[0].depth_mm - inf[0].depth_mm
        total = mid - (1 - loss) * healthy_mh
        share = rng.uniform(0.4, 0.6)
        sup = [Bump(0.5, float(rng.uniform(0.75, 0.9)), float(total * share))]
        inf = [Bump(0.5, float(rng.uniform(0.75, 0.9)), float(total * (1 - share)))]
    corners = {"AS": np.array([-ah / 2, -depth / 2]), "AI": np.array([ah / 2, -depth / 2]),
               "PS": np.array([-ph / 2, depth / 2]), "PI": np.array([ph / 2, depth / 2])}
    body = BodyGeom(level=level, corners=corners, superior=sup, inferior=inf, deformity=kind,
                    genant_grade=int(grade), height_loss=loss,
                    corner_radius_mm=min(params.corner_radius_mm, 0.5),
                    marrow_gain=float(rng.uniform(1.1, 1.5)) if grade and rng.random() < 0.6
                    else float(rng.uniform(0.9, 1.1)))
    if level in params.schmorl_levels:
        which = "superior" if rng.random() < 0.5 else "inferior"
        getattr(body, which).append(_schmorl_bump(rng, depth))
        body.schmorl = True
    return body


def _sacrum(rng, size: float) -> BodyGeom:
    """S1 in its local frame: superior chord deeper than the inferior one."""
    depth = 44.0 * size * (1 + rng.normal(0, 0.04))
    h_a, h_p = 27.0 * size, 22.0 * size
    corners = {"AS": np.array([-h_a / 2, -depth / 2]), "AI": np.array([h_a / 2, -depth / 2 + 6.0]),
               "PS": np.array([-h_p / 2, depth / 2]), "PI": np.array([h_p / 2, depth / 2 - 6.0])}
    return BodyGeom(level="S1", corners=corners, superior=_healthy_bumps(rng, "superior"),
                    inferior=[], corner_radius_mm=0.5, in_truth=False)


def _place(body: BodyGeom, slope_rad: float, pi_target: np.ndarray, corner: str = "PI") -> BodyGeom:
    """Rotate the body so its inferior chord has ``slope_rad`` and move ``corner`` onto target."""
    c = body.corners
    a, p = ("AI", "PI") if corner == "PI" else ("AS", "PS")
    turn = slope_rad - chord_slope(c[a], c[p])
    rotated = body.transformed(lambda pts: rotate_slope(pts, turn, np.zeros(2)))
    shift = pi_target - rotated.corners[corner]
    return rotated.transformed(lambda pts: pts + shift)


def _add_osteophyte(rng, body: BodyGeom) -> None:
    """A bony beak from an anterior corner, growing anteriorly and along the disc."""
    c = body.corners
    which = "AS" if rng.random() < 0.5 else "AI"
    other = "AI" if which == "AS" else "AS"
    corner = c[which]
    wall = (c[other] - corner) / np.linalg.norm(c[other] - corner)      # into the body along wall
    chord_end = c["PS"] if which == "AS" else c["PI"]
    ant = -(chord_end - corner) / np.linalg.norm(chord_end - corner)     # anterior, along chord
    length = rng.uniform(3.0, 7.0)
    base = rng.uniform(3.0, 6.0)
    poly = np.array([corner + wall * base, corner + ant * length * 0.6 + wall * base * 0.35,
                     corner + ant * length - wall * length * 0.45,
                     corner + ant * length * 0.45 - wall * length * 0.15, corner + ant * 0.2])
    body.extras.append(poly)
    body.osteophyte = True


def build_anatomy(rng: np.random.Generator, params: PhantomParams) -> Anatomy:
    """Draw a column for ``params`` and place it in the image plane (mm)."""
    size = params.size_scale
    truth_levels = params.levels()
    levels = THORACIC_ABOVE.get(truth_levels[0], ()) + truth_levels
    bodies_local = [_body(rng, lv, params, size) for lv in levels]
    for b in bodies_local:
        b.in_truth = b.level in truth_levels
    sacrum_local = _sacrum(rng, size)
    # stack from the sacrum up
    slope = np.radians(params.sacral_slope_deg)
    s1 = _place(sacrum_local, slope, np.zeros(2), corner="PS")
    placed = [s1]
    below = s1
    for level, body in zip(reversed(levels), reversed(bodies_local)):
        design = LEVEL_DESIGN[level]
        disc_mid = design["disc_mm"] * size * (1 + rng.normal(0, 0.08))
        if level in params.degenerated_discs:
            disc_mid *= rng.uniform(0.4, 0.65)
        phi = np.radians(design["lordosis_deg"] * params.lordosis_scale + rng.normal(0, 1.0))
        lower_slope = chord_slope(below.corners["AS"], below.corners["PS"])
        new_slope = lower_slope - phi
        depth = np.linalg.norm(body.corners["PI"] - body.corners["AI"])
        d_post = max(disc_mid - depth * np.tan(phi) / 2.0, 2.0 * size)
        target = below.corners["PS"] + d_post * up_normal((lower_slope + new_slope) / 2)
        target = target + rng.normal(0, 0.6) * np.array([np.sin(new_slope), np.cos(new_slope)])
        b = _place(body, new_slope, target, corner="PI")
        placed.append(b)
        below = b
    bodies = placed[::-1]
    for b in bodies[:-1]:
        if b.level in params.osteophyte_levels:
            _add_osteophyte(rng, b)
    discs = [Disc(f"{bodies[i].level}-{bodies[i + 1].level}", i, i + 1,
                  bodies[i].level in params.degenerated_discs, float(rng.uniform(0.5, 2.0)))
             for i in range(len(bodies) - 1)]
    anat = Anatomy(bodies=bodies, discs=discs, sacrum_lower=_sacrum_lower(rng, s1),
                   canal_ligament_mm=float(rng.uniform(0.8, 1.8)),
                   canal_width_mm=float(rng.uniform(12.0, 18.0) * size),
                   fat_depth_mm=float(rng.uniform(55.0, 80.0)),
                   fat_thickness_mm=float(rng.uniform(8.0, 30.0)))
    anat.posterior_elements = _posterior_elements(rng, anat)
    anat.blobs = _blobs(rng, anat)
    detail_rng = np.random.default_rng(int(rng.integers(2**62)))
    for b in anat.bodies:
        k = params.wall_concavity_mm
        b.wall_concavity_mm = (float(detail_rng.uniform(0.0, k)), float(detail_rng.uniform(0.0, 0.6 * k)))
    _add_details(detail_rng, anat)
    return _position(anat, params)


def _sacrum_lower(rng, s1: BodyGeom) -> list[np.ndarray]:
    """S2..S4 as shrinking, kyphotically turning blocks below S1."""
    segs = []
    top_a, top_p = s1.corners["AI"], s1.corners["PI"]
    for k, (h, shrink) in enumerate(((20.0, 0.8), (17.0, 0.65), (14.0, 0.5))):
        slope = chord_slope(top_a, top_p) + np.radians(rng.uniform(8, 16))
        gap = rng.uniform(1.0, 2.0)
        n = up_normal(slope)
        a0 = top_a - n * gap
        p0 = top_p - n * gap
        a1 = a0 - n * h + (p0 - a0) * (1 - shrink) * 0.5
        p1 = p0 - n * h * 0.8
        segs.append(np.array([a0, p0, p1, a1]))
        top_a, top_p = a1, p1
    return segs


def _convex(points: np.ndarray) -> np.ndarray:
    """Convex hull of a few points, in order."""
    return points[ConvexHull(points).vertices]


def _chaikin(poly: np.ndarray, iterations: int) -> np.ndarray:
    """Corner-cutting smoothing of a closed polygon."""
    for _ in range(iterations):
        nxt = np.roll(poly, -1, axis=0)
        poly = np.stack([0.75 * poly + 0.25 * nxt, 0.25 * poly + 0.75 * nxt], axis=1).reshape(-1, 2)
    return poly


def _posterior_elements(rng, anat: Anatomy) -> list[np.ndarray]:
    """Lamina + spinous process blocks behind the canal, one per lumbar-type body."""
    polys = []
    gap = anat.canal_ligament_mm + anat.canal_width_mm + 1.0
    for b in anat.bodies[:-1]:
        c = b.corners
        back = (c["PS"] - c["AS"]) / np.linalg.norm(c["PS"] - c["AS"])
        down = (c["PI"] - c["PS"]) / np.linalg.norm(c["PI"] - c["PS"])
        h = np.linalg.norm(c["PI"] - c["PS"])
        top = c["PS"] + back * gap + down * h * rng.uniform(0.05, 0.2)
        length = rng.uniform(30.0, 45.0)
        polys.append(_chaikin(_convex(np.array([
            top, top + back * length * 0.45 - down * 1.5, top + back * length + down * h * 0.25,
            top + back * length + down * h * 0.75, top + back * length * 0.4 + down * h * 0.85,
            top + down * h * rng.uniform(0.9, 1.1)])), 2))
    return polys


def _blobs(rng, anat: Anatomy) -> list[tuple[np.ndarray, float]]:
    """Anterior abdominal contents: ellipses with relative intensity (bowel, vessels)."""
    out = []
    ys = [b.corners["AS"][0] for b in anat.bodies] + [anat.bodies[-1].corners["AI"][0]]
    xs = [b.corners["AS"][1] for b in anat.bodies]
    for _ in range(int(rng.integers(4, 10))):
        cy = rng.uniform(min(ys) - 20, max(ys) + 20)
        cx = rng.uniform(min(xs) - 70, min(xs) - 12)
        ry, rx = rng.uniform(4, 18), rng.uniform(4, 14)
        th = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        out.append((np.stack([cy + ry * np.sin(th), cx + rx * np.cos(th)], 1),
                    float(rng.choice([0.05, 0.1, 0.45, 0.7]))))
    return out


def _ellipse(cy: float, cx: float, ry: float, rx: float, n: int = 20) -> np.ndarray:
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cy + ry * np.sin(th), cx + rx * np.cos(th)], axis=1)


def _add_details(rng, anat: Anatomy) -> None:
    """Haemangiomas inside bodies, cauda equina strands in the canal, a vessel in front."""
    for i, b in enumerate(anat.bodies[:-1]):
        if rng.random() < 0.08:
            c = sum(b.corners.values()) / 4
            height = min(np.linalg.norm(b.corners["AS"] - b.corners["AI"]),
                         np.linalg.norm(b.corners["PS"] - b.corners["PI"]))
            r = min(rng.uniform(2.0, 4.5), 0.22 * height)
            off = rng.uniform(-0.1, 0.1, 2) * height
            anat.hemangiomas.append((_ellipse(c[0] + off[0], c[1] + off[1], r, r * 1.1), i))
    lum = [b for b in anat.bodies if b.level.startswith("L")]
    if len(lum) >= 3 and rng.random() < 0.7:
        gap = anat.canal_ligament_mm
        for _ in range(int(rng.integers(2, 6))):
            depth = gap + rng.uniform(0.2, 0.8) * anat.canal_width_mm
            pts = []
            for b in lum[1:]:
                back = (b.corners["PS"] - b.corners["AS"]) / np.linalg.norm(b.corners["PS"] - b.corners["AS"])
                pts += [b.corners["PS"] + back * depth, b.corners["PI"] + back * depth]
            line = np.array(pts)
            normal = np.array([0.0, rng.uniform(0.3, 0.6)])
            anat.roots.append(np.concatenate([line - normal, (line + normal)[::-1]]))
    if rng.random() < 0.6:
        ant = np.array([b.corners[k] for b in anat.bodies[:-2] for k in ("AS", "AI")])
        coef = np.polyfit(ant[:, 0], ant[:, 1], 2)
        ys = np.linspace(ant[0, 0] - 300.0, ant[-1, 0] - rng.uniform(0.0, 30.0), 80)
        xs = np.polyval(coef, np.clip(ys, ant[0, 0], None)) - rng.uniform(2.0, 6.0)
        dia = rng.uniform(14.0, 24.0)
        anat.vessel = (np.concatenate([np.stack([ys, xs], 1), np.stack([ys, xs - dia], 1)[::-1]]),
                       float(rng.choice([0.04, 0.08, 0.5, 0.7])))


def _position(anat: Anatomy, params: PhantomParams) -> Anatomy:
    """Move and tilt the column into the part of the slice the model sees (``view_box_mm``)."""
    top_mm, left_mm, bottom_mm, right_mm = view_box_mm(params.spacing_mm, params.shape)
    h_mm, w_mm = bottom_mm - top_mm, right_mm - left_mm
    bodies = anat.bodies
    first = next(i for i, b in enumerate(bodies) if b.in_truth)
    top = bodies[first].corners["PS"]
    s1 = bodies[-1].corners["PS"]
    if not params.t12_in_fov:
        anchor_y = (bodies[first].corners["PI"][0] + bodies[first + 1].corners["PS"][0]) / 2 + 2.0
        dy = top_mm - anchor_y
    elif not params.sacrum_in_fov:
        anchor_y = (bodies[-2].corners["PI"][0] + s1[0]) / 2 - 2.0
        dy = bottom_mm - anchor_y
    else:
        dy = top_mm + h_mm / 2 - (top[0] - 6.0 + s1[0] + 25.0) / 2
    post_x = np.mean([b.corners["PS"][1] for b in bodies[first:-1]])
    dx = left_mm + w_mm * 0.56 - post_x
    shift = np.array([dy + params.column_offset_mm[0], dx + params.column_offset_mm[1]])
    centre = np.array([top_mm + h_mm / 2, left_mm + w_mm / 2])
    tilt = np.radians(params.tilt_deg)
    corr = np.zeros(2)

    def fn(pts: np.ndarray) -> np.ndarray:
        return rotate_slope(pts + shift, tilt, centre) + corr

    corr[:] = _keep_in_view(anat, params, fn, first, (top_mm, left_mm, bottom_mm, right_mm))
    anat.bodies = [b.transformed(fn) for b in bodies]
    anat.sacrum_lower = [fn(p) for p in anat.sacrum_lower]
    anat.posterior_elements = [fn(p) for p in anat.posterior_elements]
    anat.blobs = [(fn(p), v) for p, v in anat.blobs]
    anat.hemangiomas = [(fn(p), i) for p, i in anat.hemangiomas]
    anat.roots = [fn(p) for p in anat.roots]
    if anat.vessel is not None:
        anat.vessel = (fn(anat.vessel[0]), anat.vessel[1])
    return anat


def _keep_in_view(anat: Anatomy, params: PhantomParams, fn, first: int, box_mm,
                  margin_mm: float = 4.0) -> np.ndarray:
    """Translation that brings the bodies meant to be visible inside the view box."""
    bodies = anat.bodies[first + (0 if params.t12_in_fov else 1):-1]
    pts = [p for b in bodies for p in b.corners.values()]
    if params.sacrum_in_fov:
        pts += [anat.bodies[-1].corners["AS"], anat.bodies[-1].corners["PS"]]
    pts = fn(np.array(pts))
    back = pts[:, 1].max() + anat.canal_width_mm + anat.canal_ligament_mm
    lo = np.array([pts[:, 0].min(), pts[:, 1].min()])
    hi = np.array([pts[:, 0].max(), back])
    corr = np.zeros(2)
    for k in range(2):
        room_lo = box_mm[k] + margin_mm - lo[k]
        room_hi = box_mm[k + 2] - margin_mm - hi[k]
        if room_lo > room_hi:            # does not fit: centre it
            corr[k] = (room_lo + room_hi) / 2
        elif room_lo > 0:
            corr[k] = room_lo
        elif room_hi < 0:
            corr[k] = room_hi
    return corr


def body_polygon(body: BodyGeom, n: int = 120) -> np.ndarray:
    """Rasterisable outline of a body (osteophytes are separate polygons in ``extras``)."""
    return outline(body, n=n)
