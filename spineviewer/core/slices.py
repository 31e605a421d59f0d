"""Every slice: name the bodies once, follow each across the series, pick its own slice.

The series' slices are segmented (``segment.segment_volume``) and labelled one by one
(``labeling.label_vertebrae``). The *reference slice* is the one that shows the column best
(largest total area of whole bodies, the sacrum counting as one body): its labelling names
the levels. Each named body is then followed to the neighbouring slices by mask overlap, and
measured on the slice nearest its own mid-sagittal plane: the area-weighted centre of its
cross-sections (a body's sagittal section is largest, and flattest, through its middle), so an
off-centre patient or a scoliotic column still has each body measured through its middle.

In ``centre`` mode (the paper's protocol) the centre slice is the only slice.
All masks are in the canonical model grid; slice positions index the segmented stack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from spineviewer.core.column import drop_off_column
from spineviewer.core.labeling import Labelling, label_vertebrae, split_instances
from spineviewer.core.maskops import bounding_box

log = logging.getLogger(__name__)

SLICE_MODES = ("per-vertebra", "centre")
#: A body on the next slice is the same body when its mask overlaps this much (IoU).
TRACK_MIN_IOU = 0.3
#: Cross-sections smaller than this fraction of the body's largest do not decide its middle
#: (slivers through the pedicles).
MIDPLANE_MIN_AREA = 0.5
#: Slices (most body and sacrum pixels first) labelled in full to choose the reference.
REFERENCE_CANDIDATES = 3
#: A series of fewer slices than this (the input flag ``few_slices``: a mid-sagittal export,
#: one or two images) gives the names no neighbouring slices to be checked against, and the
#: single-slice cues miss what those checks catch. Development figures (all 41 SPIDER patients,
#: each patient's middle slice alone as an 8-bit series, ``benchmarks/dev_spider_app.py
#: --split all --single-slice``): 177 of 199 L1-L5 named right and 5 misnamed without any flag
#: (patients 200 and 209; the whole series flags both). So every name of such a series is
#: marked ``label_uncertain`` (``needs_review``) with the study flag ``names_unchecked``.
MIN_SLICES_TO_CHECK_NAMES = 3
NAMES_UNCHECKED = "names_unchecked"
NAMES_UNCHECKED_WARNING = ("{n} slice(s) only: the level names could not be checked against "
                           "neighbouring slices (S1 read as L5 goes unseen on one image) - "
                           "confirm the level names")


@dataclass
class TrackedBody:
    """One named body, followed over the slices where it is seen.

    ``position`` indexes the segmented stack (its measurement slice); ``mask`` is the body on
    that slice; ``track`` maps every stack position where it was followed to its mask there.
    """

    level: str
    position: int
    mask: np.ndarray
    flags: list[str] = field(default_factory=list)
    track: dict[int, np.ndarray] = field(default_factory=dict)
    qc_reasons: list[str] = field(default_factory=list)  # failed checks (core.qc)
    solidities: dict[int, float] = field(default_factory=dict)  # core.qc's, per position

    def areas(self) -> dict[int, int]:
        return {p: int(np.count_nonzero(m)) for p, m in sorted(self.track.items())}


@dataclass
class SeriesLabelling:
    """Named bodies on their measurement slices and the study-level findings."""

    bodies: list[TrackedBody]
    reference: int  # stack position whose labelling named the levels
    labellings: list[Labelling | None]  # per stack position (None: not labelled)
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def sacrum_mask(self) -> np.ndarray | None:
        lab = self.labellings[self.reference]
        return None if lab is None else lab.sacrum_mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    return inter / max(1, np.count_nonzero(a | b))


class BoxedIoU:
    """`_iou` of whole-slice masks with the same values, each mask's bounding box and pixel
    count computed once: the overlap is counted inside the two boxes' intersection (a body
    is a few percent of a slice, and the tracking compares each with many). Holds every
    mask it has seen (by identity): one per labelling, and the masks must not change."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[np.ndarray, tuple[int, int, int, int] | None, int]] = {}

    def _info(self, m: np.ndarray) -> tuple[tuple[int, int, int, int] | None, int]:
        hit = self._seen.get(id(m))
        if hit is None or hit[0] is not m:
            box = bounding_box(m)
            count = 0 if box is None else int(np.count_nonzero(m[box[0]:box[1], box[2]:box[3]]))
            hit = self._seen[id(m)] = (m, box, count)
        return hit[1], hit[2]

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        (ba, ca), (bb, cb) = self._info(a), self._info(b)
        inter = 0
        if ba is not None and bb is not None:
            r0, r1 = max(ba[0], bb[0]), min(ba[1], bb[1])
            c0, c1 = max(ba[2], bb[2]), min(ba[3], bb[3])
            if r0 < r1 and c0 < c1:
                inter = int(np.count_nonzero(a[r0:r1, c0:c1] & b[r0:r1, c0:c1]))
        return inter / max(1, ca + cb - inter)


