"""The headless analysis pipeline: DICOM study in, measured and classified vertebrae out.

``analyze_study`` runs index -> series choice -> load -> preprocess -> segment -> label ->
corners -> morphometry -> Genant, reporting progress per stage and checking a cancel flag
between stages. ``remeasure`` re-runs only morphometry and Genant after user corrections.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    "sacrum_not_visible", "corrected", "endplate_from_mask", "segmentation_uncertain",
    "off_centre_deformity", "endplate_fold",
})
#: An endplate of the mask's outline that runs back along its chord by more than this (mm)
#: is flagged ``endplate_fold`` (needs review; the call stands): the mask took in tissue
#: beside the endplate. Development choice (cohort 777124, 60 studies per renderer, and all
#: 41 SPIDER patients; not a test set): no vertebra flagged on renderer A (442), 8 of 442 on
#: renderer B, 3 of them not under review before (a biconcave grade 3 read as grade 2 from a
#: mask that took in part of its marrow-like fill, a crush grade 3, a T10), 6 of 286 on
#: SPIDER (all under review already: failed, misnamed or Schmorl bodies). Healthy outlines
#: fold by 0 mm (median) to 0.4 mm (99th percentile).
ENDPLATE_FOLD_MM = 3.0

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


@dataclass
class PreparedSeries:
    """The preprocess stage's output: the model inputs of the analysed slices.

    ``x[k]`` is the pre-processed image (canonical model grid, intensities scaled) of source
    slice ``slice_indices[k]``; one ``transform`` maps every slice to source pixels (a series
    has one geometry).
    """

    x: np.ndarray
    slice_indices: list[int]
    transform: Any
    centre: int  # stack position of the series' centre slice
    #: Deferred preprocessing (`prepare_series(deferred=True)`): ``fill(sl)`` computes
    #: ``x[sl]``; `segment_series` has each slice filled just before the network runs it,
    #: and sets this to None once every slice is (x is complete only then).
    fill: Callable[[slice], None] | None = None

    def image(self, position: int) -> np.ndarray:
        """Pre-processed model-grid image at stack ``position``."""
        return self.x[position]


@dataclass
class SeriesSegmentation:
    """The segment stage's output: post-processed class maps (and softmax margins)."""

    class_maps: np.ndarray  # (N, H, W) uint8
    class_names: list[str]
    margins: np.ndarray | None = None  # (N, H, W) float16; None with masks_override
    #: ``slices.prepare_slice`` of each stack position, done while the network ran (the
    #: label stage does the rest)
    prepared: dict[int, Any] = field(default_factory=dict)


