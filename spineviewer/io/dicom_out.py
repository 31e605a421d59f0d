"""DICOM outputs in the source study: SEG, TID 1500 SR, presentation state, Encapsulated PDF.

SEG, SR and the Grayscale Softcopy Presentation State (outlines, labels and AH/PH lines for
PACS viewers) are built with highdicom (validating constructors); the Encapsulated PDF, which
highdicom does not build, is written with pydicom following the Encapsulated PDF IOD
(PS3.3 A.45.1; `encapsulated_pdf`). Every object is a new series in the study of the
analysed source slice. Coded concepts and the private scheme ``99SPV``: `dicom_common`.
"""

from __future__ import annotations

import logging

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import StudyResult, VertebraResult
from spineviewer.io.dicom_common import (  # noqa: F401 - re-exported for callers
    MANUFACTURER,
    MODEL_NAME,
    PRIVATE_CODES,
    PRIVATE_SCHEME,
    SERIES_NUMBER,
    code,
    complete_source,
    dataset_bytes,
    declare_private_scheme,
    level_code,
    outline_mask,
    outline_scoord,
    read_source,
    software_version,
)
from spineviewer.io.dicom_pr import PR_LAYERS, build_pr  # noqa: F401
from spineviewer.io.encapsulated_pdf import (  # noqa: F401
    ENCAPSULATED_PDF_STORAGE,
    build_encapsulated_pdf,
)

logger = logging.getLogger(__name__)


def _algorithm(result: StudyResult) -> hd.AlgorithmIdentificationSequence:
    model = result.model or {}
    name = str(model.get("name") or "spineviewer-unet")[:64]
    version = str(model.get("version") or model.get("sha256", "")[:12] or "unknown")[:64]
    return hd.AlgorithmIdentificationSequence(
        name=name, version=version,
        family=codes.cid7162.ArtificialIntelligence, source=MANUFACTURER)


def build_seg(result: StudyResult, source: Dataset) -> hd.seg.Segmentation:
    """Binary SEG with one segment per level: the outline rasterised on the source slice.

    Parameters
    ----------
    result : StudyResult
    source : Dataset
        The analysed slice, with pixel data (see `read_source`).

    Returns
    -------
    highdicom.seg.Segmentation
        Segment ``i + 1`` is ``result.vertebrae[i]``; category Anatomical Structure, type the
        level's SNOMED CT vertebra code; vertebrae with an empty outline are left out.
    """
    shape = (int(source.Rows), int(source.Columns))
    masks, descriptions = [], []
    algorithm = _algorithm(result)
    for v in result.vertebrae:
        mask = outline_mask(v.outline_rc, shape)
        if not mask.any():
            logger.warning("vertebra %s has no outline; left out of the SEG", v.level)
            continue
        masks.append(mask)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=len(masks), segment_label=f"{v.level} vertebral body",
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=level_code(v.level),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(), tracking_id=f"vertebral body {v.level}"))
    if not masks:
        raise SpineViewerError("no vertebra has an outline: nothing to put in a DICOM SEG")
    pixels = np.stack(masks, axis=-1)[None].astype(np.uint8)
    if "FrameOfReferenceUID" not in source:
        raise SpineViewerError("the source slice has no Frame of Reference UID: a DICOM SEG "
                               "cannot be placed on it")
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER["seg"], sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME,
        software_versions=software_version(), device_serial_number="0",
        content_label="VERTEBRAE", content_description="Vertebral bodies (SpineViewer)",
        series_description="SpineViewer vertebral bodies", omit_empty_frames=False)
    declare_private_scheme(seg)
    return seg


#: Measurements of the SR: result field -> unit.
_SR_MEASUREMENTS = (
    ("AH_mm", codes.UCUM.Millimeter), ("PH_mm", codes.UCUM.Millimeter),
    ("MH_mm", codes.UCUM.Millimeter), ("SC_mm", codes.UCUM.Millimeter),
    ("IC_mm", codes.UCUM.Millimeter), ("VA_deg", codes.UCUM.Degree),
    ("wedge_ratio", codes.UCUM.Ratio), ("biconcavity_ratio", codes.UCUM.Ratio),
    ("crush_ratio", codes.UCUM.Ratio),
)


