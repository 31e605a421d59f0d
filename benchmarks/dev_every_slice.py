"""DEVELOPMENT figures for issue 13 (every slice, per-vertebra slices, QC, column logic).

Centre-slice mode (the paper) against per-vertebra mode, same model, same code otherwise:

* SPIDER val (8 patients never trained on) and the 5 SPIDER train patients the shipped model
  held out of training: each patient's slices are stacked as one series (one framing for all
  of them: the centre slice's lowest disc at the evaluation row, as ``train.evaluate``),
  segmented in one batch, labelled by ``core.slices.label_series``, checked by ``core.qc``.
  Every reported body is matched to the annotated body of largest IoU (>= 0.3) *on its own
  measurement slice*; for annotated L1-L5 it reports naming (right / matched), misnamed
  bodies without any review flag, body Dice, QC flags, and reported bodies that match no
  annotated body. Patients whose centre slice shows < 25 mm below the lowest disc are
  skipped (as the model card's naming protocol).
* Phantom cohort (``spineviewer.synth``; patients off-centre by up to +-10 mm and/or
  scoliotic up to 10 mm): share of L1-L5 measured on the slice nearest their own
  mid-sagittal plane (truth ``mid_slice_by_level``), naming, false fracture calls and
  "not assessable" calls.

These are development figures (the choices in the code were made looking at them), not a
test of the app. Usage::

    python benchmarks/dev_every_slice.py --spider ../shared/data/spider_t2space [--phantoms 18]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

LUMBAR = ("L1", "L2", "L3", "L4", "L5")
REVIEW = {"needs_review", "label_uncertain"}


def patient_series(root, split, patients=None):
    """{case: (x (N,H,W), targets (N,H,W), in_view (H,W), centre position)}."""
    from spineviewer.train.data import (
        MODEL_SHAPE,
        MODEL_SPACING_MM,
        SPIDER_EVAL_SPACING_MM,
        derive_spider_target,
        load_spider,
        model_grid_affine,
        read_manifest,
        resample_pair,
    )
    from spineviewer.train.evaluate import LOWEST_DISC_ROW

    by_case = defaultdict(list)
    for c in read_manifest(root, split):
        if patients is None or int(c.case) in patients:
            by_case[int(c.case)].append(c)
    out = {}
    zoom = MODEL_SPACING_MM / SPIDER_EVAL_SPACING_MM
    for case, cs in sorted(by_case.items()):
        cs.sort(key=lambda c: c.slice)
        centre = min(range(len(cs)), key=lambda i: abs(cs[i].central_rank))
        loaded = [load_spider(root, c) for c in cs]
        tg = [derive_spider_target(m) for _, m in loaded]
        m0 = loaded[centre][1]
        disc_rows = np.nonzero((tg[centre] == 3).any(axis=1))[0]
        shift_r = 0.0
        if disc_rows.size:
            src_c = disc_rows.max() - zoom * (LOWEST_DISC_ROW - (MODEL_SHAPE[0] - 1) / 2)
            shift_r = (src_c - (m0.shape[0] - 1) / 2) * SPIDER_EVAL_SPACING_MM
        xs, ts = [], []
        for (img, m), t in zip(loaded, tg):
            if m.shape != m0.shape:
                continue
            mat, off = model_grid_affine(m.shape, SPIDER_EVAL_SPACING_MM, 0.0, (shift_r, 0.0))
            a, b = resample_pair(img.astype(np.float32) / 255.0, t, mat, off)
            xs.append(np.clip(a, 0, 1))
            ts.append(b)
        ones, _ = resample_pair(np.ones(m0.shape, np.float32), tg[centre], mat, off)
        out[case] = (np.stack(xs).astype(np.float32), np.stack(ts), ones > 0.5, centre)
    return out


def evaluate_spider(model, series, label):
    from spineviewer.core.qc import check_all
    from spineviewer.core.segment import segment_volume
    from spineviewer.core.slices import label_series
    from spineviewer.train.evaluate import NAMING_FLAGS, gt_levels

    names = list(model.class_names)
    stats = {m: defaultdict(int) for m in ("centre", "per-vertebra")}
    dices = {m: [] for m in stats}
    t_seg = 0.0
    for x, tgt, view, centre in series.values():
        _, visible = gt_levels(tgt[centre])
        if not visible:
            stats["centre"]["patients_skipped"] += 1
            continue
        t0 = time.perf_counter()
        cmaps, margins = segment_volume(model, x, class_names=names, spacing_mm=0.6)
        t_seg += time.perf_counter() - t0
        for mode, s in stats.items():
            lab = label_series(cmaps, names, spacing_mm=0.6, centre=centre, in_view=view,
                               mode=mode)
            check_all(lab.bodies, margins)
            study_flag = bool(set(lab.flags) & NAMING_FLAGS)
            s["patients"] += 1
            for b in lab.bodies:
                gt, _ = gt_levels(tgt[b.position])
                best, iou = None, 0.0
                for lv, mk in gt:
                    inter = np.count_nonzero(mk & b.mask)
                    if inter:
                        v = inter / np.count_nonzero(mk | b.mask)
                        if v > iou:
                            best, iou = (lv, mk), v
                if best is None or iou < 0.3:
                    s["reported_unmatched"] += 1
                    continue
                lv, mk = best
                if lv not in LUMBAR:
                    continue
                s["lumbar_matched"] += 1
                ok = b.level == lv
                s["named_right"] += ok
                flagged = bool(set(b.flags) & REVIEW) or study_flag
                s["misnamed_unflagged"] += (not ok) and not flagged
                s["qc_flagged"] += "segmentation_uncertain" in b.flags
                dices[mode].append(2 * np.count_nonzero(mk & b.mask)
                                   / (mk.sum() + b.mask.sum()))
    print(f"\n{label} (DEVELOPMENT figures), segmentation {t_seg:.1f} s")
    for mode, s in stats.items():
        d = np.mean(dices[mode]) if dices[mode] else float("nan")
        print(f"  {mode:13s} patients {s['patients']}: L1-L5 named right "
              f"{s['named_right']}/{s['lumbar_matched']}, misnamed without a review flag "
              f"{s['misnamed_unflagged']}, body Dice (own slice) {d:.3f}, QC flagged "
              f"{s['qc_flagged']}, reported bodies matching no annotation "
              f"{s['reported_unmatched']}")


def evaluate_phantoms(n, seed, threads):
    from spineviewer.core.pipeline import analyze_study
    from spineviewer.synth.params import PhantomParams
    from spineviewer.synth.study import write_study

    rng = np.random.default_rng(seed)
    stats = {m: defaultdict(int) for m in ("centre", "per-vertebra")}
    times = {m: [] for m in stats}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            kind = i % 3
            params = PhantomParams(
                midline_offset_mm=float(rng.uniform(-10, 10)) if kind != 1 else 0.0,
                scoliosis_mm=float(rng.uniform(4, 10)) * rng.choice([-1, 1]) if kind else 0.0)
            if rng.uniform() < 0.3:
                params.deformities = {str(rng.choice(LUMBAR)): (
                    str(rng.choice(["wedge", "biconcave", "crush"])), int(rng.integers(1, 4)))}
            truth = write_study(Path(tmp) / f"p{i}", seed + i, params=params,
                                n_slices=int(rng.choice([11, 13, 15])), distractors=False)
            fx = {lv for lv, (_, g) in params.deformities.items() if g > 0}
            for mode, s in stats.items():
                t0 = time.perf_counter()
                r = analyze_study(truth.dicom_dir, threads=threads, slice_mode=mode)
                times[mode].append(time.perf_counter() - t0)
                got = {v.level: v for v in r.vertebrae}
                for lv in LUMBAR:
                    s["bodies"] += 1
                    v = got.get(lv)
                    if v is None:
                        s["missing"] += 1
                        continue
                    s["mid_slice_right"] += v.measurement_slice == truth.mid_slice_by_level[lv]
                    s["not_assessable"] += v.deformity == "not assessable - review"
                    if lv not in fx:
                        s["healthy"] += 1
                        s["false_fracture"] += bool(v.fracture)
                    else:
                        s["fractured"] += 1
                        s["fracture_found"] += bool(v.fracture)
    print(f"\nPhantom cohort, seed {seed}, {n} studies (DEVELOPMENT figures)")
    for mode, s in stats.items():
        print(f"  {mode:13s} L1-L5 on their own mid-sagittal slice {s['mid_slice_right']}/"
              f"{s['bodies']} (missing {s['missing']}), fractures called "
              f"{s['fracture_found']}/{s['fractured']}, false fracture calls "
              f"{s['false_fracture']}/{s['healthy']}, not assessable {s['not_assessable']}, "
              f"median {np.median(times[mode]):.1f} s per study")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spider", help="SPIDER root (images/, masks/, manifest.csv)")
    ap.add_argument("--phantoms", type=int, default=18)
    ap.add_argument("--seed", type=int, default=1313)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from spineviewer.core.segment import SegmentationModel
    from spineviewer.train.evaluate import read_card_recipe

    model = SegmentationModel(threads=args.threads, provider="cpu")
    if args.spider:
        evaluate_spider(model, patient_series(args.spider, "val"), "SPIDER val")
        held = read_card_recipe(model.path).get("held_out_train_patients") or []
        if held:
            evaluate_spider(model, patient_series(args.spider, "train", set(held)),
                            f"SPIDER train patients held out of training {held}")
    if args.phantoms:
        evaluate_phantoms(args.phantoms, args.seed, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
