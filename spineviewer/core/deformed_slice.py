"""Each body's most deformed slice: a fracture off the centre line is still a fracture.

A body is measured on the slice nearest its mid-sagittal plane (``core.slices``). Its other
central sections (the slices next to it, at least ``MIN_AREA`` of its largest
section, not cut by the image edge, and passing the mask checks of ``core.qc``) are measured
as well; the one with the lowest height ratio (AH/PH or MH/PH) is the most deformed slice,
and the Genant rules are run on it (with the other levels as measured). When that call is a
fracture and the measurement slice's is not, the body is flagged ``off_centre_deformity``
and ``needs_review``, with the slice and its ratios in the reasons; the reported call stays
the measurement slice's.
"""

from __future__ import annotations

import numpy as np

from spineviewer.core.results import VertebraResult

MAX_STEPS = 1
MIN_AREA = 0.6
FLAG = "off_centre_deformity"


def deformation(m) -> float:
    """The lower of AH/PH and MH/PH (lower = more deformed)."""
    ph = float(m.PH_mm)
    if not ph > 0:
        return float("inf")
    return min(float(m.AH_mm) / ph, float(m.MH_mm) / ph)


def call_text(fracture: bool, deformity: str, grade: int) -> str:
    return f"{deformity} grade {grade}" if fracture else "no fracture"


def candidate_positions(track: dict[int, np.ndarray], position: int, in_view=None,
                        margins=None, solidities: dict[int, float] | None = None) -> list[int]:
    """Central sections of a tracked body other than its measurement slice (see module);
    ``solidities`` is the track's cache of ``qc.solidity`` (``slices.TrackedBody``)."""
    from spineviewer.core.qc import body_checks
    from spineviewer.core.slices import is_cut

    areas = {p: int(np.count_nonzero(m)) for p, m in track.items()}
    top = max(areas.values())
    out = []
    for p in sorted(track):
        if p == position or abs(p - position) > MAX_STEPS or areas[p] < MIN_AREA * top:
            continue
        if is_cut(track[p], in_view):
            continue
        if body_checks(track, p, margin=None if margins is None else margins[p],
                       solidities=solidities):
            continue
        out.append(p)
    return out


def most_deformed_all(result, bodies, prep, spacing_mm: float, measured: list,
                      margins=None, volume=None, hints: list | None = None) -> None:
    """Set ``most_deformed_slice`` and ``most_deformed_call`` of every measured vertebra.

    Parameters
    ----------
    result : StudyResult whose ``vertebrae`` line up with ``bodies`` (``slices.TrackedBody``).
    prep : ``pipeline.PreparedSeries``.
    measured : (vertebra, Measurements) pairs of the measurement slices (``measure_all``).
    margins : (N, H, W) softmax margins (None: that check is skipped).
    volume : the series (``dicom.volume.Volume``); given, each section's endplates are
        refined on its source slice as on the measurement slice (``core.endplates``).
    hints : each body's column direction (``corners.body_directions``) when the caller has
        them.
    """
    from spineviewer.core.corners import body_directions
    from spineviewer.core.endplates import refine_vertebra
    from spineviewer.core.genant import classify, load_reference_table
    from spineviewer.core.morphometry import measure
    from spineviewer.core.pipeline import corners_for_body
    from spineviewer.core.qc import NOT_ASSESSABLE

    if not measured:
        return
    table = load_reference_table()
    index = {id(v): i for i, (v, _) in enumerate(measured)}
    levels = [v.level for v, _ in measured]
    ms = [m for _, m in measured]
    in_view = prep.transform.in_view()
    if hints is None:
        hints = body_directions(bodies)
    for v, body, hint in zip(result.vertebrae, bodies, hints):
        if id(v) not in index:
            continue
        i = index[id(v)]
        best_p, best_m, best = body.position, ms[i], deformation(ms[i])
        for p in candidate_positions(body.track, body.position, in_view, margins,
                                     getattr(body, "solidities", None)):
            tmp = VertebraResult(level=v.level)
            if not corners_for_body(tmp, body.track[p], prep.image(p), prep.transform,
                                    spacing_mm, si_hint=hint):
                continue
            if volume is not None:
                refine_vertebra(tmp, volume.pixels[prep.slice_indices[p]],
                                result.pixel_spacing_mm)
            m = measure(tmp.corners_rc, np.asarray(tmp.outline_rc, dtype=float),
                        result.pixel_spacing_mm)
            if deformation(m) < best:
                best_p, best_m, best = p, m, deformation(m)
        v.most_deformed_slice = int(prep.slice_indices[best_p])
        if best_p == body.position:
            v.most_deformed_call = (NOT_ASSESSABLE if v.deformity == NOT_ASSESSABLE
                                    else call_text(v.fracture, v.deformity, v.genant_grade))
            continue
        call = classify(levels, ms[:i] + [best_m] + ms[i + 1:], table)[i]
        v.most_deformed_call = call_text(call.fracture, call.deformity, call.genant_grade)
        if call.fracture and not v.fracture and v.deformity != NOT_ASSESSABLE:
            v.flags += [f for f in (FLAG, "needs_review") if f not in v.flags]
            v.reasons.append(
                f"slice {v.most_deformed_slice} (off the measurement slice "
                f"{v.measurement_slice}) reads {v.most_deformed_call}: AH/PH "
                f"{best_m.AH_mm / best_m.PH_mm:.2f}, MH/PH {best_m.MH_mm / best_m.PH_mm:.2f}"
                " - review")
