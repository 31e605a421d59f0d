"""Knobs of the lumbar phantom and a random draw of a varied case.

The per-level anatomical figures below are the phantom's design values, chosen to sit in the
ranges reported for adult lumbar spines (body heights 24-30 mm, AP depth 32-45 mm, discs
6-12 mm, wedge ratio AH/PH rising from about 0.9 at the thoracolumbar junction to about 1.03
at L5, healthy endplate concavity about 0.7 mm superior and 1.5 mm inferior as in
Wang/Battie/Videman 2012, see ``docs/MORPHOMETRY.md``). They are not normative data for
fracture calls; they only make the synthetic cohort look like one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Level names from top to bottom in a standard (5 lumbar) spine.
STANDARD_LEVELS: tuple[str, ...] = ("T12", "L1", "L2", "L3", "L4", "L5")

#: Instance-map id of each level name (0 = none). L6 exists only with ``n_lumbar=6``.
INSTANCE_IDS: dict[str, int] = {
    "T12": 1, "L1": 2, "L2": 3, "L3": 4, "L4": 5, "L5": 6, "S1": 7, "L6": 8, "T11": 9, "T10": 10,
}

#: Level name of each instance-map id.
LEVEL_OF_INSTANCE: dict[int, str] = {v: k for k, v in INSTANCE_IDS.items()}

#: Thoracic bodies drawn above the top truth level (in the masks as bodies, never in the truth).
THORACIC_ABOVE: dict[str, tuple[str, ...]] = {
    "T12": ("T10", "T11"), "L1": ("T11", "T12"),
}

#: Healthy design values per level: posterior height (mm), wedge ratio AH/PH mean, AP depth (mm).
LEVEL_DESIGN: dict[str, dict[str, float]] = {
    "T10": {"PH_mm": 22.5, "wedge": 0.90, "depth_mm": 29.0, "disc_mm": 5.0, "lordosis_deg": 0.0},
    "T11": {"PH_mm": 23.5, "wedge": 0.90, "depth_mm": 30.5, "disc_mm": 5.5, "lordosis_deg": 1.0},
    "T12": {"PH_mm": 24.5, "wedge": 0.91, "depth_mm": 32.0, "disc_mm": 6.5, "lordosis_deg": 2.5},
    "L1": {"PH_mm": 26.0, "wedge": 0.93, "depth_mm": 34.0, "disc_mm": 7.5, "lordosis_deg": 5.0},
    "L2": {"PH_mm": 27.0, "wedge": 0.95, "depth_mm": 36.0, "disc_mm": 8.5, "lordosis_deg": 7.0},
    "L3": {"PH_mm": 27.5, "wedge": 0.97, "depth_mm": 38.0, "disc_mm": 9.5, "lordosis_deg": 9.0},
    "L4": {"PH_mm": 27.0, "wedge": 0.99, "depth_mm": 39.5, "disc_mm": 10.5, "lordosis_deg": 12.0},
    "L5": {"PH_mm": 25.5, "wedge": 1.03, "depth_mm": 40.5, "disc_mm": 10.0, "lordosis_deg": 14.0},
    "L6": {"PH_mm": 25.0, "wedge": 1.04, "depth_mm": 41.0, "disc_mm": 9.0, "lordosis_deg": 13.0},
}
#: Disc design values are for the disc *below* the named level (``disc_mm`` of L5 = L5-S1).

#: SD of the healthy wedge ratio and of the per-level height factor (fractions).
WEDGE_SD = 0.022
HEIGHT_SD = 0.02

#: Height loss fraction per Genant grade (interior of Genant's 20-25 / 25-40 / > 40 % bands).
GRADE_LOSS: dict[int, tuple[float, float]] = {1: (0.205, 0.245), 2: (0.27, 0.38), 3: (0.42, 0.55)}

DEFORMITY_TYPES: tuple[str, ...] = ("wedge", "biconcave", "crush")

#: Region the paper's pre-processing keeps (448 x 320 pixels of 0.6 mm, centred on the slice).
MODEL_VIEW_MM: tuple[float, float] = (448 * 0.6, 320 * 0.6)


def view_box_mm(spacing_mm, shape) -> tuple[float, float, float, float]:
    """(top, left, bottom, right) in mm of the centred part of the slice the model sees.

    Pixel (r, c) has its centre at (r * spacing_row, c * spacing_col) mm.
    """
    box = []
    for k in range(2):
        centre = (shape[k] - 1) / 2.0 * spacing_mm[k]
        half = min(shape[k] * spacing_mm[k], MODEL_VIEW_MM[k]) / 2.0
        box.append((centre - half, centre + half))
    return box[0][0], box[1][0], box[0][1], box[1][1]


@dataclass
class PhantomParams:
    """Everything about a phantom slice that is not a random anatomical draw.

    Attributes
    ----------
    spacing_mm : (row, col) pixel spacing of the rendered slice.
    shape : (rows, cols) of the rendered slice.
    deformities : ``{level: (type, grade)}``, type in ``wedge|biconcave|crush``, grade 1..3.
    schmorl_levels : levels with a Schmorl node (endplate chosen at random).
    osteophyte_levels : levels with an anterior osteophyte (corner chosen at random).
    degenerated_discs : discs named by the level above them (``"L4"`` = L4-L5), dark and thin.
    lordosis_scale : multiplies every disc's lordotic angle (1 = design lordosis).
    sacral_slope_deg : slope of the S1 superior endplate against the horizontal.
    column_offset_mm : (row, col) shift of the column from its default place.
    tilt_deg : in-plane rotation of the whole anatomy about the image centre.
    size_scale : patient size factor on all body dimensions.
    field_strength_T : 1.5 or 3.0 (noise and contrast differ slightly).
    intensity_scale : scanner units of relative intensity 1.0 (CSF is about 1.0).
    noise_sd : Rician noise SD as a fraction of ``intensity_scale``.
    t12_in_fov, sacrum_in_fov : when False the column is shifted so that T12 (top) or the
        sacrum (bottom) falls (mostly) outside the field of view.
    n_lumbar : 4, 5 (default) or 6 lumbar-type bodies (transitional anatomy).
    corner_radius_mm : rounding of the body corners (at most 0.5 mm).
    wall_concavity_mm : largest inward bow of the anterior body wall (posterior: 0.6 x);
        0 keeps the walls straight (default; the training samples use up to 1.5 mm).
    midline_offset_mm : the column's mid-sagittal plane lies this far (mm, along the slice
        normal) from the series' centre slice (a patient not centred in the coil).
    scoliosis_mm : peak lateral shift of the bodies off that plane (a C-curve, largest in the
        middle of the column, 0 at its ends).
    acute_levels : fractured levels whose fracture is acute: marrow oedema, bright on STIR and
        dark on T1 (``write_study(stir=True)``); the T2 image is drawn the same either way.
    """

    spacing_mm: tuple[float, float] = (0.6, 0.6)
    shape: tuple[int, int] = (448, 320)
    deformities: dict[str, tuple[str, int]] = field(default_factory=dict)
    schmorl_levels: tuple[str, ...] = ()
    osteophyte_levels: tuple[str, ...] = ()
    degenerated_discs: tuple[str, ...] = ()
    lordosis_scale: float = 1.0
    sacral_slope_deg: float = 38.0
    column_offset_mm: tuple[float, float] = (0.0, 0.0)
    tilt_deg: float = 0.0
    size_scale: float = 1.0
    field_strength_T: float = 1.5
    intensity_scale: float = 2000.0
    noise_sd: float = 0.02
    t12_in_fov: bool = True
    sacrum_in_fov: bool = True
    n_lumbar: int = 5
    corner_radius_mm: float = 0.3
    wall_concavity_mm: float = 0.0
    midline_offset_mm: float = 0.0
    scoliosis_mm: float = 0.0
    acute_levels: tuple[str, ...] = ()

    def lateral_offsets_mm(self, levels: tuple[str, ...]) -> dict[str, float]:
        """Lateral position (mm from the series' centre slice) of each body's mid-plane."""
        n = len(levels)
        return {lv: float(self.midline_offset_mm + self.scoliosis_mm
                          * np.sin(np.pi * (i + 0.5) / n)) for i, lv in enumerate(levels)}

    def levels(self) -> tuple[str, ...]:
        """Truth levels above the sacrum, top to bottom (T12 is dropped with 6 lumbar)."""
        if self.n_lumbar == 4:
            return ("T12", "L1", "L2", "L3", "L4")
        if self.n_lumbar == 6:
            return ("L1", "L2", "L3", "L4", "L5", "L6")
        return STANDARD_LEVELS

    def to_dict(self) -> dict:
        """JSON-friendly copy (tuples become lists)."""
        return {
            "spacing_mm": list(self.spacing_mm), "shape": list(self.shape),
            "deformities": {k: [v[0], int(v[1])] for k, v in self.deformities.items()},
            "schmorl_levels": list(self.schmorl_levels),
            "osteophyte_levels": list(self.osteophyte_levels),
            "degenerated_discs": list(self.degenerated_discs),
            "lordosis_scale": self.lordosis_scale, "sacral_slope_deg": self.sacral_slope_deg,
            "column_offset_mm": list(self.column_offset_mm), "tilt_deg": self.tilt_deg,
            "size_scale": self.size_scale, "field_strength_T": self.field_strength_T,
            "intensity_scale": self.intensity_scale, "noise_sd": self.noise_sd,
            "t12_in_fov": self.t12_in_fov, "sacrum_in_fov": self.sacrum_in_fov,
            "n_lumbar": self.n_lumbar, "corner_radius_mm": self.corner_radius_mm,
            "wall_concavity_mm": self.wall_concavity_mm,
            "midline_offset_mm": self.midline_offset_mm, "scoliosis_mm": self.scoliosis_mm,
            "acute_levels": list(self.acute_levels),
        }

    @classmethod
    def from_dict(cls, d: dict) -> PhantomParams:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        for key in ("spacing_mm", "shape", "column_offset_mm"):
            d[key] = tuple(d[key])
        for key in ("schmorl_levels", "osteophyte_levels", "degenerated_discs", "acute_levels"):
            d[key] = tuple(d.get(key, ()))
        d["deformities"] = {k: (v[0], int(v[1])) for k, v in d["deformities"].items()}
        return cls(**d)


def random_params(
    rng: np.random.Generator,
    fracture_prob: float = 0.15,
    *,
    schmorl_prob: float = 0.06,
    osteophyte_prob: float = 0.08,
    degeneration_prob: float = 0.15,
    crop_prob: float = 0.15,
    transitional_prob: float = 0.04,
    spacing_mm: tuple[float, float] = (0.6, 0.6),
    shape: tuple[int, int] = (448, 320),
) -> PhantomParams:
    """Draw a varied phantom case.

    Parameters
    ----------
    rng : random generator (the only source of randomness).
    fracture_prob : probability that a given level T12..L5 is fractured; type uniform over
        wedge/biconcave/crush, grade uniform over 1..3.
    schmorl_prob, osteophyte_prob, degeneration_prob : per-level probabilities.
    crop_prob : probability each of T12 and the sacrum is cut out of the field of view.
    transitional_prob : probability of 4 or of 6 lumbar bodies (each).

    Returns
    -------
    PhantomParams
    """
    u = rng.random()
    n_lumbar = 4 if u < transitional_prob else 6 if u < 2 * transitional_prob else 5
    params = PhantomParams(spacing_mm=tuple(spacing_mm), shape=tuple(shape), n_lumbar=n_lumbar)
    levels = params.levels()
    deformities: dict[str, tuple[str, int]] = {}
    for level in levels:
        if level in STANDARD_LEVELS and rng.random() < fracture_prob:
            deformities[level] = (str(rng.choice(DEFORMITY_TYPES)), int(rng.integers(1, 4)))
    params.deformities = deformities
    params.schmorl_levels = tuple(
        lv for lv in levels if lv not in deformities and rng.random() < schmorl_prob)
    params.osteophyte_levels = tuple(lv for lv in levels if rng.random() < osteophyte_prob)
    params.degenerated_discs = tuple(
        lv for lv in levels if rng.random() < degeneration_prob * (1.5 if lv in ("L4", "L5") else 1))
    params.lordosis_scale = float(rng.uniform(0.5, 1.4))
    params.sacral_slope_deg = float(rng.uniform(28.0, 48.0))
    params.column_offset_mm = (float(rng.normal(0.0, 8.0)), float(rng.normal(0.0, 8.0)))
    params.tilt_deg = float(rng.normal(0.0, 3.0))
    params.size_scale = float(rng.uniform(0.9, 1.1))
    params.field_strength_T = float(rng.choice([1.5, 3.0]))
    params.intensity_scale = float(rng.uniform(1500.0, 3200.0))
    params.noise_sd = float(rng.uniform(0.01, 0.035) * (0.75 if params.field_strength_T > 2 else 1))
    params.t12_in_fov = bool(rng.random() >= crop_prob)
    params.sacrum_in_fov = bool(rng.random() >= crop_prob) or params.t12_in_fov is False
    params.corner_radius_mm = float(rng.uniform(0.0, 0.5))
    return params
