"""Labelling: split the body class into vertebrae, find the sacrum, name L5..L1, T12 upwards.

Body clusters that hold two bodies are split: too tall for one (``split_touching``), or
lying on both faces of a disc cluster (``split_at_discs``: a thin disc outlined short of the
body's edge). Levels are counted from the sacrum up (the body directly above S1 is L5). What one sagittal
slice cannot settle is flagged rather than guessed silently: a sacrum outside the field of view
(``sacrum_not_visible``; every body ``label_uncertain``), and size/spacing patterns that suggest
a lumbosacral transitional vertebra or a sixth/fourth lumbar-type body (``transitional_anatomy``).
All masks are in the canonical model grid (superior = row 0, anterior = col 0).

Study flags: ``sacrum_not_visible``, ``sacrum_unsegmented`` (no sacrum class, but the lowest
body sits on a full disc with the field of view going on well below it: counted from there,
not uncertain), ``sacrum_inferred`` (no sacrum class, but a body cluster
under the lowest disc with no disc beneath it was taken as S1), ``s1_suspected`` (the disc under the
lowest body cluster is small and short, as an S1-S2 remnant is: possibly S1 read as a body;
names are kept and marked uncertain),
``transitional_anatomy``, ``levels_missing`` (the lowest body lies a level or more above the
sacrum: bodies between were not segmented; names kept and marked uncertain).
Body flags: ``partial_body`` (cut by the image border: list it, do not measure it),
``label_uncertain`` and ``needs_review`` (no sacrum, transitional cues, missing levels).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from spineviewer.core.maskops import argwhere, component_areas, dilate, label
from spineviewer.core.sacral_cues import (
    SACRUM_ROOM_MM,
    gap_to_sacrum,
    looks_like_s1,
    rudimentary_disc_below,
    sacrum_room_mm,
    transitional_cues,
)
from spineviewer.core.segment import column_curve

logger = logging.getLogger(__name__)

#: How levels are named, for the report's method section. A lumbar series shows neither C2 nor
#: the ribs, so the count cannot be checked from the top; transitional anatomy with 4 or 6
#: lumbar-type vertebrae that no cue on the image reveals shifts every name by one.
NAMING_CONVENTION = ("level names are counted upwards from the sacrum (the body directly above "
                     "S1 is L5), assuming five lumbar vertebrae; the series cannot show the "
                     "count from C2 or the ribs, so with 4 or 6 lumbar-type vertebrae every "
                     "name may be off by one where no transitional cue was found - confirm "
                     "the count on a whole-spine or rib-showing image if it matters")
NAMES_FROM_BOTTOM = ("L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8")
#: The lowest body lies this many levels (body height plus disc) or more above the sacrum
#: (``sacral_cues.gap_to_sacrum``): bodies between them were not segmented (seen on one SPIDER
#: patient's middle slice alone: L2-L5 unsegmented, 4.0 levels, and L1 read as L5). Whole
#: columns: at most 0.23 (SPIDER, all 41 patients' labelled slices), 0.20 and 0.24 (phantom
#: renderers A and B, development cohort 777124); one missing body leaves about 1.
LEVELS_MISSING_GAP = 0.6
#: Expected body height along the column when too few bodies to measure it (lumbar ~ 26 mm).
DEFAULT_BODY_HEIGHT_MM = 26.0
#: A component longer than this many body heights along the column holds touching bodies.
MERGED_FACTOR = 1.6
#: A lowest body cluster touching the sacrum and smaller than this fraction of the median
#: body area is part of S1 read as body.
S1_FRAGMENT = 0.5
#: A body-class cluster smaller than this fraction of the median body (and not cut by the
#: image border) is a fragment - a piece of S1 or of an osteophyte read as body - not a
#: vertebra. A Genant grade-3 crush keeps about half of a body's area, far above it.
FRAGMENT_FRACTION = 0.3
#: Body clusters smaller than this are debris, not bodies (as post-processing drops them).
MIN_BODY_AREA_MM2 = 40.0
#: Sacrum smaller than this is not trusted as visible.
MIN_SACRUM_AREA_MM2 = 150.0
#: A disc cluster at least this long (fraction of a body cluster's extent along the disc)
#: with that one cluster on both of its faces lies between two bodies joined around its end.
SPLIT_DISC_LENGTH = 0.5
#: ... provided each side holds at least this fraction of the cluster.
SPLIT_MIN_SIDE = 0.2
#: Disc clusters smaller than this are specks, not discs, for that test.
SPLIT_MIN_DISC_AREA_MM2 = 10.0


@dataclass
class Body:
    """One vertebral body instance."""

    level: str
    mask: np.ndarray
    centroid_rc: tuple[float, float]
    flags: list[str] = field(default_factory=list)


@dataclass
class Labelling:
    """Named bodies top to bottom, the sacrum, and what could not be settled."""

    bodies: list[Body]
    sacrum_mask: np.ndarray | None
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _index(class_names: Sequence[str], name: str) -> int | None:
    return list(class_names).index(name) if name in class_names else None


def _extent_along(mask: np.ndarray, tangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of ``mask`` and their projection on the unit ``tangent``."""
    pts = argwhere(mask).astype(float)
    return pts, pts @ tangent