def column_score(lab: Labelling) -> float:
    """Total area of the whole (not border-cut) bodies, the sacrum counting as a median body."""
    areas = [float(np.count_nonzero(b.mask)) for b in lab.bodies if "partial_body" not in b.flags]
    if not areas:
        return 0.0
    return float(sum(areas) + (np.median(areas) if lab.sacrum_mask is not None else 0.0))


def reference_position(labellings: Sequence[Labelling | None], centre: int) -> int:
    """Stack position with the best `column_score` (ties: nearest the centre)."""
    best, best_key = centre, (-1.0, 0)
    for p, lab in enumerate(labellings):
        if lab is None:
            continue
        key = (column_score(lab), -abs(p - centre))
        if key > best_key:
            best, best_key = p, key
    return best


def follow(mask: np.ndarray, start: int, instances: Callable[[int], list[np.ndarray] | None],
           n: int, iou: Callable[[np.ndarray, np.ndarray], float] = _iou
           ) -> dict[int, np.ndarray]:
    """Masks of the body ``mask`` (at stack position ``start``) on the slices either side,
    each the best-overlapping body instance of the next slice (IoU >= ``TRACK_MIN_IOU``).

    ``instances(p)`` gives the body masks at stack position p (None: not available);
    ``iou`` computes the overlap (`_iou`, or a `BoxedIoU` shared by the calls)."""
    track = {start: mask}
    for step in (-1, 1):
        prev, p = mask, start + step
        while 0 <= p < n:
            cands = instances(p)
            if not cands:
                break
            ious = [iou(prev, c) for c in cands]
            k = int(np.argmax(ious))
            if ious[k] < TRACK_MIN_IOU:
                break
            track[p] = prev = cands[k]
            p += step
    return track


def midplane_position(track: dict[int, np.ndarray]) -> int:
    """Stack position nearest the body's own mid-sagittal plane.

    A body's sagittal section is about as long as its axial section is deep there, so its
    area falls off as sqrt(1 - (x - x0)^2 / R^2) with the distance from the mid-plane x0: the
    squared areas are a downward parabola in x whose vertex is x0. The fit uses the sections
    of at least ``MIDPLANE_MIN_AREA`` of the largest (not the pedicle slivers) and is not
    biased when the series ends on one side of the body. With fewer than three such sections,
    or no downward parabola, the largest section decides.
    """
    pos = np.array(sorted(track))
    areas = np.array([float(np.count_nonzero(track[p])) for p in pos])
    keep = areas >= MIDPLANE_MIN_AREA * areas.max()
    centre = float(pos[int(np.argmax(areas))])
    if keep.sum() >= 3:
        a2 = (areas[keep] / areas.max()) ** 2
        c2, c1, _ = np.polyfit(pos[keep].astype(float), a2, 2)
        if c2 < 0:
            centre = float(np.clip(-c1 / (2 * c2), pos[keep].min(), pos[keep].max()))
    # nearest the centre; among equally near, the larger section
    order = sorted(range(len(pos)), key=lambda i: (abs(pos[i] - centre), -areas[i]))
    return int(pos[order[0]])


@dataclass
class PreparedSlice:
    """One slice's labelling inputs (`prepare_slice`): its class map with the off-column
    clusters removed, their warnings, and its body instances (`labeling.split_instances`)."""

    class_map: np.ndarray
    dropped: list[str]
    instances: tuple[list[np.ndarray], list[str]]


def prepare_slice(class_map: np.ndarray, class_names: Sequence[str], spacing_mm: float
                  ) -> PreparedSlice:
    """The per-slice part of `label_series`, for one slice: run as each slice's class map
    comes from the network (``segment.segment_volume(on_slice=...)``), it overlaps the
    network; `label_series` then takes it (``prepared``) and gives the same result."""
    cmap, dropped = drop_off_column(class_map, class_names, spacing_mm)
    return PreparedSlice(cmap, dropped, split_instances(cmap, class_names, spacing_mm))