def analyze_study(path: str | Path, *, series_uid: str | None = None,
                  force_series: bool = False, model_path: str | Path | None = None,
                  provider: str = "auto",
                  threads: int | None = None, progress: ProgressFn | None = None,
                  cancel: CancelFn | None = None,
                  masks_override: np.ndarray | None = None,
                  files: list[str] | None = None,
                  slice_mode: str = "per-vertebra",
                  refine_endplates: bool = True, index=None, volume=None,
                  preliminary: Callable[[StudyResult], None] | None = None) -> StudyResult:
    """Analyse the sagittal T2 series of the study at ``path``.

    Parameters
    ----------
    path : folder (any depth) or single DICOM file.
    series_uid : analyse this series instead of the automatic choice.
    force_series : analyse ``series_uid`` even when it is not a sagittal T2; the result is
        then marked (``select.mark_unsuitable_series``) and every output carries a warning.
        Without it such a series raises ``errors.UnsuitableSeries`` with the reason.
    model_path, provider, threads : ONNX model file, "auto"|"cpu"|"cuda", CPU threads
        (`segment.SegmentationModel.runners`).
    progress : called as ``progress(stage, fraction)``.
    cancel : returns True to stop; checked between stages (raises ``errors.Cancelled``).
    masks_override : label map (0 none, 1..6 T12..L5, 7 sacrum) that replaces the network
        (validation with ground-truth masks): on the *source* centre slice (rows, cols), which
        implies the centre slice only, or on every slice of the series (n, rows, cols).
    files : index exactly these files instead of walking ``path`` (batch: one study's files).
    slice_mode : ``per-vertebra`` (every slice segmented, each body measured on the slice
        nearest its own mid-sagittal plane) or ``centre`` (the paper: the centre slice only).
    refine_endplates : move each body's endplates and corners to the outer cortical margin
        its measurement slice shows (``core.endplates``; on by default: see
        docs/VALIDATION-development.md); False measures the mask's border as it is.
    index : the ``StudyIndex`` of ``path`` when the caller has scanned it already (the
        viewer's browser): the folder is not walked again.
    volume : the chosen series when the caller has loaded it already (the viewer's canvas):
        used only when its series is the one chosen here, else the series is loaded.
    preliminary : called once as ``preliminary(result)`` with an early, complete result of
        the centre slice alone (centre-mode labelling, corners, morphometry and Genant) marked
        preliminary (`mark_preliminary`), before the other slices are segmented; only in the
        per-vertebra mode with the network (otherwise never called). The centre slice's
        segmentation is reused, not run again: the returned result is the same as without
        the callback. The viewer shows the early result at once (issue 15: results within 1 s).

    Returns
    -------
    StudyResult with coordinates in (row, col) pixels of the source slices (one geometry);
    each vertebra records its ``measurement_slice``.
    """
    from spineviewer.core.dicom.index import scan_folder
    from spineviewer.core.dicom.select import (
        choose_series,
        mark_unsuitable_series,
        series_unsuitability,
    )
    from spineviewer.core.dicom.volume import load_series
    from spineviewer.core.errors import UnsuitableSeries
    from spineviewer.core.slices import SLICE_MODES

    if slice_mode not in SLICE_MODES:
        raise errors.SpineViewerError(
            f"slice mode must be one of {', '.join(SLICE_MODES)}, not {slice_mode!r}")
    if masks_override is not None and np.ndim(masks_override) == 2:
        slice_mode = "centre"
    st = _Stages(progress, cancel)
    st.start("index")
    if index is None:
        index = scan_folder(path, cancel=cancel, files=files)
    st.start("select")
    choice = choose_series(index, series_uid=series_uid)
    unsuitable = series_unsuitability(choice.series) if series_uid is not None else ""
    if unsuitable and not force_series:
        raise UnsuitableSeries(f"{choice.series.label} is not a sagittal T2 series "
                               f"({unsuitable}); the model is made for sagittal T2 images. "
                               "Analyse it anyway only on purpose (--force-series).")
    st.start("load")
    if volume is None or volume.series.series_uid != choice.series.series_uid:
        volume = load_series(choice.series)
    from spineviewer.core.dicom.checks import check_input
    checked = check_input(volume)  # refuses no spacing / missing centre; flags the doubtful
    centre = int(checked.centre)
    model = None if masks_override is not None else get_model(model_path, provider, threads)
    result = _new_result(path, index, choice, volume, model, centre, checked.spacing_mm)
    result.flags.extend(checked.flags)
    result.warnings.extend(checked.warnings)
    result.parameters["slice_mode"] = slice_mode
    if unsuitable:
        mark_unsuitable_series(result, unsuitable)

    st.start("preprocess")
    scale = _intensity_scale(model, checked, result, volume)
    early = preliminary is not None and model is not None and slice_mode == "per-vertebra"
    prep = prepare_series(volume, model, centre=centre, spacing_mm=result.pixel_spacing_mm,
                          centre_only=slice_mode == "centre" or early, scale=scale,
                          deferred=model is not None and not early)
    st.start("segment")
    if early:
        prep, seg = _segment_with_preliminary(prep, volume, model, result, refine_endplates,
                                              st, preliminary, scale)
    else:
        seg = segment_series(prep, model, masks_override, cancel=cancel)
    _label_to_genant(result, prep, seg, model, volume, slice_mode, refine_endplates, st.start)
    st.done()
    result.timings_s = st.timings
    return result