def _tangent(coef: np.ndarray, row: float) -> np.ndarray:
    slope = np.polyval(np.polyder(coef), row) if len(coef) > 1 else 0.0
    t = np.array([1.0, slope])
    return t / np.linalg.norm(t)


def split_touching(mask: np.ndarray, k: int, tangent: np.ndarray) -> list[np.ndarray]:
    """Split one component into ``k`` bodies at the narrowest cross-sections along the column.

    Parameters
    ----------
    mask : (H, W) bool
    k : int
        Number of bodies it holds.
    tangent : (2,) unit vector (row, col) of the column direction.

    Returns
    -------
    list of k bool masks, top to bottom.
    """
    pts, s = _extent_along(mask, tangent)
    s0 = s.min()
    bins = np.floor(s - s0).astype(int)
    width = ndi.gaussian_filter1d(np.bincount(bins).astype(float), 2.0)
    length = len(width)
    cuts = []
    for j in range(1, k):
        centre = j * length / k
        half = 0.25 * length / k
        lo, hi = int(max(1, centre - half)), int(min(length - 1, centre + half))
        idx = np.arange(lo, hi + 1)
        # narrowest section; among equal widths the one nearest the expected position
        score = width[idx] / width.max() + 0.05 * np.abs(idx - centre) / half
        cuts.append(int(idx[np.argmin(score)]))
    piece = np.searchsorted(np.array(cuts), bins, side="right")
    out = []
    for j in range(k):
        m = np.zeros_like(mask, dtype=bool)
        sel = pts[piece == j].astype(int)
        m[sel[:, 0], sel[:, 1]] = True
        out.append(m)
    return out


def _instances(body: np.ndarray, spacing_mm: float) -> tuple[list[np.ndarray], list[str]]:
    """Connected components of the body class, touching bodies split; top to bottom."""
    lab, n = label(body)
    sizes = component_areas(lab, n)
    big = [i + 1 for i in range(n) if sizes[i] * spacing_mm ** 2 >= MIN_BODY_AREA_MM2]
    if not big:
        return [], []
    comps = [lab == i for i in big]
    n = len(comps)
    cents = np.array([argwhere(c).mean(axis=0) for c in comps])
    areas = np.array([np.count_nonzero(c) for c in comps], float)
    coef = column_curve(cents, weights=areas) if n >= 2 else np.array([cents[0, 1]])
    extents = np.array([np.ptp(_extent_along(c, _tangent(coef, r))[1]) + 1
                        for c, (r, _) in zip(comps, cents)])
    ref = float(np.median(extents)) if n >= 3 else DEFAULT_BODY_HEIGHT_MM / spacing_mm
    out, warnings = [], []
    for c, (r, _), ext in zip(comps, cents, extents):
        k = round(ext / ref) if ext > MERGED_FACTOR * ref else 1
        if k > 1:
            out.extend(split_touching(c, k, _tangent(coef, r)))
            warnings.append(f"{k} touching bodies near row {r:.0f} split at their narrowest "
                            "cross-sections")
        else:
            out.append(c)
    out.sort(key=lambda m: argwhere(m)[:, 0].mean())
    return out, warnings


