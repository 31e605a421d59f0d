"""Derive the per-level healthy reference ratios (assets/reference_ratios.json) from SPIDER.

Recipe (Black 1991 / EVOS / Roberts 2007 style, see docs MORPHOMETRY.md): take the vertebral
bodies of the SPIDER ``split=train`` masks (central slices), name them from the bottom
(lowest labelled vertebra = L5), find corners and measure them with the app's own corner
finder and morphometry, compute the scale-free ratios (wedge AH/PH, biconcavity MH/PH, crush
PH / neighbours' PH) and, per level, trim values beyond 3 SD iteratively until stable.

Usage::

    python -m spineviewer.train.reference --data /path/to/spider_t2space \
        --out assets/reference_ratios.json

Only numbers are written; the SPIDER images stay where they are.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from spineviewer.core.genant import MIN_CORNER_OVERLAP, crush_ratios

logger = logging.getLogger(__name__)

VERTEBRA, DISC, CANAL = 1, 2, 3  # SPIDER class numbers as redistributed (README)
LUMBAR_FROM_BOTTOM = ("L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9")
SPIDER_CREDIT = ("SPIDER: van der Graaf JW, van Hooff ML, Buckens CFM, et al. Lumbar spine "
                 "segmentation in MR images: a dataset and a public benchmark. Sci Data "
                 "2024;11:264. CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)")
TRIMMING_RECIPE = ("per level and ratio, start from the values within 3 robust SD (1.4826 x MAD) "
                   "of the median, then drop values > 3 SD from the mean, recompute, until no "
                   "value changes (SD with ddof=1)")
MIN_BODY_FRACTION = 0.25  # of the median body area on the slice; smaller = fragment


@dataclass(frozen=True)
class BodyRatios:
    """Ratios of one body on one slice."""

    case: str
    slice_file: str
    level: str
    AH: float
    PH: float
    MH: float
    overlap: float | None


def trimmed_stats(values: Iterable[float], k_sd: float = 3.0, max_iter: int = 100,
                  robust_start: bool = True) -> tuple[float, float, int, int]:
    """Mean and SD after iteratively dropping values more than ``k_sd`` SD from the mean.

    Parameters
    ----------
    values : iterable of float
    k_sd : float
        Trimming half-width in SD (3 as Black 1991 / EVOS).
    max_iter : int
    robust_start : bool
        Start from the values within ``k_sd`` robust SDs (1.4826 x MAD) of the median instead
        of from all values. Plain mean +- 3 SD trimming suffers from masking: when deformed
        vertebrae are common (osteoporotic cohorts) they inflate the SD so that none of them
        is ever beyond 3 SD (with n values no z-score can exceed (n-1)/sqrt(n)). The iteration
        afterwards is the classical one, so clean data give the classical result.

    Returns
    -------
    (mean, sd, n_kept, iterations); sd uses ddof=1. NaNs are ignored.
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), 0, 0
    keep = np.ones(x.size, bool)
    if robust_start and x.size >= 5:
        med = np.median(x)
        mad_sd = 1.4826 * np.median(np.abs(x - med))
        if mad_sd > 0:
            keep = np.abs(x - med) <= k_sd * mad_sd
    for it in range(1, max_iter + 1):
        mean, sd = x[keep].mean(), x[keep].std(ddof=1) if keep.sum() > 1 else 0.0
        new = np.abs(x - mean) <= k_sd * sd if sd > 0 else keep
        if np.array_equal(new, keep) or new.sum() < 2:
            return float(mean), float(sd), int(keep.sum()), it
        keep = new
    return float(x[keep].mean()), float(x[keep].std(ddof=1)), int(keep.sum()), max_iter


def anterior_is_left(mask: np.ndarray) -> bool:
    """True when the discs lie at smaller columns than the canal (anterior at col 0)."""
    disc_c = np.nonzero(mask == DISC)[1]
    canal_c = np.nonzero(mask == CANAL)[1]
    if disc_c.size == 0 or canal_c.size == 0:
        return True
    return bool(disc_c.mean() < canal_c.mean())


def _canal_front(mask: np.ndarray) -> np.ndarray:
    """Per row, the column of the canal's anterior border (anterior = col 0); NaN on rows
    without canal. Largest canal component only (no debris), median-filtered over 9 rows."""
    out = np.full(mask.shape[0], np.nan)
    canal = mask == CANAL
    lab, n = ndi.label(canal)
    if n == 0:
        return out
    canal = lab == 1 + int(np.argmax(ndi.sum(canal, lab, np.arange(1, n + 1))))
    rows = np.nonzero(canal.any(axis=1))[0]
    out[rows] = ndi.median_filter(canal[rows].argmax(axis=1).astype(float), size=9,
                                  mode="nearest")
    return out