def _label_to_genant(result: StudyResult, prep: PreparedSeries, seg: SeriesSegmentation,
                     model, volume, slice_mode: str, refine: bool,
                     stage: Callable[[str], None]) -> None:
    """The stages after segmentation, into ``result``: label, corners, morphometry, Genant
    (and each body's most deformed slice); ``stage(name)`` is called before each."""
    from spineviewer.core.corners import body_directions
    from spineviewer.core.deformed_slice import most_deformed_all

    stage("label")
    labelling = label_series_stage(prep, seg, transform_spacing(model), slice_mode,
                                   None if volume is None else int(volume.n_slices))
    result.flags.extend(labelling.flags)
    result.warnings.extend(labelling.warnings)
    _set_analysed_slice(result, volume, prep.slice_indices[labelling.reference])
    stage("corners")
    hints = body_directions(labelling.bodies)  # each body's SI axis, for both corner searches
    result.vertebrae = find_all_corners(labelling, prep, transform_spacing(model), volume,
                                        refine=refine,
                                        source_spacing_mm=result.pixel_spacing_mm, hints=hints)
    stage("morphometry")
    measured = measure_all(result)
    stage("genant")
    classify_all(result, measured)
    most_deformed_all(result, labelling.bodies, prep, transform_spacing(model), measured,
                      seg.margins, volume=volume if refine else None, hints=hints)


#: Study-level flag and warning of an early result (``analyze_study(preliminary=...)``).
PRELIMINARY_FLAG = "preliminary"
PRELIMINARY_WARNING = ("preliminary: centre slice only, full analysis running - not for "
                       "reporting; the per-vertebra result replaces it")


def mark_preliminary(result: StudyResult) -> None:
    """Mark ``result`` as the early centre-slice result (``StudyResult.preliminary``)."""
    result.parameters["preliminary"] = True
    if PRELIMINARY_FLAG not in result.flags:
        result.flags.append(PRELIMINARY_FLAG)
    if PRELIMINARY_WARNING not in result.warnings:
        result.warnings.insert(0, PRELIMINARY_WARNING)


def _segment_with_preliminary(centre_prep: PreparedSeries, volume, model, result: StudyResult,
                              refine: bool, st: _Stages,
                              preliminary: Callable[[StudyResult], None],
                              scale: float | None = None
                              ) -> tuple[PreparedSeries, SeriesSegmentation]:
    """Segment stage of the per-vertebra mode in two steps: the centre slice
    (``centre_prep``), whose centre-mode result goes to ``preliminary``, then the other slices.

    Returns every slice's preprocessing (with the intensity divisor ``scale``, as the centre
    slice's) and segmentation, in which the centre slice's class map and margins are reused
    (one ONNX run per slice, as without the early result); the caller measures the series'
    result from them.
    """
    import copy

    early_st = _Stages(None, st.cancel)  # its own stage times; the progress stays at segment
    early_st.start("segment")
    centre_seg = segment_series(centre_prep, model, cancel=st.cancel)
    early = copy.deepcopy(result)
    early.parameters["slice_mode"] = "centre"
    _label_to_genant(early, centre_prep, centre_seg, model, volume, "centre", refine,
                     early_st.start)
    early_st.finish()
    mark_preliminary(early)
    early.timings_s = {**st.timings, **early_st.timings}
    preliminary(early)
    if st.cancel is not None and st.cancel():
        raise errors.Cancelled("analysis cancelled by the user")
    # The other slices are pre-processed only now (the early result comes ~0.07 s sooner);
    # segmenting them in a second thread while the early result is measured doubled the time
    # to it on 2 cores and gained the full result 0.06 s.
    prep = prepare_series(volume, model, centre=centre_prep.slice_indices[0],
                          spacing_mm=result.pixel_spacing_mm, scale=scale)
    c = prep.centre
    rest = [k for k in range(len(prep.slice_indices)) if k != c]
    if not rest:  # a one-slice series
        return prep, centre_seg
    rest_prep = PreparedSeries(x=prep.x[rest], slice_indices=[prep.slice_indices[k]
                                                              for k in rest],
                               transform=prep.transform, centre=0)
    rest_seg = segment_series(rest_prep, model, cancel=st.cancel)
    cmaps = np.insert(rest_seg.class_maps, c, centre_seg.class_maps[0], axis=0)
    margins = np.insert(rest_seg.margins, c, centre_seg.margins[0], axis=0)
    prepared = {rest[i]: v for i, v in rest_seg.prepared.items()}
    if 0 in centre_seg.prepared:
        prepared[c] = centre_seg.prepared[0]
    return prep, SeriesSegmentation(class_maps=cmaps, class_names=rest_seg.class_names,
                                    margins=margins, prepared=prepared)