def split_at_discs(masks: list[np.ndarray], disc: np.ndarray, spacing_mm: float
                   ) -> tuple[list[np.ndarray], list[str]]:
    """Split body clusters that hold a disc between two of their parts.

    A thin or degenerated disc that the network outlines short of the body's edge leaves the
    two bodies joined around its end (a crushed body next to a normal one is then not tall
    enough to be split by ``MERGED_FACTOR``). A disc cluster spanning at least
    ``SPLIT_DISC_LENGTH`` of the body cluster's extent along it, with at least
    ``SPLIT_MIN_SIDE`` of the cluster on each face, splits it along the disc's long axis.

    Returns
    -------
    (masks top to bottom, warnings)
    """
    lab, n = label(disc)
    if n == 0:
        return masks, []
    min_px = MIN_BODY_AREA_MM2 / spacing_mm ** 2
    axes = []                                   # per disc: centre, long axis, normal, extent
    for i in range(n):
        d = argwhere(lab == i + 1).astype(float)
        if len(d) * spacing_mm ** 2 < SPLIT_MIN_DISC_AREA_MM2:
            continue
        centre = d.mean(axis=0)
        u = np.linalg.svd(d - centre, full_matrices=False)[2][0]
        normal = np.array([-u[1], u[0]])
        normal = normal if normal[0] >= 0 else -normal         # points down the column
        along = (d - centre) @ u
        axes.append((centre, u, normal, along.min(), along.max()))
    out, warnings = [], []
    for m in masks:
        pts = argwhere(m).astype(float)
        for centre, u, normal, lo, hi in axes:
            along_m = (pts - centre) @ u
            if hi - lo < SPLIT_DISC_LENGTH * np.ptp(along_m):
                continue
            inside = (along_m >= lo) & (along_m <= hi)
            below = (pts - centre) @ normal > 0
            n_up, n_down = int((inside & ~below).sum()), int((inside & below).sum())
            if min(n_up, n_down) < max(min_px, SPLIT_MIN_SIDE * len(pts)):
                continue
            up, down = np.zeros_like(m), np.zeros_like(m)
            up[tuple(pts[~below].astype(int).T)] = True
            down[tuple(pts[below].astype(int).T)] = True
            out += [up, down]
            warnings.append(f"two bodies joined around the end of a disc near row "
                            f"{centre[0]:.0f} split along it")
            break
        else:
            out.append(m)
    out.sort(key=lambda mm: argwhere(mm)[:, 0].mean())
    return out, warnings


def _drop_fragments(masks: list[np.ndarray], warnings: list[str]
                    ) -> tuple[list[np.ndarray], list[str]]:
    """Drop small non-border clusters (see ``FRAGMENT_FRACTION``); they would shift names."""
    if len(masks) < 3:
        return masks, warnings
    sizes = [np.count_nonzero(m) for m in masks]
    ref = float(np.median(sizes))
    keep = [m for m, size in zip(masks, sizes)
            if size >= FRAGMENT_FRACTION * ref or _touches_border(m)]
    if len(keep) < len(masks):
        warnings.append(f"{len(masks) - len(keep)} small body-class fragment(s) ignored "
                        f"(< {FRAGMENT_FRACTION:.0%} of a median body)")
    return keep, warnings


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = label(mask)
    if n <= 1:
        return mask
    return lab == (1 + int(np.argmax(component_areas(lab, n))))


def _find_sacrum(class_map: np.ndarray, k: int | None, spacing_mm: float) -> np.ndarray | None:
    if k is None:
        return None
    sac = _largest_component(class_map == k)
    if np.count_nonzero(sac) * spacing_mm ** 2 < MIN_SACRUM_AREA_MM2:
        return None
    return sac



