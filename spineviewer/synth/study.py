"""Phantom lumbar MRI studies as real DICOM files with their ground truth (synth.write_study).

Layout of one study::

    out_dir/dicom/...          DICOM files (T2 sagittal + optional T1 sagittal, T2 axial and
                               STIR sagittal)
    out_dir/truth.json         UIDs, centre slice, spacing, per-level truth, phantom params
    out_dir/truth_labels.npy   instance map of the T2 centre slice (0 none, 1..6 T12..L5, 7 S1;
                               8 L6, 9 T11, 10 T10 where drawn; see params.INSTANCE_IDS)
    out_dir/truth_classes.npy  class map of the centre slice (0 background, 1 body, 2 sacrum,
                               3 disc, 4 canal, 5 other bone)

The T2 series uses ImageOrientationPatient [0,1,0, 0,0,-1] (rows run superior -> inferior,
columns anterior -> posterior), so the written centre slice is the canonical phantom itself and
the truth corners are its (row, col) pixels. The centre slice is index ``(n - 1) // 2`` when the
slices are sorted along the normal; the others are parasagittal variants of the same column.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spineviewer.synth.anatomy import build_anatomy
from spineviewer.synth.dicom_writer import (
    VENDORS,
    SeriesSpec,
    StudySpec,
    mr_dataset,
    to_stored,
    uid_for,
)
from spineviewer.synth.params import DEFORMITY_TYPES, PhantomParams, random_params
from spineviewer.synth.phantom import (
    BodyTruth,
    lateral_variant,
    render_slice,
    stir_values,
    t1_values,
    with_oedema,
)

log = logging.getLogger(__name__)

TRUTH_SCHEMA = "spineviewer.phantom-truth/1"


@dataclass
class StudyTruth:
    """Ground truth of a written phantom study (mirrors ``truth.json``)."""

    out_dir: str
    seed: int
    vendor: str
    field_strength_T: float
    study_uid: str
    t2_series_uid: str
    sop_instance_uid: str
    slice_index: int
    n_slices: int
    pixel_spacing_mm: tuple[float, float]
    matrix: tuple[int, int]
    rescale_slope: float
    rescale_intercept: float
    vertebrae: list[BodyTruth]
    params: PhantomParams
    distractor_series_uids: list[str] = field(default_factory=list)
    stir_series_uid: str = ""
    #: Slice index (0-based, as sorted) nearest each body's own mid-sagittal plane.
    mid_slice_by_level: dict[str, int] = field(default_factory=dict)
    #: ``"a"`` (the training renderer, synth.phantom) or ``"b"`` (synth_b, validation only),
    #: and renderer B's drawn appearance.
    renderer: str = "a"
    look: dict = field(default_factory=dict)

    @property
    def dicom_dir(self) -> Path:
        """Folder holding the study's DICOM files."""
        return Path(self.out_dir) / "dicom"

    def to_dict(self) -> dict:
        """JSON form as written to ``truth.json``."""
        return {
            "schema": TRUTH_SCHEMA, "seed": self.seed, "vendor": self.vendor,
            "field_strength_T": self.field_strength_T, "study_uid": self.study_uid,
            "t2_series_uid": self.t2_series_uid, "sop_instance_uid": self.sop_instance_uid,
            "slice_index": self.slice_index, "n_slices": self.n_slices,
            "pixel_spacing_mm": list(self.pixel_spacing_mm), "matrix": list(self.matrix),
            "rescale_slope": self.rescale_slope, "rescale_intercept": self.rescale_intercept,
            "distractor_series_uids": list(self.distractor_series_uids),
            "stir_series_uid": self.stir_series_uid,
            "mid_slice_by_level": dict(self.mid_slice_by_level),
            "vertebrae": [v.to_dict() for v in self.vertebrae], "params": self.params.to_dict(),
            "renderer": self.renderer, "look": self.look,
        }