def _new_result(path, index, choice, volume, model, centre: int, spacing_mm) -> StudyResult:
    idx = int(centre)
    image = volume.pixels[idx]
    result = StudyResult(
        study_uid=str(choice.series.study_uid), series_uid=str(choice.series.series_uid),
        sop_instance_uid=str(volume.sop_instance_uids[idx]), slice_index=idx,
        pixel_spacing_mm=tuple(float(x) for x in spacing_mm),
        model=_model_info(model),
        series_choice={**choice.to_dict(), "description": choice.series.series_description},
        patient=_patient_info(volume.datasets[idx]),
        source_path=str(path),
        source_slice_file=str(volume.files[idx]),
        software={"name": "SpineViewer", "version": __version__},
        image_shape=(int(image.shape[0]), int(image.shape[1])),
    )
    skipped = list(index.skipped) + list(getattr(volume, "skipped", []))
    result.warnings.extend(f"skipped {f}: {why}" for f, why in skipped[:20])
    if len(skipped) > 20:
        result.warnings.append(f"... and {len(skipped) - 20} more unreadable files")
    return result


def _set_analysed_slice(result: StudyResult, volume, idx: int) -> None:
    """The study's analysed slice: the one whose labelling named the levels."""
    result.slice_index = int(idx)
    result.sop_instance_uid = str(volume.sop_instance_uids[idx])
    result.source_slice_file = str(volume.files[idx])


def transform_spacing(model) -> float:
    if model is None:
        return 0.6
    return float(model.card.get("input", {}).get("spacing_mm", 0.6))


def _preprocess_kwargs(model) -> dict[str, Any]:
    """Grid spacing, shape (None: whole field of view), stride and intensity scaling."""
    if model is None:  # truth masks: the whole field of view on the paper's grid
        return {"shape": None}
    inp = model.card.get("input", {})
    norm = inp.get("normalisation", {})
    stride = getattr(model, "stride", None)
    return {"spacing_mm": float(inp.get("spacing_mm", 0.6)),
            "shape": None if stride else tuple(inp.get("shape", (448, 320))),
            "stride": int(stride or 16),
            "scale": float(norm.get("scale", 2500.0)), "clip": float(norm.get("clip", 1.0))}


def _intensity_scale(model, checked, result: StudyResult, volume) -> float:
    """The series' intensity divisor (``preprocess.intensity_scale``), recorded in the result."""
    from spineviewer.core.preprocess import EIGHT_BIT, INTENSITY_SCALE, intensity_scale

    default = _preprocess_kwargs(model).get("scale", INTENSITY_SCALE)
    p99 = None
    if checked.bits_stored is not None and checked.bits_stored <= EIGHT_BIT:
        # every other pixel of every slice: the same percentile to about one grey level
        p99 = float(np.percentile(np.asarray(volume.pixels)[:, ::2, ::2], 99))
    scale, why = intensity_scale(default, checked.bits_stored,
                                 checked.full_scale, p99)
    result.parameters["intensity_scale"] = scale
    result.parameters["intensity_scale_reason"] = why
    return scale