def _settle_sacrum(masks: list[np.ndarray], sacrum: np.ndarray
                   ) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Drop "body" clusters that belong to the sacrum.

    S2.. segments read as body lie below the sacrum's centre (L5 always lies above it); a
    small body cluster fused to the top of the sacrum is part of S1 read as body.
    """
    notes = []
    centre = argwhere(sacrum)[:, 0].mean()
    below = [i for i, m in enumerate(masks) if argwhere(m)[:, 0].mean() > centre]
    if below:
        notes.append(f"{len(below)} body cluster(s) below the sacrum ignored")
        masks = [m for i, m in enumerate(masks) if i not in below]
    if len(masks) >= 2:
        low = masks[-1]
        touching = (dilate(low, iterations=2) & sacrum).any()
        median_area = np.median([np.count_nonzero(m) for m in masks[:-1]])
        if touching and np.count_nonzero(low) < S1_FRAGMENT * median_area:
            notes.append("a small body cluster fused to the sacrum was taken as part of S1")
            masks, sacrum = masks[:-1], sacrum | low
    return masks, sacrum, notes


def split_instances(class_map: np.ndarray, class_names: Sequence[str],
                    spacing_mm: float = 0.6) -> tuple[list[np.ndarray], list[str]]:
    """The body instances of a class map, top to bottom, as `label_vertebrae` splits them
    (touching bodies, bodies joined around a disc's end), and the warnings of the splits -
    without naming them or settling the sacrum: cheap enough to run on every slice of a
    series, and `label_vertebrae` takes the result (``instances``) instead of redoing it."""
    kb = _index(class_names, "body")
    if kb is None:
        return [], []
    masks, warnings = _instances(class_map == kb, spacing_mm)
    kd = _index(class_names, "disc")
    if kd is not None:
        masks, notes = split_at_discs(masks, class_map == kd, spacing_mm)
        warnings.extend(notes)
    return masks, warnings


def label_vertebrae(class_map: np.ndarray, class_names: Sequence[str],
                    spacing_mm: float = 0.6, in_view: np.ndarray | None = None,
                    instances: tuple[list[np.ndarray], list[str]] | None = None) -> Labelling:
    """Split, order and name the vertebral bodies of a post-processed class map.

    Parameters
    ----------
    class_map : (H, W) int
        Post-processed classes in the canonical model grid.
    class_names : sequence of str
        Class names by index; must contain "body"; "sacrum" and "disc" are used when present.
    spacing_mm : float
        Isotropic pixel spacing of ``class_map``.
    in_view : (H, W) bool, optional
        Grid pixels inside the source image (None: all of them).
    instances : `split_instances` of ``class_map`` when the caller has it already.

    Returns
    -------
    Labelling with bodies top to bottom.
    """
    kb = _index(class_names, "body")
    if kb is None:
        raise ValueError(f"class names {list(class_names)} have no 'body' class")
    if instances is None:
        instances = split_instances(class_map, class_names, spacing_mm)
    masks, warnings = list(instances[0]), list(instances[1])
    kd = _index(class_names, "disc")
    sacrum = _find_sacrum(class_map, _index(class_names, "sacrum"), spacing_mm)
    flags: list[str] = []
    if sacrum is not None:
        masks, sacrum, notes = _settle_sacrum(masks, sacrum)
        warnings.extend(notes)
    masks, warnings = _drop_fragments(masks, warnings)
    if sacrum is None and kd is not None and looks_like_s1(masks, class_map == kd, spacing_mm):
        sacrum, masks = masks[-1], masks[:-1]
        flags.append("sacrum_inferred")
        warnings.append("no sacrum segmented: the body cluster below the lowest disc, with no "
                        "disc beneath it, was taken as S1")
    s1_suspected = False
    if kd is not None:
        s1_suspected, ratio, length = rudimentary_disc_below(masks, class_map == kd, spacing_mm)
        if s1_suspected:
            flags.append("s1_suspected")
            warnings.append(f"the disc under the lowest body is small ({ratio:.0%} of a lumbar "
                            f"disc's area, {length:.0%} of its length): the lowest body may be "
                            "S1 read as a body (an S1-S2 remnant beneath), or the L5-S1 disc is "
                            "degenerated or under-segmented - confirm the level names")
    no_sacrum = sacrum is None
    room = sacrum_room_mm(masks, class_map == kd, spacing_mm, in_view) if (
        no_sacrum and kd is not None) else 0.0
    if no_sacrum and room >= SACRUM_ROOM_MM:
        no_sacrum = False
        flags.append("sacrum_unsegmented")
        warnings.append(f"the sacrum was not segmented, but the lowest body sits on a full disc "
                        f"with {room:.0f} mm of image below it: that disc was taken as L5-S1")
    elif no_sacrum:
        flags.append("sacrum_not_visible")
        warnings.append("sacrum not in the field of view: levels counted from the lowest "
                        "visible body as L5 and uncertain")
    cut = [_touches_border(m) or (in_view is not None and bool(
        (dilate(m) & ~np.asarray(in_view, bool)).any())) for m in masks]
    cues = transitional_cues(masks, sacrum, cut)
    if cues:
        flags.append("transitional_anatomy")
        warnings.extend(cues)
    gap = gap_to_sacrum(masks, sacrum)
    missing = gap is not None and gap >= LEVELS_MISSING_GAP
    if missing:
        flags.append("levels_missing")
        warnings.append(f"the lowest outlined body lies {gap:.1f} levels above the sacrum: "
                        "bodies between them were not outlined, so names counted up from the "
                        "sacrum are too low - confirm the level names")
    bodies = _name(masks, no_sacrum, bool(cues) or s1_suspected or missing)
    return Labelling(bodies=bodies, sacrum_mask=sacrum, flags=flags, warnings=warnings)


def _name(masks: list[np.ndarray], no_sacrum: bool, transitional: bool) -> list[Body]:
    bodies = []
    n = len(masks)
    for i, m in enumerate(masks):
        k = n - 1 - i  # position from the bottom
        level = NAMES_FROM_BOTTOM[k] if k < len(NAMES_FROM_BOTTOM) else f"T?{k}"
        rc = argwhere(m).mean(axis=0)
        body = Body(level=level, mask=m, centroid_rc=(float(rc[0]), float(rc[1])))
        if _touches_border(m):
            body.flags.append("partial_body")
        if no_sacrum or transitional:
            body.flags += ["label_uncertain", "needs_review"]
        bodies.append(body)
    return bodies