def _disc_back_line(mask: np.ndarray, min_area_px: int = 30) -> np.ndarray | None:
    """Per row, the column of the line through the discs' posterior margins (anterior =
    col 0), interpolated between discs and extended linearly beyond the end ones; None with
    fewer than two discs."""
    lab, n = ndi.label(mask == DISC)
    pts = []
    for k in range(1, n + 1):
        rr, cc = np.nonzero(lab == k)
        if rr.size < min_area_px:
            continue
        back = ndi.maximum(cc, rr, np.unique(rr))        # per-row posterior edge
        edge = float(np.percentile(back, 90))
        sel = cc >= edge - 2
        pts.append((float(rr[sel].mean()), edge))
    if len(pts) < 2:
        return None
    pts.sort()
    r, c = np.array(pts).T
    rows = np.arange(mask.shape[0], dtype=float)
    line = np.interp(rows, r, c)
    lo, hi = rows < r[0], rows > r[-1]
    line[lo] = c[0] + (rows[lo] - r[0]) * (c[1] - c[0]) / max(r[1] - r[0], 1.0)
    line[hi] = c[-1] + (rows[hi] - r[-1]) * (c[-1] - c[-2]) / max(r[-1] - r[-2], 1.0)
    return line


#: How far (source px) the canal's front may lie anterior / posterior to the discs' posterior
#: margin line before it is distrusted (SPIDER's canal label thins out or ends at L5-S1,
#: where a constant or stray border would cut L5 away).
WALL_TOL_ANTERIOR_PX = 10.0
WALL_TOL_POSTERIOR_PX = 15.0


def posterior_wall(mask: np.ndarray) -> np.ndarray:
    """Per row, the column separating vertebral bodies from posterior elements (anterior =
    col 0): the canal's anterior border where it agrees with the line through the discs'
    posterior margins, that line (+2 px for disc bulge) elsewhere.

    Parameters
    ----------
    mask : (H, W) int, SPIDER classes (0 background, 1 vertebra, 2 disc, 3 canal).

    Returns
    -------
    (H,) float; +inf where neither the canal nor two discs give a border.
    """
    canal = _canal_front(mask)
    disc = _disc_back_line(mask)
    h = mask.shape[0]
    if disc is None:
        ok = np.isfinite(canal)
        if not ok.any():
            return np.full(h, np.inf)
        return np.interp(np.arange(h), np.nonzero(ok)[0], canal[ok])
    trust = (np.isfinite(canal) & (canal >= disc - WALL_TOL_ANTERIOR_PX)
             & (canal <= disc + WALL_TOL_POSTERIOR_PX))
    return np.where(trust, canal, disc + 2.0)


def _disc_beside(mask: np.ndarray, body: np.ndarray, above: bool) -> bool:
    """Whether an annotated disc touches the body's upper (or lower) endplate.

    SPIDER annotates the topmost vertebra of a slice only in part when its upper disc is not
    labelled; a body bounded by discs on both sides is completely annotated.
    """
    rr, cc = np.nonzero(body)
    reach = max(3, int(0.25 * (rr.max() - rr.min() + 1)))
    grown = ndi.binary_dilation(body, iterations=reach)
    centre = rr.mean()
    rows = np.arange(mask.shape[0])[:, None]
    side = rows < centre if above else rows > centre
    return bool(((mask == DISC) & grown & side).sum() >= 0.05 * len(np.unique(cc)) * reach)


