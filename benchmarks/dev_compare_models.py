"""DEVELOPMENT figures: is a candidate model's real-MRI height agreement non-inferior to the
shipped model's? (the paired clause of the adoption rules in the model card).

Both ONNX models segment every SPIDER ``val`` slice (8-bit PNGs, real MRI, never trained on);
each labelled body is paired with its annotated body (``train.evaluate._matched_bodies``) and
both are measured by the app's corner and morphometry code, with the column's direction.
On the bodies both models matched, the script prints ICC(2,1) of AH and PH (and VA) against
the annotated masks for each model and the paired patient-bootstrap of the difference
(``core.agreement.paired_icc_difference``): a candidate is non-inferior by ``--margin`` when
the one-sided 95% lower bound of ICC(candidate) - ICC(shipped) lies above ``-margin``.

SPIDER ``val`` has 8 patients; the shipped model's patient-bootstrap SD of the ICC is about
0.04 (PH) and 0.10 (AH), which is why the rule compares the two models paired. Usage::

    python benchmarks/dev_compare_models.py models/spineviewer-unet-v4.onnx runs/x/x.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def body_rows(model_path: str, spider: str, threads: int) -> dict[tuple, tuple]:
    """(case, slice, level) -> (annotated measurements, predicted measurements)."""
    from spineviewer.train import evaluate as ev

    pred = ev.OnnxPredictor(model_path, threads)
    out = {}
    for c, img, tgt, view in ev.spider_val_pairs(spider, "val", with_view=True):
        gt, _ = ev.gt_levels(tgt)
        lab = ev.label_slice(pred.logits(img), view)
        for gm, pm, g_dir, p_dir in ev._matched_bodies(gt, lab.bodies):
            level = next(k for k, v in gt if v is gm)
            try:
                out[(int(c.case), str(c.slice), level)] = (
                    ev.body_measurements(gm, "median", g_dir),
                    ev.body_measurements(pm, "median", p_dir))
            except ValueError:
                continue
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shipped")
    ap.add_argument("candidate")
    ap.add_argument("--spider", default=str(ROOT.parent / "shared" / "data" / "spider_t2space"))
    ap.add_argument("--margin", type=float, default=0.02)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from spineviewer.core.agreement import paired_icc_difference
    from spineviewer.train.evaluate import AGREEMENT_NAMES

    a = body_rows(args.shipped, args.spider, args.threads)
    b = body_rows(args.candidate, args.spider, args.threads)
    keys = sorted(set(a) & set(b))
    print(f"SPIDER val (DEVELOPMENT figures): bodies matched by the shipped model {len(a)}, "
          f"by the candidate {len(b)}, by both {len(keys)}; patients "
          f"{len({k[0] for k in keys})}")
    cases = np.array([k[0] for k in keys])
    g = np.array([a[k][0] for k in keys])
    pa = np.array([a[k][1] for k in keys])
    pb = np.array([b[k][1] for k in keys])
    names = list(AGREEMENT_NAMES)
    for name in ("AH_mm", "PH_mm", "VA_deg"):
        i = names.index(name)
        r = paired_icc_difference(g[:, i], pa[:, i], pb[:, i], cases, n_boot=args.n_boot,
                                  seed=args.seed)
        verdict = "non-inferior" if r["lower_95_one_sided"] > -args.margin else "NOT shown"
        print(f"  {name:7s} ICC shipped {r['first']:.3f}, candidate {r['second']:.3f}; "
              f"difference {r['difference']:+.3f}, one-sided 95% lower bound "
              f"{r['lower_95_one_sided']:+.3f} -> {verdict} at margin {args.margin:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
