"""Grayscale Softcopy Presentation State: the analysis drawn on the source slice in PACS."""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from spineviewer.core import calls
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import StudyResult, VertebraResult
from spineviewer.io import palette
from spineviewer.io.dicom_common import (
    MANUFACTURER,
    MODEL_NAME,
    SERIES_NUMBER,
    outline_scoord,
    software_version,
)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


#: GSPS layers: name -> (order, RGB colour, description); the viewer's and the report's
#: colours (`io.palette`).
PR_LAYERS = {
    "FRACTURE": (1, _rgb(palette.colour("fracture")), "Vertebrae with a suspected fracture"),
    "REVIEW": (2, _rgb(palette.colour("review")),
               "Vertebrae that need review (Schmorl node, doubt)"),
    "NORMAL": (3, _rgb(palette.colour("normal")), "Vertebrae without deformity"),
    "HEIGHTS": (4, _rgb(palette.AH_COLOUR), "Anterior and posterior heights (AH, PH)"),
}


def _pr_label(v: VertebraResult) -> str:
    call = ("FX " + (calls.reader_short(v) or calls.algorithm_short(v))
            if v.final_fracture else "")
    heights = " ".join(f"{n} {getattr(v, n + '_mm'):.1f}" for n in ("AH", "PH")
                       if getattr(v, n + "_mm") is not None)
    return " ".join(x for x in (v.level, call, heights) if x)[:64]


def _pr_objects(v: VertebraResult) -> tuple[str, list, list, list]:
    """(layer, outline objects, text objects, height-line objects) of one vertebra."""
    from spineviewer.io.palette import vertebra_status

    layer = {"fracture": "FRACTURE", "review": "REVIEW", "schmorl": "REVIEW"}.get(
        vertebra_status(v), "NORMAL")
    unit = hd.pr.AnnotationUnitsValues.PIXEL
    outline = [hd.pr.GraphicObject(hd.pr.GraphicTypeValues.POLYLINE,
                                   outline_scoord(v.outline_rc), unit)]
    c = v.corners_rc
    lines = [hd.pr.GraphicObject(hd.pr.GraphicTypeValues.POLYLINE,
                                 np.asarray([c[a], c[b]], float)[:, ::-1] + 0.5, unit)
             for a, b in (("AS", "AI"), ("PS", "PI")) if a in c and b in c]
    anchor = np.asarray([c.get("AS", v.outline_rc[0]), c.get("AI", v.outline_rc[0])],
                        float).mean(axis=0)[::-1] + 0.5
    text = [hd.pr.TextObject(_pr_label(v), unit, anchor_point=(float(anchor[0]),
                                                               float(anchor[1])),
                             anchor_point_visible=False)]
    return layer, outline, text, lines


def build_pr(result: StudyResult, source: Dataset) -> hd.pr.GrayscaleSoftcopyPresentationState:
    """Grayscale Softcopy Presentation State drawing outlines, labels and AH/PH lines.

    PACS viewers that apply presentation states show the analysis on the source slice:
    one layer per status (fracture, review, normal) holding outlines and level labels
    (``"L1 FX wedge g2 AH 16.1 PH 25.8"``), and a layer with the AH and PH lines.
    """
    per_layer: dict[str, tuple[list, list]] = {k: ([], []) for k in PR_LAYERS}
    for v in result.vertebrae:
        if len(v.outline_rc) < 3:
            continue
        layer, outline, text, lines = _pr_objects(v)
        per_layer[layer][0].extend(outline)
        per_layer[layer][1].extend(text)
        per_layer["HEIGHTS"][0].extend(lines)
    layers = {k: hd.pr.GraphicLayer(k, order, description=desc,
                                    display_color=hd.color.CIELabColor.from_rgb(*rgb))
              for k, (order, rgb, desc) in PR_LAYERS.items()}
    annotations = [hd.pr.GraphicAnnotation(referenced_images=[source], graphic_layer=layers[k],
                                           graphic_objects=objs or None,
                                           text_objects=texts or None)
                   for k, (objs, texts) in per_layer.items() if objs or texts]
    if not annotations:
        raise SpineViewerError("no vertebra has an outline: nothing to draw in a presentation "
                               "state")
    pr = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source], series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER["pr"], sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME,
        software_versions=software_version(), device_serial_number="0",
        content_label="SPINEVIEWER", content_description="Vertebral morphometry overlay",
        graphic_annotations=annotations,
        graphic_layers=[layers[k] for k, (o, t) in per_layer.items() if o or t])
    # Laterality (type 2C) is not needed for an unpaired body part: say which part it is
    pr.BodyPartExamined = str(source.get("BodyPartExamined", "") or "LSPINE")
    return pr