def extract_bodies(mask: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """Vertebral bodies of a SPIDER mask, top to bottom, in the mask's own orientation.

    Parameters
    ----------
    mask : (H, W) int
        0 background, 1 vertebra, 2 disc, 3 canal.

    Returns
    -------
    list of (body mask bool (H, W), complete): complete is False for a body cut by the
    image border, a fragment much smaller than the slice's median body, or a body without an
    annotated disc above and below it (the topmost vertebra is often only partly annotated).
    """
    flip = not anterior_is_left(mask)
    m = mask[:, ::-1] if flip else mask
    cols = np.arange(m.shape[1])[None, :]
    bone = (m == VERTEBRA) & (cols < posterior_wall(m)[:, None] - 1)
    bone = ndi.binary_opening(bone, structure=np.ones((3, 3)))
    lab, n = ndi.label(bone)
    if n == 0:
        return []
    areas = ndi.sum(bone, lab, index=np.arange(1, n + 1))
    med = float(np.median(areas[areas >= 0.3 * areas.max()]))
    out = []
    for i in range(1, n + 1):
        b = lab == i
        if areas[i - 1] < 0.1 * med:
            continue
        rr, cc = np.nonzero(b)
        cut = rr.min() == 0 or rr.max() == m.shape[0] - 1 or cc.min() == 0
        complete = (not cut and areas[i - 1] >= MIN_BODY_FRACTION * med
                    and _disc_beside(m, b, above=True) and _disc_beside(m, b, above=False))
        out.append((b[:, ::-1] if flip else b, complete, rr.mean()))
    out.sort(key=lambda t: t[2])
    return [(b, c) for b, c, _ in out]


def fallback_corners(mask: np.ndarray) -> dict[str, tuple[float, float]]:
    """Corners as the mask points extreme along the body's diagonals (anterior = col 0).

    Only for tests and when the real corner finder is unavailable.
    """
    rr, cc = np.nonzero(mask)
    pts = np.c_[rr, cc].astype(float)
    ctr = pts.mean(axis=0)
    d = pts - ctr
    _, vecs = np.linalg.eigh(np.cov(d.T))
    u = vecs[:, 0] if abs(vecs[0, 0]) > abs(vecs[0, 1]) else vecs[:, 1]  # height axis
    u = u if u[0] > 0 else -u  # points inferior
    v = np.array([-u[1], u[0]])
    v = v if v[1] > 0 else -v  # points posterior
    a, b = d @ u, d @ v
    a, b = a / np.abs(a).max(), b / np.abs(b).max()
    pick = {"AS": -a - b, "AI": a - b, "PS": -a + b, "PI": a + b}
    return {k: (float(pts[s.argmax(), 0]), float(pts[s.argmax(), 1])) for k, s in pick.items()}


def _mid_height(mask: np.ndarray, corners: dict[str, tuple[float, float]]) -> float:
    """Extent of the mask along the line joining the mid-points of the endplate chords."""
    c = {k: np.asarray(v) for k, v in corners.items()}
    top, bot = (c["AS"] + c["PS"]) / 2, (c["AI"] + c["PI"]) / 2
    axis = (bot - top) / np.linalg.norm(bot - top)
    ts = np.arange(-0.5 * np.linalg.norm(bot - top), 1.5 * np.linalg.norm(bot - top), 0.25)
    p = top[None, :] + ts[:, None] * axis[None, :]
    inside = ndi.map_coordinates(mask.astype(float), p.T, order=0, mode="constant") > 0.5
    return float(inside.sum() * 0.25)


def measure_body(mask: np.ndarray,
                 anterior_left: bool = True) -> tuple[float, float, float, float | None]:
    """(AH, PH, MH, overlap) of one body mask in pixels, by the app's corner finder if present."""
    m = mask if anterior_left else mask[:, ::-1]
    try:
        from spineviewer.core.corners import find_corners
        from spineviewer.core.morphometry import measure
    except ImportError:
        corners = fallback_corners(m)
        c = {k: np.asarray(v) for k, v in corners.items()}
        ah = float(np.linalg.norm(c["AS"] - c["AI"]))
        ph = float(np.linalg.norm(c["PS"] - c["PI"]))
        return ah, ph, _mid_height(m, corners), None
    res = find_corners(m, spacing_mm=(1.0, 1.0))
    meas = measure(res.corners_rc, res.outline_rc, (1.0, 1.0))
    return float(meas.AH_mm), float(meas.PH_mm), float(meas.MH_mm), float(res.overlap)


def slice_ratios(mask: np.ndarray, case: str, slice_file: str,
                 measure_fn: Callable[..., tuple[float, float, float, float | None]] = measure_body,
                 ) -> list[BodyRatios]:
    """Measured complete bodies of one slice, named from the bottom (lowest = L5).

    The naming assumes the lowest labelled vertebra is L5 (SPIDER README); a slice whose
    lowest body is cut by the border is skipped since its names would be unknown.
    """
    bodies = extract_bodies(mask)
    if not bodies or not bodies[-1][1]:
        return []
    left = anterior_is_left(mask)
    out = []
    for k, (b, complete) in enumerate(reversed(bodies)):
        if k >= len(LUMBAR_FROM_BOTTOM):
            break
        if not complete:
            continue
        ah, ph, mh, ov = measure_fn(b, left)
        out.append(BodyRatios(case, slice_file, LUMBAR_FROM_BOTTOM[k], ah, ph, mh, ov))
    return out


def read_manifest(data_dir: Path, split: str = "train",
                  central_ranks: Sequence[int] = (-1, 0, 1)) -> list[dict[str, str]]:
    with open(data_dir / "manifest.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh)
                if r["split"] == split and int(r["central_rank"]) in central_ranks]


def collect(data_dir: Path, rows: list[dict[str, str]],
            measure_fn: Callable[..., tuple[float, float, float, float | None]] = measure_body,
            ) -> list[BodyRatios]:
    """Measured bodies of the manifest ``rows`` (masks read from ``data_dir/masks``)."""
    from PIL import Image

    out: list[BodyRatios] = []
    for r in rows:
        mask = np.asarray(Image.open(data_dir / "masks" / r["file"]))
        out.extend(slice_ratios(mask, r["case"], r["file"], measure_fn))
    return out


def ratio_table(bodies: list[BodyRatios],
                levels: Sequence[str] = ("T12", "L1", "L2", "L3", "L4", "L5"),
                k_sd: float = 3.0) -> dict[str, dict[str, dict[str, float]]]:
    """Per level trimmed mean/SD of wedge, biconcavity, crush, crush_above, crush_below."""
    values: dict[str, dict[str, list[float]]] = {lv: {} for lv in levels}
    by_slice: dict[str, list[BodyRatios]] = {}
    for b in bodies:
        by_slice.setdefault(b.slice_file, []).append(b)
    for group in by_slice.values():
        ph = {b.level: b.PH for b in group}
        column = [lv for lv in reversed(LUMBAR_FROM_BOTTOM)
                  if any(LUMBAR_FROM_BOTTOM.index(lv) <= LUMBAR_FROM_BOTTOM.index(g.level)
                         for g in group)]  # top to bottom, gaps kept as None
        crush = dict(zip(column, crush_ratios([ph.get(lv) for lv in column])))
        for b in group:
            if b.level not in values:
                continue
            v = values[b.level]
            v.setdefault("wedge", []).append(b.AH / b.PH)
            v.setdefault("biconcavity", []).append(b.MH / b.PH)
            k = LUMBAR_FROM_BOTTOM.index(b.level)
            up = ph.get(LUMBAR_FROM_BOTTOM[k + 1]) if k + 1 < len(LUMBAR_FROM_BOTTOM) else None
            dn = ph.get(LUMBAR_FROM_BOTTOM[k - 1]) if k > 0 else None
            if up is not None:
                v.setdefault("crush_above", []).append(b.PH / up)
            if dn is not None:
                v.setdefault("crush_below", []).append(b.PH / dn)
            r, kind = crush[b.level]
            if kind == "crush":
                v.setdefault("crush", []).append(r)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for lv, per in values.items():
        table[lv] = {}
        for name, vals in per.items():
            mean, sd, n, it = trimmed_stats(vals, k_sd)
            table[lv][name] = {"mean": round(mean, 4), "sd": round(sd, 4), "n": n,
                               "n_before_trimming": len(vals), "trim_iterations": it}
    return table


def write_bodies_csv(bodies: list[BodyRatios], path: str | Path) -> None:
    """Per-body measurements (numbers only) for re-deriving the table without re-measuring."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "slice_file", "level", "AH", "PH", "MH", "overlap"])
        for b in bodies:
            w.writerow([b.case, b.slice_file, b.level, f"{b.AH:.4f}", f"{b.PH:.4f}",
                        f"{b.MH:.4f}", "" if b.overlap is None else f"{b.overlap:.4f}"])


def read_bodies_csv(path: str | Path) -> list[BodyRatios]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [BodyRatios(r["case"], r["slice_file"], r["level"], float(r["AH"]), float(r["PH"]),
                           float(r["MH"]), float(r["overlap"]) if r["overlap"] else None)
                for r in csv.DictReader(fh)]


def derive(data_dir: str | Path, central_ranks: Sequence[int] = (-1, 0, 1),
           bodies: list[BodyRatios] | None = None) -> dict[str, Any]:
    """Build the reference-table document from the SPIDER ``train`` masks.

    ``bodies`` (e.g. from `read_bodies_csv`) skips the corner finding.
    """
    data_dir = Path(data_dir)
    rows = read_manifest(data_dir, "train", central_ranks)
    if bodies is None:
        bodies = collect(data_dir, rows)
    else:
        keep = {r["file"] for r in rows}
        bodies = [b for b in bodies if b.slice_file in keep]
    try:
        import spineviewer.core.corners  # noqa: F401
        corner_method = "spineviewer.core.corners.find_corners + core.morphometry.measure"
    except ImportError:
        corner_method = "fallback diagonal-extreme corners (reference.fallback_corners)"
    overlaps = [b.overlap for b in bodies if b.overlap is not None]
    trusted = [b for b in bodies if b.overlap is None or b.overlap >= MIN_CORNER_OVERLAP]
    return {
        "schema": "spineviewer.reference_ratios/1",
        "provisional": corner_method.startswith("fallback"),
        "source": ("Derived by SpineViewer from the vertebral-body masks of the SPIDER "
                   "split=train patients (central sagittal slices), iterative 3 SD trimming "
                   "per level. " + SPIDER_CREDIT),
        "date": _dt.date.today().isoformat(),
        "threshold_sd": 3.0,
        "recipe": {
            "data": "SPIDER T2 SPACE sagittal masks, split=train "
                    f"({len({r['case'] for r in rows})} patients, {len(rows)} slices, "
                    f"central_rank in {list(central_ranks)})",
            "bodies": "vertebra pixels anterior to the posterior vertebral wall (the canal's "
                      "anterior border where it lies within -10/+15 px of the line through the "
                      "discs' posterior margins, else that line + 2 px), opened 3x3, connected "
                      "components; bodies cut by the image border skipped",
            "levels": "named from the bottom: lowest labelled vertebra = L5",
            "corners": corner_method,
            "ratios": "wedge AH/PH; biconcavity MH/PH; crush PH / mean PH of the two "
                      "neighbours; crush_above PH / PH above; crush_below PH / PH below; "
                      "pixel spacing unknown, assumed isotropic (ratios are scale-free)",
            "trimming": TRIMMING_RECIPE,
            "quality": f"bodies whose corner overlap is below {MIN_CORNER_OVERLAP} (those the "
                       "app marks needs_review) excluded; a neighbour so excluded leaves no "
                       "crush ratio",
            "n_bodies": len(bodies),
            "n_bodies_used": len(trusted),
            "median_corner_overlap": float(np.median(overlaps)) if overlaps else None,
            "command": "python -m spineviewer.train.reference --data <spider_t2space> "
                       "--out assets/reference_ratios.json",
        },
        "levels": ratio_table(trusted),
    }


def bodies_from_rows(rows: Iterable[dict[str, Any]]) -> list[BodyRatios]:
    """Per-body heights from result rows of the CSV contract (one slice per study).

    This lets a site derive its own table from the app's measurements of its own population
    (``table_document``), the way Black/EVOS/Rea derived theirs.
    """
    out = []
    for r in rows:
        try:
            ah, ph, mh = (float(r[k]) for k in ("AH_mm", "PH_mm", "MH_mm"))
        except (KeyError, TypeError, ValueError):
            continue  # vertebra not measured
        if ph > 0:
            out.append(BodyRatios(str(r["study_uid"]), str(r["study_uid"]), str(r["level"]),
                                  ah, ph, mh, None))
    return out


def table_document(bodies: list[BodyRatios], *, source: str,
                   recipe: dict[str, Any]) -> dict[str, Any]:
    """A reference-table document (schema of ``assets/reference_ratios.json``) from bodies."""
    return {"schema": "spineviewer.reference_ratios/1", "provisional": False, "source": source,
            "date": _dt.date.today().isoformat(), "threshold_sd": 3.0,
            "recipe": {**recipe, "n_bodies": len(bodies),
                       "trimming": TRIMMING_RECIPE},
            "levels": ratio_table(bodies)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="spider_t2space folder (manifest.csv, masks/)")
    ap.add_argument("--out", default="assets/reference_ratios.json")
    ap.add_argument("--ranks", default="-1,0,1", help="central_rank values to use")
    ap.add_argument("--bodies-csv", help="write the per-body measurements here")
    ap.add_argument("--from-bodies", help="re-use per-body measurements from this CSV")
    a = ap.parse_args(argv)
    ranks = tuple(int(x) for x in a.ranks.split(","))
    if a.from_bodies:
        bodies = read_bodies_csv(a.from_bodies)
    else:
        bodies = collect(Path(a.data), read_manifest(Path(a.data), "train", ranks))
    if a.bodies_csv:
        write_bodies_csv(bodies, a.bodies_csv)
    doc = derive(a.data, ranks, bodies=bodies)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    for lv, per in doc["levels"].items():
        print(lv, "  ".join(f"{k} {v['mean']:.3f}+-{v['sd']:.3f} (n={v['n']})"
                            for k, v in per.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
