"""Mid-sagittal lumbar T2 phantom slice with exact geometric truth (synth.phantom.make_slice).

The slice is in the canonical orientation (superior = row 0, anterior = column 0). Bodies
T12..L5 and S1 are quadrilaterals with raised-cosine endplate depressions (see
``synth.geometry``); deformities (wedge, biconcave, crush of Genant grade 1..3), Schmorl nodes,
anterior osteophytes and degenerated discs are drawn as ``PhantomParams`` asks. Label maps are
the 4x4-supersampled coverage thresholded at 0.5. Truth values are computed from the analytic
geometry with the definitions of ``docs/INTERFACES.md`` (core.morphometry), in mm.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from spineviewer.synth.anatomy import Anatomy, build_anatomy
from spineviewer.synth.geometry import CORNER_NAMES, Bump, measure_geometry
from spineviewer.synth.layers import (
    T2_INTENSITY,
    bone_rim,
    build_layers,
    compose_image,
    compose_labels,
)
from spineviewer.synth.params import PhantomParams, random_params, view_box_mm

__all__ = [
    "BodyTruth",
    "PhantomParams",
    "PhantomSlice",
    "body_truths",
    "lateral_variant",
    "make_slice",
    "random_params",
    "render_slice",
    "stir_values",
    "with_oedema",
]


@dataclass
class BodyTruth:
    """Ground truth of one vertebral body (coordinates in pixels of its slice, lengths in mm)."""

    level: str
    corners_rc: dict[str, tuple[float, float]]
    AH_mm: float
    PH_mm: float
    MH_mm: float
    SC_mm: float
    IC_mm: float
    VA_deg: float
    deformity: str
    genant_grade: int
    fracture: bool
    schmorl: bool
    osteophyte: bool
    height_loss: float = 0.0
    acute: bool = False  # acute fracture (marrow oedema on STIR), see PhantomParams.acute_levels

    def to_dict(self) -> dict:
        """JSON-friendly dict (corners as lists)."""
        d = asdict(self)
        d["corners_rc"] = {k: [float(v[0]), float(v[1])] for k, v in self.corners_rc.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BodyTruth:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["corners_rc"] = {k: (float(v[0]), float(v[1])) for k, v in d["corners_rc"].items()}
        return cls(**d)


@dataclass
class PhantomSlice:
    """A rendered phantom slice.

    ``image`` float32 in scanner-like units; ``class_map`` uint8 (0 background, 1 body, 2 sacrum,
    3 disc, 4 canal, 5 other bone); ``instance_map`` uint8 (0 none, 1..6 T12..L5, 7 S1, 8 L6,
    9 T11, 10 T10: the thoracic bodies above the top truth level are drawn but carry no truth);
    ``truth`` holds the bodies (not S1) whose four corners lie inside the image.
    """

    image: np.ndarray
    class_map: np.ndarray
    instance_map: np.ndarray
    spacing_mm: tuple[float, float]
    truth: list[BodyTruth]
    params: PhantomParams


def body_truths(anat: Anatomy, spacing_mm, shape, margin_px: float = 2.0) -> list[BodyTruth]:
    """Truth of every non-sacral body whose corners lie inside the image and inside the centred
    part the paper's pre-processing keeps (``params.view_box_mm``)."""
    top, left, bottom, right = view_box_mm(spacing_mm, shape)
    out = []
    for b in anat.bodies:
        if b.level == "S1" or not b.in_truth:
            continue
        rc = {k: (float(b.corners[k][0] / spacing_mm[0]), float(b.corners[k][1] / spacing_mm[1]))
              for k in CORNER_NAMES}
        inside = all(margin_px <= r <= shape[0] - 1 - margin_px
                     and margin_px <= c <= shape[1] - 1 - margin_px for r, c in rc.values())
        inside &= all(top <= p[0] <= bottom and left <= p[1] <= right for p in b.corners.values())
        if not inside:
            continue
        g = measure_geometry(b)
        out.append(BodyTruth(b.level, rc, g.AH_mm, g.PH_mm, g.MH_mm, g.SC_mm, g.IC_mm, g.VA_deg,
                             b.deformity, b.genant_grade, b.genant_grade > 0, b.schmorl,
                             b.osteophyte, b.height_loss))
    return out


def _noise_field(rng: np.random.Generator, shape, sigma_px: float = 1.0) -> np.ndarray:
    tex = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px)
    return tex / max(float(tex.std()), 1e-6)


def t2_values(field_strength_T: float) -> dict[str, float]:
    """Relative T2 intensities for a field strength (3 T: slightly brighter fat, darker marrow)."""
    v = dict(T2_INTENSITY)
    if field_strength_T > 2.0:
        v["fat"] *= 1.08
        v["marrow"] *= 0.92
    return v


def t1_values() -> dict[str, float]:
    """Relative T1 intensities (fat and fatty marrow bright, CSF and discs dark)."""
    v = dict(T2_INTENSITY)
    v.update(fat=0.95, csf=0.12, cord=0.3, marrow=0.6, sacrum=0.6, posterior_bone=0.55,
             annulus=0.28, nucleus=0.3, annulus_degen=0.22, nucleus_degen=0.24, muscle=0.3,
             abdomen=0.25, blob=0.3, root=0.2, hemangioma=0.8)
    return v