def prepare_series(volume, model, *, centre: int | None = None, spacing_mm=None,
                   centre_only: bool = False, scale: float | None = None,
                   deferred: bool = False) -> PreparedSeries:
    """Preprocess stage: the whole field of view of every slice (or the centre one).

    ``centre`` and ``spacing_mm`` default to the volume's (``core.dicom.checks`` may settle
    them otherwise); ``scale`` replaces the model card's intensity divisor. ``deferred``:
    only the geometry now; the slices are preprocessed in `segment_series`, each by the
    network's worker just before it runs the slice, so that preprocessing overlaps the
    network (the same numbers)."""
    from spineviewer.core.preprocess import preprocess_into, preprocess_volume, volume_frame

    centre = int(volume.centre_index if centre is None else centre)
    indices = [centre] if centre_only else list(range(int(volume.n_slices)))
    spacing = tuple(float(x) for x in (spacing_mm or volume.pixel_spacing_mm))
    kw = _preprocess_kwargs(model)
    if scale is not None:
        kw["scale"] = float(scale)
    pixels = np.asarray(volume.pixels)[indices]
    if not deferred:
        x, transform = preprocess_volume(pixels, spacing, volume.image_orientation, **kw)
        return PreparedSeries(x=x, slice_indices=indices, transform=transform,
                              centre=indices.index(centre))
    x, transform = volume_frame(pixels, spacing, volume.image_orientation, **kw)
    transform.in_view()  # its cached grid is made here, not by two workers at once
    return PreparedSeries(x=x, slice_indices=indices, transform=transform,
                          centre=indices.index(centre),
                          fill=lambda sl: preprocess_into(x, pixels, transform, sl))


def segment_series(prep: PreparedSeries, model, masks_override: np.ndarray | None = None,
                   cancel: CancelFn | None = None) -> SeriesSegmentation:
    """Segment stage: every prepared slice in batched ONNX calls (or the truth masks)."""
    if masks_override is not None:
        labels = np.asarray(masks_override)
        if labels.ndim == 3:
            if len(labels) < max(prep.slice_indices) + 1:
                raise errors.SpineViewerError(
                    f"override masks hold {len(labels)} slices; the series has more")
            labels = labels[prep.slice_indices]
        maps = [_override_to_class_map(lab, prep.transform, prep.transform.source_shape)
                for lab in labels.reshape(-1, *labels.shape[-2:])]
        return SeriesSegmentation(class_maps=np.stack([m for m, _ in maps]).astype(np.uint8),
                                  class_names=maps[0][1])
    from spineviewer.core.segment import segment_volume

    _import_later_stages()
    names = list(model.card.get("classes", ["background", "body", "sacrum", "disc"]))
    spacing = transform_spacing(model)
    prepared: dict[int, Any] = {}

    def label_inputs(k: int, class_map: np.ndarray) -> None:
        # the label stage's per-slice work, while the network runs the next slices
        from spineviewer.core.slices import prepare_slice

        prepared[k] = prepare_slice(class_map, names, spacing)

    cmaps, margins = segment_volume(model, prep.x, class_names=names, spacing_mm=spacing,
                                    cancel=cancel, prepare=prep.fill, on_slice=label_inputs)
    prep.fill = None
    return SeriesSegmentation(class_maps=cmaps, class_names=names, margins=margins,
                              prepared=prepared)


#: Modules the stages after segmentation import; `_import_later_stages` loads them while
#: the network runs (it releases the GIL): their import time then costs no wall time.
LATER_STAGE_MODULES = ("spineviewer.core.qc", "spineviewer.core.slices",
                       "spineviewer.core.corners", "spineviewer.core.endplates",
                       "spineviewer.core.deformed_slice", "spineviewer.core.genant",
                       "spineviewer.core.morphometry")