def load_truth(path: str | Path) -> StudyTruth:
    """Read ``truth.json`` (or the study folder holding it) back into a StudyTruth."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth.json"
    d = json.loads(path.read_text())
    return StudyTruth(
        out_dir=str(path.parent), seed=d["seed"], vendor=d["vendor"],
        field_strength_T=d["field_strength_T"], study_uid=d["study_uid"],
        t2_series_uid=d["t2_series_uid"], sop_instance_uid=d["sop_instance_uid"],
        slice_index=d["slice_index"], n_slices=d["n_slices"],
        pixel_spacing_mm=tuple(d["pixel_spacing_mm"]), matrix=tuple(d["matrix"]),
        rescale_slope=d["rescale_slope"], rescale_intercept=d["rescale_intercept"],
        vertebrae=[BodyTruth.from_dict(v) for v in d["vertebrae"]],
        params=PhantomParams.from_dict(d["params"]),
        distractor_series_uids=list(d.get("distractor_series_uids", [])),
        stir_series_uid=d.get("stir_series_uid", ""),
        mid_slice_by_level={k: int(v) for k, v in d.get("mid_slice_by_level", {}).items()},
        renderer=str(d.get("renderer", "a")), look=dict(d.get("look", {})))


def _intensity_scale(rng: np.random.Generator, vendor: str, field_T: float) -> float:
    """Scanner units of relative intensity 1 (CSF): vendor and field dependent."""
    lo, hi = {"siemens": (1300.0, 2000.0), "ge": (2100.0, 3000.0), "philips": (1200.0, 2200.0)}[vendor]
    return float(rng.uniform(lo, hi) * (1.15 if field_T > 2 else 1.0))


def _rescale(rng: np.random.Generator, vendor: str) -> tuple[float, float]:
    """Philips stores scaled values (slope != 1, chosen so that real values up to ~4500 still fit
    in 12 bits); the others store real values."""
    if vendor == "philips":
        return float(np.round(rng.uniform(1.1, 2.2), 6)), 0.0
    return 1.0, 0.0


class _Writer:
    """Collects datasets and writes them with the requested file naming."""

    def __init__(self, root: Path, style: str, rng: np.random.Generator):
        if style not in ("uid", "numbered", "random"):
            raise ValueError(f"unknown file_names style {style!r}")
        self.root, self.style, self.rng = root, style, rng
        self.datasets = []

    def add(self, ds) -> None:
        if self.style == "uid":
            path = self.root / f"{ds.SOPInstanceUID}.dcm"
        elif self.style == "numbered":
            path = self.root / f"SE{int(ds.SeriesNumber):04d}" / f"IM{int(ds.InstanceNumber):05d}"
        else:
            path = self.root / "".join(self.rng.choice(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"), 8))
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        self.datasets.append(ds)


def _sagittal_series(study: StudySpec, uid: str, number: int, desc: str, te: float, tr: float,
                     n: int, spacing_mm: float, thickness: float, origin) -> SeriesSpec:
    centre = (n - 1) // 2
    gap = thickness * 1.1
    # normal of IOP [0,1,0, 0,0,-1] is (-1, 0, 0): position along it = -x
    positions = [(origin[0] - (k - centre) * gap, origin[1], origin[2]) for k in range(n)]
    return SeriesSpec(uid, number, desc, te, tr, (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), positions,
                      (spacing_mm, spacing_mm), thickness, gap)


def write_study(out_dir: str | Path, seed: int, *, vendor: str = "siemens",
                field_strength_T: float = 1.5, n_slices: int = 15, pixel_spacing_mm: float = 0.6,
                matrix: tuple[int, int] = (448, 314), params: PhantomParams | None = None,
                distractors: bool = True, file_names: str = "uid",
                dicomdir: bool = False, stir: bool = False, render: str = "a") -> StudyTruth:
    """Write one phantom study (DICOM + truth) and return its truth.

    Parameters
    ----------
    out_dir : study folder (created); DICOM files go to ``out_dir/dicom``.
    seed : everything (anatomy, noise, UIDs, names) follows from it.
    vendor : ``siemens``, ``ge`` or ``philips`` tag style and intensity scale.
    field_strength_T : 1.5 or 3.0.
    n_slices : T2 sagittal slices (centre slice ``(n - 1) // 2`` holds the truth).
    pixel_spacing_mm : in-plane spacing (isotropic).
    matrix : (rows, cols) of the sagittal series.
    params : phantom knobs; drawn with ``random_params`` when None (spacing/shape are set
        from ``pixel_spacing_mm``/``matrix`` either way).
    distractors : also write a T1 sagittal and a T2 axial series.
    file_names : ``uid`` (``<SOPInstanceUID>.dcm``), ``numbered`` (``SE0003/IM00001``) or
        ``random`` (8 random characters, no extension).
    dicomdir : write a DICOMDIR (pydicom FileSet layout) instead of the plain files.
    stir : also write a sagittal STIR series (number 5: same field of view and slice positions
        at 0.8 mm pixels, fat suppressed, marrow oedema bright in ``params.acute_levels``).
    render : ``"a"``, the training renderer, or ``"b"``, the independent renderer of
        ``spineviewer.synth_b`` (validation only) for the T2 series: the same anatomy and
        truth, drawn with other textures, rims, depression fills, marrow states and
        contrasts. The T1, axial and STIR series stay renderer A's.
    """
    if vendor not in VENDORS:
        raise ValueError(f"vendor must be one of {sorted(VENDORS)}, not {vendor!r}")
    if render not in ("a", "b"):
        raise ValueError(f"render must be 'a' or 'b', not {render!r}")
    out = Path(out_dir)
    (out / "dicom").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    params = random_params(rng) if params is None else copy.deepcopy(params)
    params.spacing_mm = (float(pixel_spacing_mm), float(pixel_spacing_mm))
    params.shape = (int(matrix[0]), int(matrix[1]))
    params.field_strength_T = float(field_strength_T)
    params.intensity_scale = _intensity_scale(rng, vendor, field_strength_T)
    params.noise_sd = float(rng.uniform(0.012, 0.025) * (0.75 if field_strength_T > 2 else 1.0))
    slope, intercept = _rescale(rng, vendor)
    anat = build_anatomy(rng, params)
    study = StudySpec(seed, vendor, float(field_strength_T), uid_for(seed, "study"),
                      uid_for(seed, "frame"), f"PHANTOM^{seed:03d}", f"PH{seed:06d}",
                      f"2024{1 + seed % 12:02d}{1 + seed % 28:02d}",
                      f"{8 + seed % 10:02d}{seed % 60:02d}00")
    origin = (float(rng.uniform(-5, 5)), float(rng.uniform(-140, -90)), float(rng.uniform(120, 180)))
    thickness = float(rng.choice([3.0, 3.5, 4.0]))
    t2 = _sagittal_series(study, uid_for(seed, "t2"), 3, VENDORS[vendor]["t2"].format(cols=matrix[1]),
                          float(rng.uniform(85, 120)), float(rng.uniform(3000, 4500)),
                          n_slices, pixel_spacing_mm, thickness, origin)
    writer = _Writer(out / "dicom", file_names, np.random.default_rng([seed, 7]))
    centre = (n_slices - 1) // 2
    truth_slice = None
    lateral = params.lateral_offsets_mm(tuple(b.level for b in anat.bodies))
    shifted = any(abs(v) > 1e-9 for v in lateral.values())
    look = None
    if render == "b":
        from spineviewer.synth_b import draw_look, render_b
        look = draw_look(np.random.default_rng([seed, 900]), anat)
    for k in range(n_slices):
        offset = (k - centre) * t2.spacing_between_mm
        variant = anat if (k == centre and not shifted) else lateral_variant(
            anat, offset - params.midline_offset_mm, {
                lv: v - params.midline_offset_mm for lv, v in lateral.items()})
        gain = float(np.clip(1.0 - abs(offset - params.midline_offset_mm) / 9.0, 0.1, 1.0))
        ps = render_slice(variant, params, np.random.default_rng([seed, 100 + k]),
                          ss=4 if k == centre else 2, canal_gain=gain)
        image = ps.image
        if look is not None:
            image, _ = render_b(variant, params, np.random.default_rng([seed, 900 + k]),
                                look=look, ss=3 if k == centre else 1, canal_gain=gain)
        if k == centre:
            truth_slice = ps
        number = n_slices - k if vendor == "ge" else k + 1
        writer.add(mr_dataset(study, t2, k, to_stored(image, slope, intercept), slope,
                              intercept, number))
    distractor_uids = _write_distractors(study, writer, anat, params, origin, thickness, seed,
                                         slope, intercept) if distractors else []
    stir_uid = _write_stir(study, writer, anat, params, origin, thickness, n_slices, seed,
                           slope, intercept) if stir else ""
    if dicomdir:
        _write_dicomdir(out / "dicom", writer)
    truth = StudyTruth(
        str(out), seed, vendor, float(field_strength_T), study.study_uid, t2.series_uid,
        uid_for(seed, t2.series_uid, "sop", centre), centre, n_slices,
        (float(pixel_spacing_mm), float(pixel_spacing_mm)), (int(matrix[0]), int(matrix[1])),
        slope, intercept, truth_slice.truth, params, distractor_uids, stir_uid,
        {lv: int(np.clip(round(centre + v / t2.spacing_between_mm), 0, n_slices - 1))
         for lv, v in lateral.items()}, renderer=render,
        look=look.to_dict() if look is not None else {})
    (out / "truth.json").write_text(json.dumps(truth.to_dict(), indent=1))
    np.save(out / "truth_labels.npy", truth_slice.instance_map)
    np.save(out / "truth_classes.npy", truth_slice.class_map)
    return truth


def _write_distractors(study, writer, anat, params, origin, thickness, seed, slope, intercept):
    """T1 sagittal (same geometry, 5 slices) and a few T2 axial slices through the discs."""
    rng = np.random.default_rng([seed, 3])
    v = VENDORS[study.vendor]
    t1 = _sagittal_series(study, uid_for(seed, "t1"), 2, v["t1"], float(rng.uniform(8, 14)),
                          float(rng.uniform(450, 650)), 5, params.spacing_mm[0], thickness, origin)
    t1.echo_train_length = 3
    for k in range(5):
        offset = (k - 2) * t1.spacing_between_mm
        variant = anat if k == 2 else lateral_variant(anat, offset)
        if params.acute_levels:  # oedema displaces fatty marrow: acute bodies are dark on T1
            variant = with_oedema(variant, _acute(params), "t1")
        ps = render_slice(variant, params, np.random.default_rng([seed, 200 + k]), ss=1,
                          values=t1_values())
        writer.add(mr_dataset(study, t1, k, to_stored(ps.image, slope, intercept), slope,
                              intercept, k + 1))
    n_ax = 4
    ax = SeriesSpec(uid_for(seed, "ax"), 4, v["ax"], float(rng.uniform(90, 110)),
                    float(rng.uniform(3500, 5000)), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                    [(-100.0, -120.0, origin[2] - 100.0 - 40.0 * k) for k in range(n_ax)],
                    (0.7, 0.7), 4.0, 40.0)
    for k in range(n_ax):
        img = _axial_image(np.random.default_rng([seed, 300 + k]), params.intensity_scale)
        writer.add(mr_dataset(study, ax, k, to_stored(img, slope, intercept), slope, intercept,
                              k + 1))
    return [t1.series_uid, ax.series_uid]


def _acute(params: PhantomParams) -> tuple[str, ...]:
    """Acute levels that are fractured (oedema is drawn only there)."""
    return tuple(lv for lv in params.acute_levels if lv in params.deformities)


STIR_SPACING_MM = 0.8


def _write_stir(study, writer, anat, params, origin, thickness, n_t2, seed, slope, intercept):
    """Sagittal STIR: the T2's field of view at coarser pixels, fewer slices, lower SNR."""
    rng = np.random.default_rng([seed, 5])
    fov = (params.shape[0] * params.spacing_mm[0], params.shape[1] * params.spacing_mm[1])
    p = copy.deepcopy(params)
    p.spacing_mm = (STIR_SPACING_MM, STIR_SPACING_MM)
    p.shape = (round(fov[0] / STIR_SPACING_MM), round(fov[1] / STIR_SPACING_MM))
    p.noise_sd = params.noise_sd * 1.6
    # pixel centres of both series start at the same patient position (origin)
    n = min(n_t2, 11)
    spec = _sagittal_series(study, uid_for(seed, "stir"), 5, VENDORS[study.vendor]["stir"],
                            float(rng.uniform(40, 70)), float(rng.uniform(3500, 5500)), n,
                            STIR_SPACING_MM, thickness, origin)
    spec.inversion_time_ms = float(rng.uniform(150, 180))
    spec.echo_train_length = 13
    values = stir_values()
    centre = (n - 1) // 2
    for k in range(n):
        offset = (k - centre) * spec.spacing_between_mm
        variant = anat if k == centre else lateral_variant(anat, offset)
        variant = with_oedema(variant, _acute(params), "stir")
        gain = float(np.clip(1.0 - abs(offset) / 9.0, 0.1, 1.0))
        ps = render_slice(variant, p, np.random.default_rng([seed, 400 + k]), ss=1,
                          canal_gain=gain, values=values)
        writer.add(mr_dataset(study, spec, k, to_stored(ps.image, slope, intercept), slope,
                              intercept, k + 1))
    return spec.series_uid


def _axial_image(rng: np.random.Generator, scale: float, n: int = 256) -> np.ndarray:
    """A crude axial T2 slice: body contour, vertebral body or disc, canal, psoas, fat."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)

    def ellipse(cy, cx, ry, rx):
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0

    img = np.zeros((n, n), np.float32)
    img[ellipse(n * 0.5, n * 0.5, n * 0.42, n * 0.48)] = 0.65          # subcutaneous fat
    img[ellipse(n * 0.5, n * 0.5, n * 0.38, n * 0.44)] = 0.18          # muscle / abdomen
    img[ellipse(n * 0.52, n * 0.5, n * 0.1, n * 0.12)] = rng.choice([0.4, 0.8])  # body or disc
    img[ellipse(n * 0.66, n * 0.5, n * 0.04, n * 0.05)] = 1.0          # thecal sac
    img += rng.normal(0.0, 0.02, img.shape).astype(np.float32)
    return np.abs(img) * scale


def _write_dicomdir(root: Path, writer: _Writer) -> None:
    """Rewrite the files as a pydicom FileSet with a DICOMDIR under ``root``."""
    from pydicom.fileset import FileSet

    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_file():
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    fs = FileSet()
    for ds in writer.datasets:
        fs.add(ds)
    fs.write(root)


def write_cohort(out_dir: str | Path, n: int, seed: int, *, distractors: bool = True,
                 n_slices: int | None = None, stir: bool = False,
                 render: str = "a") -> list[StudyTruth]:
    """Write ``n`` varied studies to ``out_dir/study_XXX`` (vendors, field strengths, spacing,
    matrix, slice count; every deformity type and grade appears once n >= 9). With ``stir``
    each study also gets a STIR series, and every other study's fracture is acute. ``render``
    as in :func:`write_study` (the anatomy drawn for a seed is the same either way)."""
    rng = np.random.default_rng(seed)
    combos = [(t, g) for t in DEFORMITY_TYPES for g in (1, 2, 3)]
    rng.shuffle(combos)
    truths = []
    for i in range(n):
        study_seed = int(rng.integers(0, 2**31 - 1))
        srng = np.random.default_rng(study_seed)
        params = random_params(srng, fracture_prob=0.05, schmorl_prob=0.08, osteophyte_prob=0.1)
        kind, grade = combos[i % len(combos)]
        level = str(srng.choice([lv for lv in params.levels() if lv != "T12"][:5]))
        params.deformities[level] = (kind, grade)
        params.schmorl_levels = tuple(lv for lv in params.schmorl_levels if lv != level)
        if stir and i % 2 == 0:
            params.acute_levels = (level,)
        spacing = float(np.round(rng.uniform(0.6, 0.8), 3))
        matrix = [(448, 314), (512, 384), (448, 320), (384, 288)][int(rng.integers(0, 4))]
        if matrix[0] * spacing > 330:
            matrix = (384, 288)
        truths.append(write_study(
            Path(out_dir) / f"study_{i:03d}", study_seed, vendor=("siemens", "ge", "philips")[i % 3],
            field_strength_T=(1.5, 3.0)[(i // 3) % 2],
            n_slices=n_slices or int(rng.choice([11, 12, 13, 15, 15, 17])),
            pixel_spacing_mm=spacing, matrix=matrix, params=params, distractors=distractors,
            file_names=("uid", "numbered", "random")[int(rng.integers(0, 3))], stir=stir,
            render=render))
    return truths


def main(argv: list[str] | None = None) -> int:
    """``spineviewer synth OUT --n N --seed S``: write a phantom cohort; returns the exit code."""
    parser = argparse.ArgumentParser(prog="spineviewer synth",
                                     description="Write phantom lumbar MRI studies with truth.")
    parser.add_argument("out", help="output folder (study_XXX subfolders are created)")
    parser.add_argument("--n", type=int, default=1, help="number of studies (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--no-distractors", action="store_true",
                        help="write only the T2 sagittal series")
    parser.add_argument("--stir", action="store_true",
                        help="also write a sagittal STIR series (acute fractures bright)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    try:
        truths = write_cohort(args.out, args.n, args.seed, distractors=not args.no_distractors,
                              stir=args.stir)
    except OSError as exc:
        print(f"spineviewer synth: cannot write to {args.out}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    n_frac = sum(v.fracture for t in truths for v in t.vertebrae)
    n_vert = sum(len(t.vertebrae) for t in truths)
    print(f"wrote {len(truths)} studies to {args.out} ({n_vert} vertebrae, {n_frac} fractured)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