def stir_values() -> dict[str, float]:
    """Relative STIR intensities: fat and fatty marrow suppressed, fluid (CSF, nucleus, marrow
    oedema) bright."""
    v = dict(T2_INTENSITY)
    v.update(fat=0.06, marrow=0.13, sacrum=0.12, posterior_bone=0.1, muscle=0.16, abdomen=0.14,
             annulus=0.22, nucleus=0.75, annulus_degen=0.1, nucleus_degen=0.14, blob=0.25,
             hemangioma=0.15, vessel=0.35, cord=0.4)
    return v


#: Marrow gain of an acutely fractured body: oedema (free water) on STIR is close to CSF/2 and
#: on T1 darker than fatty marrow.
OEDEMA_GAIN = {"stir": 4.5, "t1": 0.55}


def with_oedema(anat: Anatomy, levels, contrast: str) -> Anatomy:
    """A copy of ``anat`` whose bodies at ``levels`` carry marrow oedema for ``contrast``
    (``stir`` or ``t1``); fractured or not is the caller's business. On STIR the other bodies'
    marrow is suppressed evenly (a healed fracture has no oedema)."""
    out = copy.deepcopy(anat)
    for b in out.bodies:
        if b.level in levels:
            b.marrow_gain = OEDEMA_GAIN[contrast]
        elif contrast == "stir":
            b.marrow_gain = min(b.marrow_gain, 1.05)
    return out


def render_slice(anat: Anatomy, params: PhantomParams, rng: np.random.Generator, *,
                 ss: int = 4, canal_gain: float = 1.0,
                 values: dict[str, float] | None = None) -> PhantomSlice:
    """Rasterise an Anatomy into a PhantomSlice (intensity noise drawn from ``rng``).

    ``values`` overrides the relative tissue intensities (default: T2 for the field strength);
    ``canal_gain`` < 1 fades the CSF towards muscle (parasagittal slices).
    """
    spacing, shape = tuple(float(s) for s in params.spacing_mm), tuple(params.shape)
    layers = build_layers(anat, spacing, shape, ss=ss)
    cls, inst = compose_labels(layers, shape)
    values = dict(values) if values is not None else t2_values(params.field_strength_T)
    values["csf"] = values["csf"] * canal_gain + values["muscle"] * (1 - canal_gain)
    values["cord"] = values["cord"] * canal_gain + values["muscle"] * (1 - canal_gain)
    tex = _noise_field(rng, shape, 1.0 / max(spacing[0], 0.3) * 0.7)
    img = compose_image(layers, shape, values, tex, texture_amp=0.15)
    img *= 1.0 - 0.75 * bone_rim(layers, shape, spacing)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    bias = 1.0 + 0.12 * np.cos(np.pi * (yy / shape[0] - rng.uniform(0.2, 0.8))) \
        * np.cos(np.pi * (xx / shape[1] - rng.uniform(0.2, 0.8)))
    sd = params.noise_sd
    img = img * bias
    img = np.sqrt((img + rng.normal(0, sd, shape)) ** 2 + rng.normal(0, sd, shape) ** 2)
    image = (img * params.intensity_scale).astype(np.float32)
    truths = body_truths(anat, spacing, shape)
    for t in truths:
        t.acute = t.fracture and t.level in params.acute_levels
    return PhantomSlice(image, cls, inst, spacing, truths, params)


def make_slice(rng: np.random.Generator, params: PhantomParams | None = None) -> PhantomSlice:
    """Draw and render a mid-sagittal lumbar phantom slice.

    Parameters
    ----------
    rng : generator; the only source of randomness (same seed and params -> same slice).
    params : knobs; ``random_params(rng)`` when None.

    Returns
    -------
    PhantomSlice with image, class/instance maps and per-body truth.
    """
    if params is None:
        params = random_params(rng)
    anat = build_anatomy(rng, params)
    return render_slice(anat, params, rng)


def lateral_variant(anat: Anatomy, offset_mm: float,
                    body_offsets_mm: dict[str, float] | None = None) -> Anatomy:
    """The same column cut ``offset_mm`` off the mid-sagittal plane.

    Bodies get shorter antero-posteriorly (elliptic axial section, posterior wall kept), endplate
    depressions shallower, osteophytes vanish beyond 8 mm, spinous processes shorten; bodies
    and discs shrink to slivers beyond their half width. ``body_offsets_mm`` moves single
    bodies' mid-planes (by level; scoliosis): body b is cut at ``offset_mm - body_offsets_mm[b]``.
    """
    out = copy.deepcopy(anat)
    x_all = abs(float(offset_mm))
    for b in out.bodies:
        x = abs(float(offset_mm) - float((body_offsets_mm or {}).get(b.level, 0.0)))
        depth = np.linalg.norm(b.corners["PS"] - b.corners["AS"])
        k2 = max(1.0 - (x / (0.68 * depth)) ** 2, 0.06)   # thin sliver near the pedicles
        k = np.sqrt(k2)
        b.corners["AS"] = b.corners["PS"] + (b.corners["AS"] - b.corners["PS"]) * k
        b.corners["AI"] = b.corners["PI"] + (b.corners["AI"] - b.corners["PI"]) * k
        b.superior = [Bump(u.t, u.width_t, u.depth_mm * k2) for u in b.superior]
        b.inferior = [Bump(u.t, u.width_t, u.depth_mm * k2) for u in b.inferior]
        if x > 8.0:
            b.extras = []
    shrink = max(0.3, 1.0 - x_all / 14.0)
    out.posterior_elements = [p[0] + (p - p[0]) * shrink for p in out.posterior_elements]
    return out