def _qualitative(v: VertebraResult) -> list[hd.sr.QualitativeEvaluation]:
    present = codes.SCT.Present if v.final_fracture else codes.SCT.Absent
    grade = f"grade{int(v.genant_grade)}" if f"grade{int(v.genant_grade)}" in PRIVATE_CODES else None
    items = [hd.sr.QualitativeEvaluation(code("fracture"), present)]
    if v.deformity in PRIVATE_CODES:
        items.append(hd.sr.QualitativeEvaluation(code("deformity"), code(v.deformity)))
    if grade:
        items.append(hd.sr.QualitativeEvaluation(code("genant_grade"), code(grade)))
    return items


def _vertebra_group(v: VertebraResult, source: Dataset,
                    algorithm: hd.sr.AlgorithmIdentification
                    ) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations | None:
    if len(v.outline_rc) < 3:
        return None
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=outline_scoord(v.outline_rc),
        source_image=hd.sr.SourceImageForRegion.from_source_image(source))
    site = hd.sr.FindingSite(anatomic_location=level_code(v.level))
    measurements = [
        hd.sr.Measurement(name=code(name), value=float(getattr(v, name)), unit=unit,
                          algorithm_id=algorithm)
        for name, unit in _SR_MEASUREMENTS if getattr(v, name) is not None]
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier=f"vertebral body {v.level}"),
        referenced_region=region, finding_type=code("vertebral_body"),
        finding_sites=[site], algorithm_id=algorithm, measurements=measurements,
        qualitative_evaluations=_qualitative(v))


def build_sr(result: StudyResult, source: Dataset) -> hd.sr.Comprehensive3DSR:
    """Comprehensive 3D SR (TID 1500 Measurement Report), one group per vertebra.

    Parameters
    ----------
    result : StudyResult
    source : Dataset
        The analysed slice (see `read_source`).

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        Each group holds the vertebra outline (POLYLINE on the source slice), its level as
        finding site, AH/PH/MH/SC/IC (mm), VA (deg) and the three ratios, and qualitative
        evaluations: fracture present/absent (the final call, after any user override),
        deformity type and Genant grade.
    """
    model = result.model or {}
    algorithm = hd.sr.AlgorithmIdentification(
        name=str(model.get("name") or "spineviewer-unet")[:64],
        version=str(model.get("version") or str(model.get("sha256", ""))[:12] or "unknown")[:64])
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(), name=MODEL_NAME, manufacturer_name=MANUFACTURER,
        model_name=MODEL_NAME)
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    groups = [g for g in (_vertebra_group(v, source, algorithm) for v in result.vertebrae)
              if g is not None]
    report = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=code("morphometry"),
        imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[source], content=report[0], series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER["sr"], sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description="SpineViewer vertebral morphometry")
    declare_private_scheme(sr)
    return sr


def build_dicom_outputs(result: StudyResult, pdf_bytes: bytes | None = None,
                        source: Dataset | None = None) -> dict[str, Dataset]:
    """All DICOM objects for ``result``: ``{"seg", "sr", "pr", "pdf"}`` (pdf when given).

    Parameters
    ----------
    result : StudyResult
    pdf_bytes : bytes, optional
        The rendered report; without it no Encapsulated PDF is built.
    source : Dataset, optional
        The analysed slice; read from ``result.source_slice_file`` when not given.
    """
    source = source if source is not None else read_source(result)
    out: dict[str, Dataset] = {"seg": build_seg(result, source), "sr": build_sr(result, source),
                               "pr": build_pr(result, source)}
    if pdf_bytes is not None:
        out["pdf"] = build_encapsulated_pdf(pdf_bytes, source)
    return out
