"""Evaluate a shipped ONNX model through onnxruntime (no PyTorch): Dice, naming, measurements.

- Vertebral-body Dice on all SPIDER ``val`` slices (8 patients never trained on), in the
  model grid (assumed native spacing 0.65 mm, framed as a lumbar protocol: L5-S1 ~46 mm
  above the bottom edge), with the region caudal to the lowest labelled disc excluded.
- Body Dice on fresh phantoms from ``spineviewer.synth.training.train_sample`` (seed not
  used in training).
- Per-level naming accuracy on SPIDER val slices where the sacrum is in the field of view:
  the ground-truth body directly above the lowest labelled disc is L5, counting upwards;
  each ground-truth L1-L5 body is matched to the predicted body it overlaps most
  (``core.segment.postprocess`` + ``core.labeling.label_vertebrae``) and the names compared.
- Measurement agreement on SPIDER val: every whole annotated L1-L5 body and its predicted
  body measured by the app's own corner and morphometry code (ICC, bias, limits).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from spineviewer.train.data import (
    BG_OR_SACRUM,
    IGNORE,
    MODEL_SHAPE,
    MODEL_SPACING_MM,
    SPIDER_EVAL_SPACING_MM,
    TARGET_CLASSES,
    derive_spider_target,
    load_spider,
    model_grid_affine,
    read_manifest,
    resample_pair,
)

__all__ = [
    "OnnxPredictor",
    "dice",
    "evaluate_model",
    "gt_levels",
    "measurement_agreement",
    "naming_matches",
    "spider_val_pairs",
    "targets_montage",
]

LUMBAR = ("L1", "L2", "L3", "L4", "L5")
#: Study flags that ask the reader to confirm the level names.
NAMING_FLAGS = frozenset({"sacrum_not_visible", "sacrum_inferred", "s1_suspected",
                          "transitional_anatomy", "naming_disagrees_between_slices",
                          "names_unchecked", "levels_missing"})
#: Sacrum counted as visible when the grid extends this far below the lowest disc.
SACRUM_VISIBLE_MM = 25.0
#: Model row of the lowest disc's caudal border in the evaluation framing.
LOWEST_DISC_ROW = 370


def dice(pred: np.ndarray, target: np.ndarray, cls: int = 1, ignore: int = IGNORE) -> float:
    """Dice of class ``cls`` over fully labelled pixels (not ``ignore``, not
    background-or-sacrum); NaN when absent from both."""
    valid = (target != ignore) & (target != BG_OR_SACRUM)
    p = (pred == cls) & valid
    t = (target == cls) & valid
    s = int(p.sum() + t.sum())
    return float("nan") if s == 0 else 2.0 * float((p & t).sum()) / s


class OnnxPredictor:
    """Thin onnxruntime session: ``logits(x (H, W)) -> (C, H, W)``."""

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.asarray(x, np.float32)[None, None]})[0][0]


def spider_val_pairs(spider_root: str | Path, split: str = "val",
                     spacing_mm: float = SPIDER_EVAL_SPACING_MM, with_view: bool = False
                     ) -> list[tuple[Any, ...]]:
    """(case, model-grid image in [0,1], model-grid target) for every slice of ``split``;
    with ``with_view`` a fourth item, the grid pixels inside the source image.

    Rows are placed as a lumbar protocol frames the spine: the caudal border of the lowest
    labelled disc (L5-S1) at model row ``LOWEST_DISC_ROW`` (~46 mm above the grid's bottom,
    so the sacrum is in view); columns centred on the image centre (as ``core.preprocess``).
    """
    out = []
    zoom = MODEL_SPACING_MM / spacing_mm
    for c in read_manifest(spider_root, split):
        img, m = load_spider(spider_root, c)
        tgt = derive_spider_target(m)
        disc_rows = np.nonzero((tgt == 3).any(axis=1))[0]
        if disc_rows.size:
            src_c = disc_rows.max() - zoom * (LOWEST_DISC_ROW - (MODEL_SHAPE[0] - 1) / 2)
            shift_r = (src_c - (m.shape[0] - 1) / 2) * spacing_mm
        else:
            shift_r = 0.0
        mat, off = model_grid_affine(m.shape, spacing_mm, 0.0, (shift_r, 0.0))
        a, b = resample_pair(img.astype(np.float32) / 255.0, tgt, mat, off)
        item = (c, np.clip(a, 0, 1).astype(np.float32), b)
        if with_view:
            ones, _ = resample_pair(np.ones(img.shape, np.float32), tgt, mat, off)
            item += (ones > 0.5,)
        out.append(item)
    return out


def gt_levels(target: np.ndarray, min_area_px: int = 150) -> tuple[list[tuple[str, np.ndarray]], bool]:
    """Ground-truth named bodies of a model-grid SPIDER target, and sacrum visibility.

    The body component just above the lowest labelled disc is L5; names go upwards
    (L4..L1, T12, T11, ...). Returns ([(level, mask)], sacrum_visible).
    """
    disc_rows = np.nonzero(target == 3)[0]
    if disc_rows.size == 0:
        return [], False
    lab, n = ndi.label(target == 3)
    comps = [np.nonzero(lab == k)[0] for k in range(1, n + 1)]
    comps = [r for r in comps if r.size >= 30]
    if not comps:
        return [], False
    lowest_disc_top = min(comps, key=lambda r: -r.mean()).min()
    lowest_disc_bottom = max(comps, key=lambda r: r.mean()).max()
    visible = (target.shape[0] - 1 - lowest_disc_bottom) * MODEL_SPACING_MM >= SACRUM_VISIBLE_MM
    blab, nb = ndi.label(target == 1)
    bodies = []
    for k in range(1, nb + 1):
        mk = blab == k
        if mk.sum() < min_area_px:
            continue
        r = np.nonzero(mk)[0].mean()
        if r < lowest_disc_top + 5:
            bodies.append((r, mk))
    bodies.sort(key=lambda t: -t[0])          # bottom first
    names = ["L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8"]
    named = [(names[i] if i < len(names) else f"T{12 - (i - 5)}", mk)
             for i, (_, mk) in enumerate(bodies)]
    return named[::-1], bool(visible)


def _best_overlap(mask: np.ndarray, pred_bodies: list[Any], min_iou: float) -> Any:
    """The predicted body of largest IoU with ``mask`` if it reaches ``min_iou``, else None."""
    best, best_iou = None, 0.0
    for b in pred_bodies:
        inter = np.logical_and(mask, b.mask).sum()
        if inter == 0:
            continue
        iou = inter / np.logical_or(mask, b.mask).sum()
        if iou > best_iou:
            best, best_iou = b, iou
    return best if best is not None and best_iou >= min_iou else None


def naming_matches(gt: list[tuple[str, np.ndarray]], pred_bodies: list[Any],
                   levels: tuple[str, ...] = LUMBAR, min_iou: float = 0.3
                   ) -> list[tuple[str, str | None]]:
    """(true level, predicted level or None) for each ground-truth body in ``levels``."""
    out = []
    for level, mk in gt:
        if level in levels:
            best = _best_overlap(mk, pred_bodies, min_iou)
            out.append((level, None if best is None else best.level))
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=0, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def evaluate_model(model_path: str | Path, spider_root: str | Path, n_phantoms: int = 30,
                   phantom_seed: int = 913_377, threads: int = 2, write_card: bool = True
                   ) -> dict[str, Any]:
    """Measure the ONNX model; print a summary and (optionally) write ``metrics`` into its card."""
    t0 = time.time()
    pred = OnnxPredictor(model_path, threads)
    metrics: dict[str, Any] = {}
    # SPIDER val
    pairs = spider_val_pairs(spider_root, "val", with_view=True)
    per_slice, per_case, disc_d = [], {}, []
    naming: list[tuple[str, str | None]] = []
    naming_case: dict[Any, list[bool]] = {}
    wrong_flagged, wrong_total = 0, 0
    slices_named, slices_all_ok, n_visible, slices_flagged = 0, 0, 0, 0
    body_pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for c, img, tgt, in_view in pairs:
        logits = pred.logits(img)
        cls = logits.argmax(0)
        d = dice(cls, tgt, 1)
        per_slice.append(d)
        per_case.setdefault(c.case, []).append(d)
        dd = dice(cls, tgt, 3)
        if not np.isnan(dd):
            disc_d.append(dd)
        gt, visible = gt_levels(tgt)
        lab = label_slice(logits, in_view)
        body_pairs += _matched_bodies(gt, lab.bodies)
        if visible:
            n_visible += 1
            m = naming_matches(gt, lab.bodies)
            naming += m
            naming_case.setdefault(c.case, []).extend(t == p for t, p in m)
            n_wrong = sum(t != p for t, p in m)
            wrong_total += n_wrong
            if set(lab.flags) & NAMING_FLAGS:
                wrong_flagged += n_wrong
                slices_flagged += 1
            if m:
                slices_named += 1
                slices_all_ok += all(t == p for t, p in m)
    metrics["spider_val_body_dice_mean"] = round(float(np.nanmean(per_slice)), 4)
    metrics["spider_val_body_dice_median"] = round(float(np.nanmedian(per_slice)), 4)
    metrics["spider_val_body_dice_min"] = round(float(np.nanmin(per_slice)), 4)
    metrics["spider_val_body_dice_per_patient"] = {
        str(k): round(float(np.nanmean(v)), 4) for k, v in sorted(per_case.items())}
    metrics["spider_val_disc_dice_mean"] = round(float(np.mean(disc_d)), 4) if disc_d else None
    metrics["spider_val_slices"] = len(pairs)
    metrics["spider_val_protocol"] = (
        f"all val slices, assumed native spacing {SPIDER_EVAL_SPACING_MM} mm, lowest labelled "
        f"disc's caudal border at model row {LOWEST_DISC_ROW} (sacrum in view), argmax of the logits, region caudal to the lowest "
        "disc excluded")
    ok = sum(t == p for t, p in naming)
    metrics["spider_val_naming_accuracy"] = round(ok / len(naming), 4) if naming else None
    metrics["spider_val_naming_bodies"] = len(naming)
    metrics["spider_val_naming_slices_all_correct"] = (
        round(slices_all_ok / slices_named, 4) if slices_named else None)
    metrics["spider_val_naming_slices"] = n_visible
    metrics["spider_val_naming_wrong_in_flagged_studies"] = (
        f"{wrong_flagged} of {wrong_total}")
    # how selective that flag is: the share of all scored slices that carry it
    metrics["spider_val_naming_slices_flagged"] = f"{slices_flagged} of {n_visible}"
    metrics["spider_val_naming_per_patient"] = {
        str(k): round(float(np.mean(v)), 3) for k, v in sorted(naming_case.items()) if v}
    metrics["spider_val_naming_protocol"] = (
        "slices with >= 25 mm of grid below the lowest labelled disc; GT L5 = body above "
        "the lowest labelled disc (transitional anatomy not adjudicated); each GT L1-L5 "
        "body matched to the predicted body of largest IoU (>= 0.3) after "
        "core.segment.postprocess + core.labeling.label_vertebrae")
    metrics["spider_val_measurement_agreement"] = measurement_agreement(body_pairs)
    metrics["spider_val_measurement_agreement_corner_vote"] = measurement_agreement(
        body_pairs, combine="vote")
    metrics["spider_val_measurement_protocol"] = (
        "whole GT L1-L5 bodies of every val slice matched to the predicted body of largest "
        "IoU (>= 0.5); both masks measured by core.corners + core.morphometry at the model "
        "grid's 0.6 mm (SPIDER has no pixel spacing: mm figures assume 0.65 mm native "
        "pixels; ICC and ratios do not depend on it); predicted minus annotated; "
        "'_corner_vote': the same with the paper's corner rule (quadrilateral of best "
        "overlap) instead of the per-corner median")
    # Phantoms
    try:
        from spineviewer.synth.training import train_sample
        rng = np.random.default_rng(phantom_seed)
        pd_, sd_ = [], []
        for _ in range(n_phantoms):
            img, tgt = train_sample(rng)
            cls = pred.logits(img).argmax(0)
            pd_.append(dice(cls, tgt, 1))
            s = dice(cls, tgt, 2)
            if not np.isnan(s):
                sd_.append(s)
        metrics["phantom_body_dice_mean"] = round(float(np.nanmean(pd_)), 4)
        metrics["phantom_body_dice_min"] = round(float(np.nanmin(pd_)), 4)
        metrics["phantom_sacrum_dice_mean"] = round(float(np.mean(sd_)), 4) if sd_ else None
        metrics["phantom_slices"] = n_phantoms
        metrics["phantom_seed"] = phantom_seed
    except ImportError as e:  # pragma: no cover
        metrics["phantom_pending"] = str(e)
    held = (read_card_recipe(model_path).get("held_out_train_patients") or [])
    if held:
        metrics.update(heldout_naming(pred, spider_root, held))
    metrics["evaluated_with"] = "onnxruntime CPU"
    metrics["evaluation_seconds"] = round(time.time() - t0, 1)
    print(json.dumps(metrics, indent=1))
    if write_card:
        _merge_card_metrics(Path(model_path), metrics)
    return metrics


def read_card_recipe(model_path: str | Path) -> dict[str, Any]:
    """The ``recipe`` of the card beside ``model_path`` ({} without a card)."""
    card = Path(model_path).with_suffix(".json")
    if not card.exists():
        return {}
    return json.loads(card.read_text(encoding="utf-8")).get("recipe", {})


def label_slice(logits: np.ndarray, in_view: np.ndarray | None = None) -> Any:
    """The app's labelling (``core.labeling.Labelling``) of one slice's network logits."""
    from spineviewer.core.labeling import label_vertebrae
    from spineviewer.core.segment import postprocess

    cmap = postprocess(_softmax(logits), MODEL_SPACING_MM, TARGET_CLASSES)
    return label_vertebrae(cmap, TARGET_CLASSES, MODEL_SPACING_MM, in_view=in_view)


def heldout_naming(pred: Any, spider_root: str | Path, patients: list[int]) -> dict[str, Any]:
    """Level naming and its flag on the train patients the model's run withheld (unseen)."""
    per: dict[int, list[bool]] = {}
    slices = wrong_slices = wrong_flagged = right_flagged = 0
    for c, img, tgt, view in spider_val_pairs(spider_root, "train", with_view=True):
        if int(c.case) not in patients:
            continue
        gt, visible = gt_levels(tgt)
        if not visible:
            continue
        lab = label_slice(pred.logits(img), view)
        m = naming_matches(gt, lab.bodies)
        per.setdefault(int(c.case), []).extend(t == p for t, p in m)
        flagged = bool(set(lab.flags) & NAMING_FLAGS)
        slices += 1
        if any(t != p for t, p in m):
            wrong_slices += 1
            wrong_flagged += flagged
        else:
            right_flagged += flagged
    names = [x for v in per.values() for x in v]
    return {
        "spider_heldout_patients": sorted(patients),
        "spider_heldout_naming_accuracy": round(float(np.mean(names)), 4) if names else None,
        "spider_heldout_naming_per_patient": {str(k): round(float(np.mean(v)), 3)
                                              for k, v in sorted(per.items()) if v},
        "spider_heldout_misnamed_slices_flagged": f"{wrong_flagged} of {wrong_slices}",
        "spider_heldout_correct_slices_flagged": f"{right_flagged} of {slices - wrong_slices}",
    }