def _import_later_stages() -> None:
    """Import `LATER_STAGE_MODULES` in a background thread (Python's import locks make a
    stage that needs one first wait for it; a failure there surfaces at that stage). Their
    module-level imports form no cycle, so the two threads cannot deadlock on those locks:
    keep it so (an import inside a function is fine)."""
    import importlib
    import threading

    def load() -> None:
        for name in LATER_STAGE_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the stage that imports it reports the error
                return

    threading.Thread(target=load, name="spineviewer-imports", daemon=True).start()


def label_series_stage(prep: PreparedSeries, seg: SeriesSegmentation, spacing_mm: float,
                       slice_mode: str, series_slices: int | None = None):
    """Label stage: name the bodies, follow them over the slices, pick their slices
    (``series_slices``: the series' slice count, when more than were segmented)."""
    from spineviewer.core.qc import check_all
    from spineviewer.core.slices import label_series

    labelling = label_series(seg.class_maps, seg.class_names, spacing_mm=spacing_mm,
                             centre=prep.centre, in_view=prep.transform.in_view(),
                             mode=slice_mode if len(seg.class_maps) > 1 else "centre",
                             series_slices=series_slices, prepared=seg.prepared)
    check_all(labelling.bodies, seg.margins)
    return labelling


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


def find_all_corners(labelling, prep: PreparedSeries, spacing_mm: float,
                     volume=None, *, refine: bool = True,
                     source_spacing_mm: tuple[float, float] | None = None,
                     hints: list | None = None) -> list[VertebraResult]:
    """Corners stage: one `VertebraResult` per named body, on its measurement slice.

    Each body's mask (``body.mask``, model grid) and the pre-processed image of its slice
    (``prep.image(body.position)``) go to `corners_for_body`; coordinates come back in
    source pixels through ``prep.transform``. The column's direction at each body (from the
    neighbours' mask centroids, ``corners.body_directions``; ``hints`` when the caller has
    them) tells a steeply tilted body's SI axis. With ``refine`` and a ``volume``, each
    body's endplates and corners are then moved to the outer cortical margin shown by its
    source slice (``endplates``).
    """
    from spineviewer.core.corners import body_directions
    from spineviewer.core.endplates import refine_vertebra

    if hints is None:
        hints = body_directions(labelling.bodies)
    spacing_src = source_spacing_mm if source_spacing_mm is not None else (
        tuple(float(x) for x in volume.pixel_spacing_mm) if volume is not None else None)
    vertebrae = []
    for body, hint in zip(labelling.bodies, hints):
        v = VertebraResult(level=body.level, flags=list(getattr(body, "flags", [])))
        src = prep.slice_indices[body.position]
        v.measurement_slice = int(src)
        v.qc_reasons = list(getattr(body, "qc_reasons", []))
        if volume is not None:
            v.measurement_sop_uid = str(volume.sop_instance_uids[src])
        if "partial_body" not in v.flags and corners_for_body(
                v, body.mask, prep.image(body.position), prep.transform, spacing_mm,
                si_hint=hint) and refine and volume is not None:
            refine_vertebra(v, volume.pixels[src], spacing_src)
        vertebrae.append(v)
    return vertebrae


def corners_for_body(v: VertebraResult, mask: np.ndarray, image: np.ndarray | None,
                     transform, spacing_mm: float, *, si_hint=None) -> bool:
    """Fill ``v``'s corners, outline and corner strategy from one body ``mask`` (model grid).

    ``image`` is the pre-processed model-grid slice the mask was segmented from (for
    image-based refinements); ``si_hint`` the column's superior->inferior direction there
    (``corners.find_corners``). Returns False (and flags ``corners_failed``) on a degenerate
    mask.
    """
    from spineviewer.core.corners import find_corners

    try:
        cr = find_corners(mask, (spacing_mm, spacing_mm), si_hint=si_hint)
    except (ValueError, RuntimeError) as exc:  # degenerate mask
        log.warning("corners failed for %s: %s", v.level, exc)
        v.flags.append("corners_failed")
        return False
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
    _check_fold(v, cr, spacing_mm)
    return True


