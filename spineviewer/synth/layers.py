"""Turn an Anatomy into rasterised tissue layers (coverage maps) and compose them.

A layer is one tissue region with its pixel coverage; layers are painted in order, later ones
over earlier ones ("over" compositing), so partial coverage gives partial-volume intensities and
the label maps take the topmost layer covering at least half a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from spineviewer.synth.anatomy import Anatomy
from spineviewer.synth.geometry import endplate_curve, outline
from spineviewer.synth.params import INSTANCE_IDS
from spineviewer.synth.raster import coverage

#: Class ids of the phantom label map.
CLASS_IDS = {"background": 0, "body": 1, "sacrum": 2, "disc": 3, "canal": 4, "other_bone": 5}

#: Relative T2 intensities (CSF = 1) at 1.5 T; keys are the tissue names used by layers.
T2_INTENSITY: dict[str, float] = {
    "air": 0.01, "muscle": 0.2, "abdomen": 0.12, "fat": 0.7, "csf": 1.0, "cord": 0.35,
    "marrow": 0.4, "sacrum": 0.38, "posterior_bone": 0.33, "annulus": 0.32, "nucleus": 0.85,
    "annulus_degen": 0.12, "nucleus_degen": 0.17, "blob": 0.3,
    "vessel": 0.3, "root": 0.3, "hemangioma": 0.85,
}


@dataclass
class Layer:
    """One tissue region: ``cov`` covers ``image[window]``; ``value`` is a relative intensity."""

    tissue: str
    window: tuple[slice, slice]
    cov: np.ndarray
    cls: int = 0
    inst: int = 0
    gain: float = 1.0
    textured: bool = False


def _extend(line: np.ndarray, mm: float = 400.0) -> np.ndarray:
    """Extend a polyline at both ends along its end directions."""
    d0 = line[0] - line[1]
    d1 = line[-1] - line[-2]
    return np.concatenate([[line[0] + d0 / np.linalg.norm(d0) * mm], line,
                           [line[-1] + d1 / np.linalg.norm(d1) * mm]])


def _normals(line: np.ndarray) -> np.ndarray:
    """Per-vertex unit normals pointing posterior (+x) for a top-to-bottom polyline."""
    t = np.gradient(line, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return np.stack([-t[:, 1], t[:, 0]], axis=1)


def _smooth_back(post: np.ndarray) -> np.ndarray:
    """Smooth curve (y, x) following the column's posterior wall: quadratic x(y) inside the
    column, straight continuation beyond it, so large offsets never fold over."""
    y, x = post[:, 0], post[:, 1]
    coef = np.polyfit(y, x, 2)
    y0, y1 = y.min(), y.max()
    ys = np.linspace(y0 - 1500.0, y1 + 1500.0, 400)
    yc = np.clip(ys, y0, y1)
    slope = np.clip(np.polyval(np.polyder(coef), yc), -0.4, 0.4)
    xs = np.polyval(coef, yc) + slope * (ys - yc)
    return np.stack([ys, xs], axis=1)


def _band(line: np.ndarray, off0, off1) -> np.ndarray:
    n = _normals(line)
    off0 = np.broadcast_to(off0, len(line))[:, None]
    off1 = np.broadcast_to(off1, len(line))[:, None]
    return np.concatenate([line + n * off0, (line + n * off1)[::-1]])


def _column_lines(anat: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    ant = np.array([p for b in anat.bodies for p in (b.corners["AS"], b.corners["AI"])]
                   + [seg[3] for seg in anat.sacrum_lower])
    post = np.array([p for b in anat.bodies for p in (b.corners["PS"], b.corners["PI"])]
                    + [seg[2] for seg in anat.sacrum_lower])
    return ant, post


def disc_polygon(anat: Anatomy, disc) -> np.ndarray:
    """Disc outline: the upper body's inferior endplate, the lower body's superior endplate and
    slightly bulging anterior/posterior sides."""
    up, lo = anat.bodies[disc.upper], anat.bodies[disc.lower]
    inf = endplate_curve(up, "inferior", 120)           # AI -> PI of the upper body
    sup = endplate_curve(lo, "superior", 120)[::-1]     # PS -> AS of the lower body
    post_mid = (inf[-1] + sup[0]) / 2 + _normals(np.array([inf[-1], sup[0]]))[0] * disc.bulge_mm
    ant_mid = (sup[-1] + inf[0]) / 2 - _normals(np.array([inf[0], sup[-1]]))[0] * disc.bulge_mm
    return np.concatenate([inf, [post_mid], sup, [ant_mid]])


def _nucleus(disc_poly: np.ndarray, lower) -> np.ndarray:
    """Disc outline shrunk about its centre, more across the disc than along it."""
    centre = disc_poly.mean(axis=0)
    u = lower.corners["PS"] - lower.corners["AS"]
    u = u / np.linalg.norm(u)
    n = np.array([-u[1], u[0]])
    rel = disc_poly - centre
    return centre + np.outer(rel @ u, u) * 0.72 + np.outer(rel @ n, n) * 0.45


def build_layers(anat: Anatomy, spacing_mm, shape, ss: int = 4, ss_soft: int = 1) -> list[Layer]:
    """Rasterise every tissue of ``anat`` in paint order."""
    layers: list[Layer] = []

    def add(poly, tissue, cls=0, inst=0, gain=1.0, textured=False, s=ss_soft, extra=()):
        res = coverage(poly, spacing_mm, shape, s)
        for e in extra:  # union by max (osteophytes on their body)
            er = coverage(e, spacing_mm, shape, s)
            if er is not None:
                res = _union(res, er, shape)
        if res is not None:
            layers.append(Layer(tissue, res[0], res[1], cls, inst, gain, textured))

    ant, post = _column_lines(anat)
    n_b = 2 * len(anat.bodies)
    near = ant[:n_b] + _normals(ant[:n_b]) * -4.0
    near = np.concatenate([[near[0] - [400.0, 0.0]], near, [near[-1] + [400.0, 0.0]]])
    add(np.concatenate([near, [[near[-1, 0], -2000.0], [near[0, 0], -2000.0]]]), "abdomen")
    for poly, val in anat.blobs:
        add(poly, "blob", gain=val / T2_INTENSITY["blob"])
    if anat.vessel is not None:
        add(anat.vessel[0], "vessel", gain=anat.vessel[1] / T2_INTENSITY["vessel"])
    back = _smooth_back(post[:n_b - 2])
    skin = anat.fat_depth_mm + anat.fat_thickness_mm
    fat0, skin_line = back + [0, anat.fat_depth_mm], back + [0, skin]
    add(np.concatenate([fat0, skin_line[::-1]]), "fat", textured=True)
    add(np.concatenate([skin_line, [[skin_line[-1, 0], 3000.0], [skin_line[0, 0], 3000.0]]]),
        "air")
    n_top = 2 * len(anat.bodies)                      # PS/PI of every body incl. S1
    lig, width = anat.canal_ligament_mm, anat.canal_width_mm
    canal_line = np.concatenate([_extend(post[:2], 400.0)[:1], post])
    widths = np.concatenate([np.full(n_top + 1, width),
                             np.linspace(width * 0.6, width * 0.3, len(post) - n_top)])
    add(_band(canal_line, lig, lig + widths), "csf", cls=CLASS_IDS["canal"])
    cord = canal_line[:5]
    add(_band(cord, lig + width * np.linspace(0.3, 0.48, len(cord)),
              lig + width * np.linspace(0.75, 0.52, len(cord))), "cord", cls=CLASS_IDS["canal"])
    for poly in anat.roots:
        add(poly, "root", cls=CLASS_IDS["canal"])
    for poly in anat.posterior_elements + anat.sacrum_lower:
        add(poly, "posterior_bone", cls=CLASS_IDS["other_bone"], textured=True)
    for disc in anat.discs:
        poly = disc_polygon(anat, disc)
        kind = "_degen" if disc.degenerated else ""
        add(poly, "annulus" + kind, cls=CLASS_IDS["disc"], s=ss)
        add(_nucleus(poly, anat.bodies[disc.lower]), "nucleus" + kind,
            cls=CLASS_IDS["disc"], s=ss)
    for b in anat.bodies:
        is_s1 = b.level == "S1"
        add(outline(b, n=120), "sacrum" if is_s1 else "marrow",
            cls=CLASS_IDS["sacrum" if is_s1 else "body"], inst=INSTANCE_IDS.get(b.level, 0),
            gain=b.marrow_gain, textured=True, s=ss, extra=b.extras)
    for poly, i in anat.hemangiomas:
        b = anat.bodies[i]
        add(poly, "hemangioma", cls=CLASS_IDS["body"], inst=INSTANCE_IDS.get(b.level, 0), s=ss)
    return layers


def _union(a, b, shape):
    """Union (pixel-wise max) of two windowed coverages."""
    if a is None:
        return b
    (ra, ca), (rb, cb) = a[0], b[0]
    r0, r1 = min(ra.start, rb.start), max(ra.stop, rb.stop)
    c0, c1 = min(ca.start, cb.start), max(ca.stop, cb.stop)
    out = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)
    out[ra.start - r0:ra.stop - r0, ca.start - c0:ca.stop - c0] = a[1]
    sub = out[rb.start - r0:rb.stop - r0, cb.start - c0:cb.stop - c0]
    np.maximum(sub, b[1], out=sub)
    return (slice(r0, r1), slice(c0, c1)), out


def compose_labels(layers: list[Layer], shape) -> tuple[np.ndarray, np.ndarray]:
    """Class and instance maps: the topmost labelled layer with coverage >= 0.5 wins."""
    cls = np.zeros(shape, dtype=np.uint8)
    inst = np.zeros(shape, dtype=np.uint8)
    for layer in layers:
        if layer.cls == 0:
            continue
        m = layer.cov >= 0.5
        cls[layer.window][m] = layer.cls
        inst[layer.window][m] = layer.inst
    return cls, inst


def compose_image(layers: list[Layer], shape, values: dict[str, float], texture: np.ndarray,
                  texture_amp: float = 0.12, base: str = "muscle") -> np.ndarray:
    """Partial-volume ("over") composite of the layers with per-tissue values."""
    img = np.full(shape, values[base], dtype=np.float32)
    for layer in layers:
        v = values[layer.tissue] * layer.gain
        if layer.textured:
            v = v * (1.0 + texture_amp * texture[layer.window])
        win = img[layer.window]
        win += layer.cov * (v - win)
    return img


def bone_coverage(layers: list[Layer], shape) -> np.ndarray:
    """Coverage in [0, 1] of any bone (bodies, sacrum, other bone) per pixel."""
    bone = np.zeros(shape, dtype=np.float32)
    for layer in layers:
        if layer.cls in (CLASS_IDS["body"], CLASS_IDS["sacrum"], CLASS_IDS["other_bone"]):
            win = bone[layer.window]
            np.maximum(win, layer.cov, out=win)
    return bone


def bone_rim(layers: list[Layer], shape, spacing_mm, width_mm: float = 0.9) -> np.ndarray:
    """Weight in [0, 1] of the dark cortical rim just inside every bone (endplates included)."""
    bone = bone_coverage(layers, shape)
    sigma = (width_mm / spacing_mm[0], width_mm / spacing_mm[1])
    return np.clip(2.0 * (bone - gaussian_filter(bone, sigma)), 0.0, 1.0)
