"""Measure the rule that chooses among the three corner strategies (development figures).

For the bodies of phantom slices (truth masks, segmentation bypassed; renderer-independent)
every strategy's corners are compared with the truth corners: how often each strategy is the
closest (it "wins"), how often the paper's vote (best IoU with the mask, ties by preference)
picks each, and the mean corner error of each strategy, of the vote and of the per-corner
median (the app's rule). Optional tilt adds a rotation of the whole slice (steep L5/sacrum).

Run: ``python benchmarks/corner_rule.py [--n 40] [--seed 5150] [--tilt 0]``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spineviewer.core.corners import STRATEGIES, column_directions, find_corners


def _err(corners: dict, truth: dict, sp: np.ndarray) -> float:
    return float(np.mean([np.hypot(*((np.asarray(corners[k]) - np.asarray(truth[k])) * sp))
                          for k in truth]))


def main(argv: list[str] | None = None) -> int:
    from scipy import ndimage

    from spineviewer.synth.params import INSTANCE_IDS
    from spineviewer.synth.phantom import make_slice

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="phantom slices")
    ap.add_argument("--seed", type=int, default=5150)
    ap.add_argument("--tilt", type=float, default=0.0, help="extra rotation of each slice, deg")
    args = ap.parse_args(argv)
    wins, votes, errs = Counter(), Counter(), {k: [] for k in (*STRATEGIES, "vote", "median")}
    n_bodies = 0
    for i in range(args.n):
        sl = make_slice(np.random.default_rng([args.seed, i]))
        sp = np.asarray(sl.spacing_mm, float)
        inst = sl.instance_map
        centre = (np.array(inst.shape) - 1) / 2.0
        rot = np.radians(args.tilt)
        r = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
        if args.tilt:       # output o shows input r^-1 (o - centre) + centre
            inst = ndimage.affine_transform(inst, r.T, offset=centre - r.T @ centre, order=0)

        def move(p, r=r, centre=centre):          # (row, col) into the rotated slice
            return tuple(r @ (np.asarray(p, float) - centre) + centre)

        bodies = [(t, inst == INSTANCE_IDS[t.level]) for t in sl.truth]
        bodies = [(t, m) for t, m in bodies if m.sum() > 200]
        cents = [ndimage.center_of_mass(m) for _, m in bodies]
        for (t, m), hint in zip(bodies, column_directions(cents), strict=True):
            truth = {k: move(v) for k, v in t.corners_rc.items()}
            res = find_corners(m, tuple(sp), si_hint=hint)
            vote = find_corners(m, tuple(sp), si_hint=hint, combine="vote")
            e = {k: _err(res.candidates[k][0], truth, sp) for k in STRATEGIES}
            for k in STRATEGIES:
                errs[k].append(e[k])
            errs["median"].append(_err(res.corners_rc, truth, sp))
            errs["vote"].append(_err(vote.corners_rc, truth, sp))
            wins[min(e, key=e.get)] += 1
            votes[vote.strategy] += 1
            n_bodies += 1
    print(f"{n_bodies} bodies from {args.n} phantom slices (seed {args.seed}, tilt "
          f"{args.tilt:+.0f} deg; development figures)")
    print("strategy         closest  vote picks  mean err mm  p95 err mm  max err mm")
    for k in (*STRATEGIES, "vote", "median"):
        e = np.asarray(errs[k])
        print(f"{k:16s} {wins.get(k, 0):7d}  {votes.get(k, 0) if k in STRATEGIES else '':>10}"
              f"  {e.mean():11.3f}  {np.percentile(e, 95):10.3f}  {e.max():10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