def body_measurements(mask: np.ndarray, combine: str = "median",
                      si_hint: tuple[float, float] | None = None) -> list[float]:
    """AH, PH, MH, SC, IC (mm), VA (deg), wedge and biconcavity ratio of one model-grid body.

    ``si_hint`` is the column's direction at the body (``core.corners.column_directions``), as
    the app passes it.
    """
    from spineviewer.core.corners import find_corners
    from spineviewer.core.morphometry import measure

    sp = (MODEL_SPACING_MM, MODEL_SPACING_MM)
    r = find_corners(mask, spacing_mm=sp, combine=combine, si_hint=si_hint)
    m = measure(r.corners_rc, r.outline_rc, sp)
    return [m.AH_mm, m.PH_mm, m.MH_mm, m.SC_mm, m.IC_mm, m.VA_deg,
            m.AH_mm / m.PH_mm, m.MH_mm / m.PH_mm]


AGREEMENT_NAMES = ("AH_mm", "PH_mm", "MH_mm", "SC_mm", "IC_mm", "VA_deg", "wedge", "biconcavity")


def measurement_agreement(pairs: list[tuple], combine: str = "median") -> dict[str, Any]:
    """ICC(2,1), bias and 95% limits of the app's measurements on matched body masks.

    ``pairs`` holds (annotated body, predicted body) masks in the model grid, optionally
    followed by each one's column direction (``_matched_bodies``: the annotated column's for
    the annotated mask, the labelled bodies' for the predicted one, as the app measures);
    both are measured by the same corner and morphometry code, so the figures show how far
    the network's masks move the numbers on real MRI. ``combine`` is the corner rule
    (``core.corners``).
    """
    from spineviewer.core.agreement import bland_altman, icc

    rows = []
    for gt_mask, pred_mask, *hints in pairs:
        gt_hint, pred_hint = hints if hints else (None, None)
        try:
            rows.append((body_measurements(gt_mask, combine, gt_hint),
                         body_measurements(pred_mask, combine, pred_hint)))
        except ValueError:
            continue
    out: dict[str, Any] = {"bodies": len(rows)}
    if len(rows) < 3:
        return out
    g = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    for i, name in enumerate(AGREEMENT_NAMES):
        ba = bland_altman(p[:, i], g[:, i])
        with np.errstate(invalid="ignore", divide="ignore"):
            value = float(icc(np.stack([g[:, i], p[:, i]], 1)).icc2_1)
        out[name] = {"icc2_1": round(value, 3) if np.isfinite(value) else None,
                     "bias": round(ba["bias"], 3),
                     "loa": [round(ba["loa_low"], 3), round(ba["loa_high"], 3)]}
    return out