def label_series(class_maps: np.ndarray, class_names: Sequence[str], *, spacing_mm: float,
                 centre: int, in_view: np.ndarray | None = None,
                 mode: str = "per-vertebra", series_slices: int | None = None,
                 prepared: dict[int, PreparedSlice] | None = None) -> SeriesLabelling:
    """Name the bodies and choose each one's measurement slice.

    Parameters
    ----------
    class_maps : (N, H, W) int
        Post-processed class maps of the segmented stack.
    class_names : class names by index.
    spacing_mm : isotropic model-grid spacing.
    centre : stack position of the series' centre slice.
    in_view : (H, W) bool grid pixels inside the source image.
    mode : ``per-vertebra`` or ``centre`` (only the centre slice is labelled and used).
    series_slices : slices in the series (default: those of ``class_maps``); below
        ``MIN_SLICES_TO_CHECK_NAMES`` every name is marked uncertain (``names_unchecked``).
    prepared : `prepare_slice` of stack positions done already (the others are done here).
    """
    if mode not in SLICE_MODES:
        raise ValueError(f"slice mode must be one of {SLICE_MODES}, not {mode!r}")
    n = len(class_maps)
    labellings: list[Labelling | None] = [None] * n
    cmaps: dict[int, np.ndarray] = {}
    dropped: dict[int, list[str]] = {}
    kb = list(class_names).index("body") if "body" in class_names else None
    ks = list(class_names).index("sacrum") if "sacrum" in class_names else None
    ready = dict(prepared or {})
    for p in (range(n) if mode == "per-vertebra" else [centre]):
        if p not in ready:
            cmaps[p], dropped[p] = drop_off_column(class_maps[p], class_names, spacing_mm)
        else:
            cmaps[p], dropped[p] = ready[p].class_map, ready[p].dropped

    def split(p: int) -> tuple[list[np.ndarray], list[str]]:
        if p not in ready:
            ready[p] = PreparedSlice(cmaps[p], dropped[p],
                                     split_instances(cmaps[p], class_names, spacing_mm))
        return ready[p].instances

    def labelled(p: int) -> Labelling:
        if labellings[p] is None:
            labellings[p] = label_vertebrae(cmaps[p], class_names, spacing_mm=spacing_mm,
                                            in_view=in_view, instances=split(p))
        return labellings[p]

    if mode == "per-vertebra":
        # name on the slice that shows the column best: the few slices with the most body
        # and sacrum pixels are labelled and scored (labelling every slice costs 0.1-0.3 s)
        px = {p: int(np.count_nonzero(np.isin(c, [k for k in (kb, ks) if k is not None])))
              for p, c in cmaps.items()}
        for p in sorted(px, key=lambda q: (-px[q], abs(q - centre)))[:REFERENCE_CANDIDATES]:
            labelled(p)
        ref = reference_position(labellings, centre)
    else:
        ref = centre
    lab = labelled(ref)

    def instances(p: int) -> list[np.ndarray] | None:
        if p not in cmaps:
            return None
        if labellings[p] is not None:
            return [b.mask for b in labellings[p].bodies]
        return split(p)[0]

    bodies = []
    overlap = BoxedIoU()
    for b in lab.bodies:
        track = follow(b.mask, ref, instances, n, overlap)
        whole = {p: m for p, m in track.items()
                 if p == ref or not is_cut(m, in_view)}  # a border-cut section is no middle
        pos = midplane_position(whole) if mode == "per-vertebra" else ref
        flags = [f for f in b.flags if f != "partial_body"]
        mask = track[pos]
        if is_cut(mask, in_view):
            flags.append("partial_body")
        bodies.append(TrackedBody(level=b.level, position=pos, mask=mask, flags=flags,
                                  track=track))
    study_flags = list(lab.flags)
    naming = naming_disagreements(bodies, labellings, ref, overlap)
    if naming:
        study_flags.append("naming_disagrees_between_slices")
    n_series = n if series_slices is None else int(series_slices)
    if n_series < MIN_SLICES_TO_CHECK_NAMES and bodies:
        study_flags.append(NAMES_UNCHECKED)
        naming.append(NAMES_UNCHECKED_WARNING.format(n=n_series))
    if naming:  # the names are in doubt: every body up for review
        for b in bodies:
            b.flags += [f for f in ("label_uncertain", "needs_review") if f not in b.flags]
    warnings = list(dropped[ref]) + list(lab.warnings) + naming
    for msg in dropped[ref]:
        log.warning(msg)
    if ref != centre:
        warnings.append(f"levels named on slice {ref + 1} of {n} (the column's best view), "
                        f"not the centre slice {centre + 1}")
    return SeriesLabelling(bodies=bodies, reference=ref, labellings=labellings,
                           flags=study_flags, warnings=warnings)


def naming_disagreements(bodies: Sequence[TrackedBody], labellings: Sequence[Labelling | None],
                         ref: int, iou: Callable[[np.ndarray, np.ndarray], float] = _iou
                         ) -> list[str]:
    """Where another labelled slice names a followed body differently from the reference.

    The candidate slices labelled to choose the reference name their bodies on their own
    (from their own sacrum up); a body that the reference calls L5 and a neighbouring slice
    calls L4 means the count itself is in doubt (S1 read as a body on one of them, a body
    missed on the other), so the names need a reader. One line per disagreeing slice.
    """
    out = []
    for p, lab in enumerate(labellings):
        if p == ref or lab is None or not lab.bodies:
            continue
        diffs = []
        for b in bodies:
            m = b.track.get(p)
            if m is None:
                continue
            ious = [iou(m, o.mask) for o in lab.bodies]
            k = int(np.argmax(ious))
            if ious[k] >= TRACK_MIN_IOU and lab.bodies[k].level != b.level:
                diffs.append(f"{b.level} is {lab.bodies[k].level}")
        if diffs:
            out.append(f"slice {p + 1} names the levels differently ({', '.join(diffs)}): "
                       "the count from the sacrum is in doubt - confirm the level names")
    return out


def is_cut(mask: np.ndarray, in_view: np.ndarray | None = None) -> bool:
    """The body touches the grid's border or the edge of the source image within it."""
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        return True
    if in_view is None or not mask.any():
        return False
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    box = (slice(max(0, rows[0] - 1), rows[-1] + 2), slice(max(0, cols[0] - 1), cols[-1] + 2))
    return bool((ndi.binary_dilation(mask[box]) & ~np.asarray(in_view, bool)[box]).any())
