"""The headless analysis pipeline: DICOM study in, measured and classified vertebrae out.

``analyze_study`` runs index -> series choice -> load -> preprocess -> segment -> label ->
corners -> morphometry -> Genant, reporting progress per stage and checking a cancel flag
between stages. ``remeasure`` re-runs only morphometry and Genant after user corrections.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spineviewer import __version__
from spineviewer.core import errors
from spineviewer.core.results import StudyResult, VertebraResult

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]
CancelFn = Callable[[], bool]

STAGES = ("index", "select", "load", "preprocess", "segment", "label", "corners",
          "morphometry", "genant")
# Flags that come from labelling / geometry and survive a re-measurement.
PERSISTENT_FLAGS = frozenset({
    "label_uncertain", "partial_body", "corners_failed", "transitional_anatomy",
    "sacrum_not_visible", "corrected", "endplate_from_mask",
})

_MODEL_CACHE: dict[tuple, Any] = {}


def get_model(model_path: str | Path | None = None, provider: str = "auto",
              threads: int | None = None):
    """Create the ONNX segmentation model once per (path, provider, threads) and reuse it."""
    from spineviewer.core.segment import SegmentationModel

    key = (str(model_path) if model_path else None, provider, threads)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = SegmentationModel(model_path, provider=provider, threads=threads)
    return _MODEL_CACHE[key]


class _Stages:
    """Progress reporting, cancellation and per-stage timing."""

    def __init__(self, progress: ProgressFn | None, cancel: CancelFn | None):
        self.progress = progress
        self.cancel = cancel
        self.timings: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = 0.0

    def start(self, name: str) -> None:
        self.finish()
        if self.cancel is not None and self.cancel():
            raise errors.Cancelled("analysis cancelled by the user")
        self._name, self._t0 = name, time.perf_counter()
        if self.progress is not None:
            self.progress(name, STAGES.index(name) / len(STAGES))

    def finish(self) -> None:
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._t0, 4)
            self._name = None

    def done(self) -> None:
        self.finish()
        if self.progress is not None:
            self.progress("done", 1.0)


def analyze_study(path: str | Path, *, series_uid: str | None = None,
                  model_path: str | Path | None = None, provider: str = "auto",
                  threads: int | None = None, progress: ProgressFn | None = None,
                  cancel: CancelFn | None = None,
                  masks_override: np.ndarray | None = None,
                  refine_endplates: bool = True) -> StudyResult:
    """Analyse the sagittal T2 series of the study at ``path``.

    Parameters
    ----------
    path : folder (any depth) or single DICOM file.
    series_uid : analyse this series instead of the automatic choice.
    model_path, provider, threads : ONNX model file, "auto"|"cpu"|"cuda", intra-op threads.
    progress : called as ``progress(stage, fraction)``.
    cancel : returns True to stop; checked between stages (raises ``errors.Cancelled``).
    masks_override : label map on the *source* slice (0 none, 1..6 T12..L5, 7 sacrum) that
        replaces the network (validation with ground-truth masks).
    refine_endplates : move each body's endplates and corners to the image's outer cortical
        margin (``core.endplates``); False measures the mask's border as it is.

    Returns
    -------
    StudyResult with coordinates in (row, col) pixels of the analysed source slice.
    """
    from spineviewer.core.dicom.index import scan_folder
    from spineviewer.core.dicom.select import choose_series
    from spineviewer.core.dicom.volume import load_series
    st = _Stages(progress, cancel)
    st.start("index")
    index = scan_folder(path, cancel=cancel)
    st.start("select")
    choice = choose_series(index, series_uid=series_uid)
    st.start("load")
    volume = load_series(choice.series)
    idx = int(volume.centre_index)
    image = volume.pixels[idx]
    header = volume.datasets[idx]
    spacing = tuple(float(x) for x in volume.pixel_spacing_mm)

    model = None
    if masks_override is None:
        model = get_model(model_path, provider, threads)
    result = StudyResult(
        study_uid=str(choice.series.study_uid), series_uid=str(choice.series.series_uid),
        sop_instance_uid=str(volume.sop_instance_uids[idx]), slice_index=int(idx),
        pixel_spacing_mm=spacing,
        model=_model_info(model),
        series_choice={**choice.to_dict(), "description": choice.series.series_description},
        patient=_patient_info(header),
        source_path=str(path),
        source_slice_file=str(volume.files[idx]),
        software={"name": "SpineViewer", "version": __version__},
        image_shape=(int(image.shape[0]), int(image.shape[1])),
    )
    skipped = list(index.skipped) + list(getattr(volume, "skipped", []))
    result.warnings.extend(f"skipped {f}: {why}" for f, why in skipped[:20])
    if len(skipped) > 20:
        result.warnings.append(f"... and {len(skipped) - 20} more unreadable files")

    st.start("preprocess")
    x, transform = _preprocess(image, spacing, volume.image_orientation, model)
    st.start("segment")
    class_map, class_names = _segment(x, transform, model, masks_override, image.shape)
    st.start("label")
    from spineviewer.core.labeling import label_vertebrae

    labelling = label_vertebrae(class_map, class_names, spacing_mm=transform_spacing(model),
                                in_view=transform.in_view())
    result.flags.extend(labelling.flags)
    result.warnings.extend(labelling.warnings)

    st.start("corners")
    result.vertebrae = _find_all_corners(labelling, transform, transform_spacing(model))
    if refine_endplates:
        from spineviewer.core.endplates import refine_vertebra

        for v in result.vertebrae:
            refine_vertebra(v, image, spacing)
    st.start("morphometry")
    measured = measure_all(result)
    st.start("genant")
    classify_all(result, measured)
    st.done()
    result.timings_s = st.timings
    return result


def transform_spacing(model) -> float:
    if model is None:
        return 0.6
    return float(model.card.get("input", {}).get("spacing_mm", 0.6))


def _preprocess(image, spacing, orientation, model):
    from spineviewer.core.preprocess import preprocess_slice

    kw: dict[str, Any] = {}
    if model is not None:
        inp = model.card.get("input", {})
        norm = inp.get("normalisation", {})
        kw = {"spacing_mm": float(inp.get("spacing_mm", 0.6)),
              "shape": tuple(inp.get("shape", (448, 320))),
              "scale": float(norm.get("scale", 2500.0)), "clip": float(norm.get("clip", 1.0))}
    return preprocess_slice(image, spacing, orientation, **kw)


def _segment(x, transform, model, masks_override, source_shape):
    if masks_override is None:
        from spineviewer.core.segment import postprocess

        names = list(model.card.get("classes", ["background", "body", "sacrum", "disc"]))
        probs = model.predict(x)
        return postprocess(probs, transform_spacing(model), class_names=names), names
    return _override_to_class_map(np.asarray(masks_override), transform, source_shape)


def _override_to_class_map(labels, transform, source_shape):
    """Resample a source-slice truth label map into the model grid (sub-pixel honest)."""
    if labels.shape != tuple(source_shape):
        raise errors.SpineViewerError(
            f"override mask shape {labels.shape} does not match the slice {tuple(source_shape)}")
    names = ["background", "body", "sacrum"]
    out = np.zeros(transform.model_shape, dtype=np.uint8)
    for lab in np.unique(labels):
        if lab == 0:
            continue
        frac = transform.image_to_model(labels == lab)
        out[frac >= 0.5] = 2 if lab == 7 else 1
    return out, names


def _find_all_corners(labelling, transform, spacing_mm: float) -> list[VertebraResult]:
    from spineviewer.core.corners import column_directions, find_corners

    vertebrae = []
    hints = column_directions([b.centroid_rc for b in labelling.bodies])
    for body, hint in zip(labelling.bodies, hints):
        v = VertebraResult(level=body.level, flags=list(getattr(body, "flags", [])))
        if "partial_body" in v.flags:
            vertebrae.append(v)
            continue
        try:
            cr = find_corners(body.mask, (spacing_mm, spacing_mm), si_hint=hint)
        except (ValueError, RuntimeError) as exc:  # degenerate mask
            log.warning("corners failed for %s: %s", body.level, exc)
            v.flags.append("corners_failed")
            vertebrae.append(v)
            continue
        names = list(cr.corners_rc)
        pts = np.array([cr.corners_rc[n] for n in names], dtype=float)
        src = transform.to_source(pts)
        v.corners_rc = {n: (float(r), float(c)) for n, (r, c) in zip(names, src)}
        v.outline_rc = [(float(r), float(c)) for r, c in transform.to_source(
            np.asarray(cr.outline_rc, dtype=float))]
        v.corner_strategy = cr.strategy
        # Quality of the corner fit: IoU with the beak-free, depression-filled body (the raw
        # mask overlap is low by design for deep biconcave bodies with correct corners).
        v.corner_overlap = float(getattr(cr, "rim_overlap", cr.overlap))
        vertebrae.append(v)
    return vertebrae


def remeasure(result: StudyResult) -> None:
    """Recompute morphometry and the Genant call of every vertebra in place.

    Uses the corners and outlines as they stand (after any user correction); never runs the
    network. Flags from labelling persist; rule flags and reasons are rebuilt.
    """
    classify_all(result, measure_all(result))


def measure_all(result: StudyResult) -> list:
    """Morphometry of every vertebra with corners; returns (vertebra, Measurements) pairs."""
    from spineviewer.core.morphometry import measure

    measured = []
    for v in result.vertebrae:
        v.flags = [f for f in v.flags if f in PERSISTENT_FLAGS]
        if len(v.corners_rc) == 4 and len(v.outline_rc) >= 8:
            m = measure(v.corners_rc, np.asarray(v.outline_rc, dtype=float),
                        result.pixel_spacing_mm)
            for name in ("AH_mm", "PH_mm", "MH_mm", "SC_mm", "IC_mm", "VA_deg"):
                setattr(v, name, float(getattr(m, name)))
            measured.append((v, m))
        else:
            v.fracture, v.deformity, v.genant_grade = False, "none", 0
            v.reasons = ["not measured: no usable outline/corners for this body"]
            if "needs_review" not in v.flags:
                v.flags.append("needs_review")
    return measured


def classify_all(result: StudyResult, measured: list) -> None:
    """Genant rules over the measured vertebrae (crush needs the neighbours)."""
    from spineviewer.core.genant import classify, load_reference_table

    table = load_reference_table()
    vs = [v for v, _ in measured]
    calls = classify([v.level for v in vs], [m for _, m in measured], table,
                     corner_overlaps=[v.corner_overlap for v in vs],
                     label_flags=[list(v.flags) for v in vs]) if measured else []
    for v, call in zip(vs, calls):
        v.wedge_ratio = _opt(call.ratios.get("wedge"))
        v.biconcavity_ratio = _opt(call.ratios.get("biconcavity"))
        v.crush_ratio = _opt(call.ratios.get("crush"))
        v.fracture = bool(call.fracture)
        v.deformity = call.deformity
        v.genant_grade = int(call.genant_grade)
        v.reasons = list(call.reasons)
        v.flags.extend(f for f in call.flags if f not in v.flags)
    result.parameters = {
        "reference_table": getattr(table, "source", ""),
        "threshold_sd": getattr(table, "threshold_sd", None),
        "rules": "Genant quantitative: wedge AH/PH, biconcave MH/PH, crush PH/neighbours' PH; "
                 "fracture when a ratio is more than threshold_sd SD below the level's mean; "
                 "a crushed neighbour is skipped as crush reference (next uncrushed body, "
                 "chained one-sided reference)",
    }
    if hasattr(table, "to_dict"):
        result.parameters["reference"] = table.to_dict()


def _opt(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _model_info(model) -> dict[str, Any]:
    if model is None:
        return {"name": "ground-truth masks (segmentation bypassed)", "sha256": ""}
    card = model.card
    return {"name": card.get("name", ""), "version": card.get("version", ""),
            "sha256": model.sha256, "provider": model.provider}


def _patient_info(ds) -> dict[str, Any]:
    def g(key):
        v = getattr(ds, key, "")
        return str(v) if v is not None else ""

    return {"name": g("PatientName"), "id": g("PatientID"), "birth_date": g("PatientBirthDate"),
            "sex": g("PatientSex"), "study_date": g("StudyDate"),
            "study_description": g("StudyDescription"), "manufacturer": g("Manufacturer"),
            "field_strength_T": g("MagneticFieldStrength")}