def _matched_bodies(gt: list[tuple[str, np.ndarray]], pred_bodies: list[Any],
                    min_iou: float = 0.5) -> list[tuple]:
    """Whole GT L1-L5 bodies and their best-overlapping predicted body.

    Each item is (annotated mask, predicted mask, annotated column direction, predicted column
    direction): the directions (``core.corners.column_directions``, from the annotated bodies'
    centroids and from the labelled bodies' as ``core.pipeline.find_all_corners`` takes them)
    tell a steep body's SI axis, as in the app.
    """
    from scipy import ndimage

    from spineviewer.core.corners import column_directions

    def directions(masks: list[np.ndarray]) -> list:
        cents = [ndimage.center_of_mass(m) for m in masks]
        order = np.argsort([c[0] for c in cents], kind="stable")
        dirs = column_directions([cents[i] for i in order])
        out_dirs: list = [None] * len(masks)
        for rank, i in enumerate(order):
            out_dirs[i] = dirs[rank]
        return out_dirs

    gt_dirs = directions([mk for _, mk in gt])
    pred_dirs = directions([b.mask for b in pred_bodies]) if pred_bodies else []
    pred_dir = {id(b): d for b, d in zip(pred_bodies, pred_dirs)}
    out = []
    for (level, mk), g_dir in zip(gt, gt_dirs):
        if level not in LUMBAR or mk[[0, -1]].any() or mk[:, [0, -1]].any():
            continue
        best = _best_overlap(mk, pred_bodies, min_iou)
        if best is not None:
            out.append((mk, best.mask, g_dir, pred_dir[id(best)]))
    return out


def _merge_card_metrics(model_path: Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics`` into the card (if the card's sha256 is this file's)."""
    from spineviewer.train.card import merge_metrics

    merge_metrics(model_path, metrics)


def targets_montage(spider_root: str | Path, out: str | Path, n: int = 8, seed: int = 1) -> Path:
    """PNG montage of derived targets (red body, green disc, blue ignore, yellow canal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = read_manifest(spider_root, "train")
    rng = np.random.default_rng(seed)
    sel = [cases[i] for i in rng.choice(len(cases), n, replace=False)]
    fig, axs = plt.subplots(1, n, figsize=(4 * n, 5))
    for ax, c in zip(np.atleast_1d(axs), sel):
        img, m = load_spider(spider_root, c)
        t = derive_spider_target(m)
        ax.imshow(img, cmap="gray")
        ov = np.zeros(t.shape + (4,))
        ov[m == 3] = (1, 1, 0, 0.3)
        ov[t == 1] = (1, 0, 0, 0.4)
        ov[t == 3] = (0, 1, 0, 0.4)
        ov[t >= BG_OR_SACRUM] = (0, 0, 1, 0.25)
        ax.imshow(ov)
        ax.set_title(c.file, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=60)
    plt.close(fig)
    return Path(out)