def _check_fold(v: VertebraResult, cr, spacing_mm: float) -> None:
    """Flag ``endplate_fold`` where the mask's outline folds back along an endplate chord."""
    from spineviewer.core.morphometry import endplate_folds_mm

    try:
        folds = endplate_folds_mm(cr.corners_rc, np.asarray(cr.outline_rc, dtype=float),
                                  (spacing_mm, spacing_mm))
    except ValueError:
        return
    v.endplate_fold_mm = round(max(folds.values()), 2)
    if v.endplate_fold_mm > ENDPLATE_FOLD_MM and "endplate_fold" not in v.flags:
        v.flags.append("endplate_fold")


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


#: Parameters set by ``analyze_study`` that a re-classification keeps (how the slices were
#: chosen, whether the result is preliminary, how the intensities were scaled).
PROVENANCE_PARAMETERS = ("slice_mode", "preliminary", "intensity_scale",
                         "intensity_scale_reason")


def classify_all(result: StudyResult, measured: list) -> None:
    """Genant rules over the measured vertebrae (crush needs the neighbours)."""
    from spineviewer.core.endplates import unconfirmed_edge_reason
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
        if "endplate_fold" in v.flags:
            if "needs_review" not in v.flags:
                v.flags.append("needs_review")
            v.reasons.append(
                f"needs review: the mask's outline folds back {v.endplate_fold_mm or 0:.1f} mm "
                f"along an endplate (> {ENDPLATE_FOLD_MM:g} mm): it took in tissue beside the "
                "endplate, so the heights may not be the body's")
        if "segmentation_uncertain" in v.flags:
            if v.ai is None:  # not edited: no confident call from the doubtful mask
                _not_assessable(v)
            else:
                v.reasons.append("the segmentation was uncertain; this call uses the "
                                 "reader-corrected corners")
        if v.fracture and "endplate_from_mask" in v.flags and v.ai is None:
            # the call rests on an endplate the image did not confirm (the paper's false
            # positives at endplate degeneration): a reader looks before it is believed
            if "needs_review" not in v.flags:
                v.flags.append("needs_review")
            v.reasons.append(unconfirmed_edge_reason(v.endplate_edge))
    kept = {k: result.parameters[k] for k in PROVENANCE_PARAMETERS if k in result.parameters}
    result.parameters = {
        **kept,  # provenance set by analyze_study (how the slices were chosen)
        "reference_table": getattr(table, "source", ""),
        "threshold_sd": getattr(table, "threshold_sd", None),
        "rules": "Genant quantitative: wedge AH/PH, biconcave MH/PH, crush PH/neighbours' PH; "
                 "fracture when a ratio is more than threshold_sd SD below the level's mean; "
                 "a crushed neighbour is skipped as crush reference (next uncrushed body, "
                 "chained one-sided reference)",
    }
    if hasattr(table, "to_dict"):
        result.parameters["reference"] = table.to_dict()


def _not_assessable(v: VertebraResult) -> None:
    """An uncertain mask gives no confident call: keep the measurements, say why."""
    from spineviewer.core.qc import NOT_ASSESSABLE

    would = (f"{v.deformity} grade {v.genant_grade}" if v.fracture else "no fracture")
    v.reasons = ([f"{NOT_ASSESSABLE}: segmentation uncertain - {r}" for r in v.qc_reasons]
                 or [f"{NOT_ASSESSABLE}: segmentation uncertain"])
    v.reasons.append(f"the rules on this mask would read: {would} (not reported)")
    v.fracture, v.deformity, v.genant_grade = False, NOT_ASSESSABLE, 0
    if "needs_review" not in v.flags:
        v.flags.append("needs_review")


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
