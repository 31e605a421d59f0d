"""DEVELOPMENT figures: does the endplate refinement bring heights closer to real annotations?

On SPIDER (real sagittal T2; `val` never trained on, `train` trained on), each patient's centre
slice is segmented by the shipped model and labelled; every whole annotated L1-L5 body is
paired with its best-overlapping predicted body (IoU >= 0.5). Both are measured by the same
corner and morphometry code; the predicted body once from its mask's edge and once after
``core.endplates.refine_endplates`` on the image. Prints ICC(2,1), bias and 95% limits of
agreement of AH and PH against the annotated masks' heights (issue 14's real-MRI target:
bias within +-0.5 mm, limits within +-2.5 mm). SPIDER images are 8-bit PNGs, the annotators'
edge convention is theirs: read the figures as development figures, not truth. Usage::

    python benchmarks/dev_spider_refine.py --spider ../shared/data/spider_t2space
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spider", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from dev_every_slice import patient_series

    from spineviewer.core.agreement import bland_altman, icc
    from spineviewer.core.corners import find_corners
    from spineviewer.core.endplates import refine_endplates
    from spineviewer.core.morphometry import measure
    from spineviewer.core.segment import SegmentationModel, segment_volume
    from spineviewer.core.slices import label_series
    from spineviewer.train.evaluate import _matched_bodies, gt_levels

    model = SegmentationModel(threads=args.threads, provider="cpu")
    names = list(model.class_names)
    sp = (0.6, 0.6)
    for split in ("val", "train"):
        truth, plain, refined = [], [], []
        for x, tgt, view, centre in patient_series(args.spider, split).values():
            cmap, _ = segment_volume(model, x[centre:centre + 1], class_names=names,
                                     spacing_mm=0.6)
            lab = label_series(cmap, names, spacing_mm=0.6, centre=0, in_view=view,
                               mode="centre", series_slices=len(x))
            gt, _ = gt_levels(tgt[centre])
            for gm, pm, g_dir, p_dir in _matched_bodies(gt, lab.bodies):
                try:
                    a = find_corners(gm, spacing_mm=sp, si_hint=g_dir)
                    b = find_corners(pm, spacing_mm=sp, si_hint=p_dir)
                    r = refine_endplates(x[centre], b.corners_rc,
                                         np.asarray(b.outline_rc, float), sp)
                    ms = [measure(a.corners_rc, a.outline_rc, sp),
                          measure(b.corners_rc, b.outline_rc, sp),
                          measure(r.corners_rc, r.outline_rc, sp)]
                except (ValueError, RuntimeError):
                    continue
                for store, m in zip((truth, plain, refined), ms):
                    store.append([m.AH_mm, m.PH_mm])
        g = np.array(truth)
        print(f"\nSPIDER {split} ({'never trained on' if split == 'val' else 'trained on'}), "
              f"{len(g)} bodies, against the annotated masks (DEVELOPMENT figures)")
        for label, arr in (("mask edge", np.array(plain)), ("refined on the image", np.array(refined))):
            cells = []
            for i, name in enumerate(("AH", "PH")):
                ba = bland_altman(arr[:, i], g[:, i])
                v = icc(np.stack([g[:, i], arr[:, i]], 1)).icc2_1
                cells.append(f"{name} ICC {v:.3f} bias {ba['bias']:+.2f} mm, LoA "
                             f"{ba['loa_low']:+.2f} to {ba['loa_high']:+.2f}")
            print(f"  {label:22s} " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
