"""Renderer B: the same anatomy (``synth.anatomy``) drawn with another appearance model.

It shares only the geometry with the training renderer (``synth.layers``/``synth.phantom``),
so the truth (corners, heights, label maps) is identical while everything the network and
the endplate refinement see differs:

* marrow textures: trabecular speckle, vertical streaks or blotches (renderer A: one smooth
  Gaussian texture);
* cortical rims 0.5-2 mm thick per study (A: ~0.9 mm);
* endplate depressions filled with bright disc, dark degenerated disc or marrow-like signal
  (the cortical line then runs through marrow-like signal);
* marrow states: normal, fatty, oedematous; Modic type 1/2/3 bands along endplates;
  haemangiomas (A's and extra ones);
* a T2 or a STIR (fat-suppressed) look; another bias field.

Coordinates follow ``synth``: anatomy in (y, x) mm, pixel (r, c) centred at
(r * spacing_row, c * spacing_col).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from spineviewer.synth.anatomy import Anatomy
from spineviewer.synth.geometry import endplate_curve, outline
from spineviewer.synth.raster import coverage

__all__ = ["FILLS", "Look", "draw_look", "render_b"]

FILLS = ("disc_bright", "disc_dark", "marrow")
TEXTURES = ("speckle", "streak", "blotch")
MARROW_STATES = ("normal", "fatty", "oedema")
MODIC = (0, 1, 2, 3)

#: Relative intensities per look (CSF = 1).
_T2 = {"muscle": 0.22, "fat": 0.82, "csf": 1.0, "abdomen": 0.16, "annulus": 0.24,
       "nucleus": 0.92, "degen": 0.1, "cortex": 0.03, "bone_post": 0.3,
       "marrow": {"normal": 0.45, "fatty": 0.68, "oedema": 0.62},
       "modic": {1: 0.75, 2: 0.7, 3: 0.12}, "haemangioma": 0.88}
_STIR = {"muscle": 0.16, "fat": 0.06, "csf": 1.0, "abdomen": 0.1, "annulus": 0.2,
         "nucleus": 0.95, "degen": 0.12, "cortex": 0.02, "bone_post": 0.12,
         "marrow": {"normal": 0.15, "fatty": 0.08, "oedema": 0.55},
         "modic": {1: 0.7, 2: 0.06, 3: 0.05}, "haemangioma": 0.45}


@dataclass
class Look:
    """The appearance drawn for one study (recorded in its truth for traceability)."""

    stir: bool = False
    texture: str = "speckle"
    texture_amp: float = 0.18
    rim_mm: float = 1.2
    marrow: str = "normal"
    fills: dict[str, str] = field(default_factory=dict)       # level -> fill
    modic: dict[str, tuple[int, str, float]] = field(default_factory=dict)  # level -> type, side, mm
    extra_haemangiomas: list[tuple[int, float, float, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def draw_look(rng: np.random.Generator, anat: Anatomy) -> Look:
    """Random appearance for ``anat`` (every draw from ``rng``)."""
    look = Look(stir=bool(rng.random() < 0.25), texture=str(rng.choice(TEXTURES)),
                texture_amp=float(rng.uniform(0.1, 0.25)), rim_mm=float(rng.uniform(0.5, 2.0)),
                marrow=str(rng.choice(MARROW_STATES, p=[0.5, 0.3, 0.2])))
    for i, b in enumerate(anat.bodies):
        look.fills[b.level] = str(rng.choice(FILLS))
        if rng.random() < 0.2:
            look.modic[b.level] = (int(rng.choice(MODIC[1:])),
                                   str(rng.choice(["superior", "inferior"])),
                                   float(rng.uniform(3.0, 8.0)))
        if rng.random() < 0.15:
            look.extra_haemangiomas.append((i, float(rng.uniform(0.25, 0.75)),
                                            float(rng.uniform(0.3, 0.7)),
                                            float(rng.uniform(1.5, 4.0))))
    return look


def _cover(poly_mm: np.ndarray, sp: np.ndarray, shape: tuple[int, int], ss: int
           ) -> np.ndarray:
    """Supersampled inside/outside of a polygon on the fine grid (ss samples per pixel)."""
    # fine sample R sits at coarse pixel (R + 0.5) / ss - 0.5 (as in synth.raster)
    shifted = np.asarray(poly_mm, float) + (0.5 - 0.5 / ss) * sp
    fine = np.zeros((shape[0] * ss, shape[1] * ss), bool)
    res = coverage(shifted, tuple(sp / ss), fine.shape, ss=1)
    if res is not None:
        fine[res[0]] = res[1] >= 0.5
    return fine


def _band(line: np.ndarray, d0: float, d1: float, towards: np.ndarray) -> np.ndarray:
    """Polygon between offsets d0 and d1 (mm) of a polyline, positive towards ``towards``."""
    ext = np.concatenate([[line[0] - 400.0 * _unit(line[1] - line[0])], line,
                          [line[-1] + 400.0 * _unit(line[-1] - line[-2])]])
    tang = np.gradient(ext, axis=0)
    n = np.stack([-tang[:, 1], tang[:, 0]], axis=1)
    n /= np.maximum(np.linalg.norm(n, axis=1), 1e-9)[:, None]
    n *= np.sign(np.sum(n * towards, axis=1))[:, None]
    return np.concatenate([ext + d0 * n, (ext + d1 * n)[::-1]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _texture(rng: np.random.Generator, shape: tuple[int, int], kind: str,
             sp: np.ndarray) -> np.ndarray:
    white = rng.standard_normal(shape).astype(np.float32)
    px = 1.0 / sp
    if kind == "speckle":      # band-passed: trabecular grain
        t = ndimage.gaussian_filter(white, 0.35 * px) - ndimage.gaussian_filter(white, 1.5 * px)
    elif kind == "streak":     # vertical trabeculae
        t = ndimage.gaussian_filter(white, (2.5 * px[0], 0.4 * px[1]))
    else:                      # blotchy marrow
        t = ndimage.gaussian_filter(white, 2.5 * px)
    return t / max(float(t.std()), 1e-6)


def render_b(anat: Anatomy, params, rng: np.random.Generator, *, look: Look | None = None,
             ss: int = 3, canal_gain: float = 1.0) -> tuple[np.ndarray, Look]:
    """Draw ``anat`` with renderer B; returns (image in scanner-like units, the look).

    ``params`` supplies spacing, shape, noise and intensity scale (``PhantomParams``);
    ``canal_gain`` < 1 fades the CSF (parasagittal slices).
    """
    sp = np.asarray(params.spacing_mm, float)
    shape = (int(params.shape[0]), int(params.shape[1]))
    look = look if look is not None else draw_look(rng, anat)
    val = _STIR if look.stir else _T2
    fine_shape = (shape[0] * ss, shape[1] * ss)
    img = np.full(fine_shape, val["muscle"], np.float32)
    fsp = sp / ss

    def paint(poly, value, weight=None):
        m = _cover(poly, sp, shape, ss)
        if weight is None:
            img[m] = value
        else:
            img[m] = value if np.isscalar(value) else value[m]
        return m

    # soft tissue around the column
    ant = np.array([p for b in anat.bodies for p in (b.corners["AS"], b.corners["AI"])])
    post = np.array([p for b in anat.bodies for p in (b.corners["PS"], b.corners["PI"])])
    forward, backward = np.array([0.0, -1.0]), np.array([0.0, 1.0])
    paint(_band(ant, 6.0, 400.0, forward), val["abdomen"])
    canal_w = float(rng.uniform(10.0, 16.0))
    csf = val["csf"] * canal_gain + val["muscle"] * (1 - canal_gain)
    paint(_band(post, 2.0 + float(rng.uniform(0, 1.5)), canal_w, backward), csf)
    fat0 = anat.fat_depth_mm
    paint(_band(post, fat0, fat0 + anat.fat_thickness_mm, backward), val["fat"])
    paint(_band(post, fat0 + anat.fat_thickness_mm, 400.0, backward), 0.01)
    for poly in anat.posterior_elements + anat.sacrum_lower:
        paint(poly, val["bone_post"])
    # discs: annulus with a nucleus (or dark when degenerated)
    for disc in anat.discs:
        up, lo = anat.bodies[disc.upper], anat.bodies[disc.lower]
        poly = np.concatenate([endplate_curve(up, "inferior", 80),
                               endplate_curve(lo, "superior", 80)[::-1]])
        paint(poly, val["degen"] if disc.degenerated else val["annulus"])
        if not disc.degenerated:
            c = poly.mean(axis=0)
            paint(c + (poly - c) * np.array([0.45, 0.7]), val["nucleus"])
    tex = _texture(rng, fine_shape, look.texture, fsp)
    marrow = val["marrow"][look.marrow]
    for i, b in enumerate(anat.bodies):
        body = _cover(outline(b, n=160), sp, shape, ss)
        for e in b.extras:
            body |= _cover(e, sp, shape, ss)
        flat_geom = copy.copy(b)
        flat_geom.superior, flat_geom.inferior = [], []
        flat = _cover(outline(flat_geom, n=160), sp, shape, ss)
        fill = look.fills.get(b.level, "disc_bright")
        depression = flat & ~body
        if fill == "disc_dark":
            img[depression] = val["degen"]
        elif fill == "marrow":
            img[depression] = marrow * (1.0 + look.texture_amp * tex[depression])
        else:            # nucleus herniated into the depression
            img[depression] = val["nucleus"]
        gain = b.marrow_gain if b.level != "S1" else 0.95
        img[body] = marrow * gain * (1.0 + look.texture_amp * tex[body])
        if b.level in look.modic:
            kind, side, depth = look.modic[b.level]
            curve = endplate_curve(b, side, 200) / fsp
            rr, cc = np.nonzero(body)
            d, _ = cKDTree(curve).query(np.stack([rr, cc], axis=1).astype(float))
            near = d * fsp[0] < depth
            img[rr[near], cc[near]] = val["modic"][kind] * (1.0 + 0.5 * look.texture_amp
                                                           * tex[rr[near], cc[near]])
        # the cortical rim: everything within rim_mm inside the body's border
        win = ndimage.find_objects(body.astype(np.uint8))
        if win:
            sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in win[0])
            dist = ndimage.distance_transform_edt(body[sl], sampling=fsp)
            rim = body[sl] & (dist <= look.rim_mm)
            sub = img[sl]
            sub[rim] = val["cortex"]
    for poly, i in anat.hemangiomas:
        inside = _cover(poly, sp, shape, ss) & _cover(outline(anat.bodies[i], n=160), sp, shape,
                                                        ss)
        img[inside] = val["haemangioma"]
    for i, fu, fv, r in look.extra_haemangiomas:
        b = anat.bodies[i]
        c = b.corners
        top = c["AS"] + fu * (c["PS"] - c["AS"])
        bot = c["AI"] + fu * (c["PI"] - c["AI"])
        centre = top + fv * (bot - top)
        ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        circle = centre + r * np.stack([np.sin(ang), np.cos(ang)], axis=1)
        inside = _cover(circle, sp, shape, ss) & _cover(outline(b, n=160), sp, shape, ss)
        # keep the cortical rim: a haemangioma lies in the marrow
        core = ndimage.binary_erosion(_cover(outline(b, n=160), sp, shape, ss),
                                      iterations=int(np.ceil(look.rim_mm / fsp[0])) + 1)
        img[inside & core] = val["haemangioma"]
    image = img.reshape(shape[0], ss, shape[1], ss).mean(axis=(1, 3))
    # a coil-like bias (strongest posteriorly) and Rician noise
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    bias = (0.8 + 0.35 * xx / shape[1]) * (1.0 + 0.08 * np.sin(np.pi * yy / shape[0]
                                                                 + rng.uniform(0, np.pi)))
    sd = float(params.noise_sd)
    image = image * bias
    image = np.sqrt((image + rng.normal(0, sd, shape)) ** 2 + rng.normal(0, sd, shape) ** 2)
    return (image * float(params.intensity_scale)).astype(np.float32), look
