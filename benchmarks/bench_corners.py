"""Time corners + morphometry (+ Genant) per body and per study of six bodies.

Run: ``python benchmarks/bench_corners.py [--repeats N] [--seed S]``. The bodies are the
T12..L5 instance masks of a phantom slice (``spineviewer.synth``, segmentation bypassed), or
analytic wedges when the phantom is not importable. Prints the median and the best of the
repeats (the best is the figure least disturbed by other load on the machine), the study's
CPU time (its cost on an idle machine; single-threaded code) and the error of the
measurements against the phantom's truth.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from spineviewer.core.corners import find_corners
from spineviewer.core.morphometry import measure


def phantom_bodies(seed: int):
    """[(level, mask, spacing, truth or None)] of one phantom slice."""
    from spineviewer.synth.params import INSTANCE_IDS
    from spineviewer.synth.phantom import make_slice

    sl = make_slice(np.random.default_rng(seed))
    return [(t.level, sl.instance_map == INSTANCE_IDS[t.level], sl.spacing_mm, t)
            for t in sl.truth]


def analytic_bodies():
    """Six tilted wedges in a 448 x 320 grid at 0.6 mm (fallback without the phantom)."""
    from skimage import draw

    out = []
    for i, (ah, tilt) in enumerate(zip((24, 25, 22, 26, 27, 28), (-12, -6, 0, 6, 12, 18),
                                       strict=True)):
        th = np.radians(tilt)
        uv = np.array([[-19, -ah / 2], [19, -14], [19, 14], [-19, ah / 2]]) / 0.6
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        uv = uv @ rot.T
        rc = np.stack([40 + 65 * i + uv[:, 1], 160 + uv[:, 0]], axis=1)
        mask = np.zeros((448, 320), bool)
        rr, cc = draw.polygon(rc[:, 0], rc[:, 1], mask.shape)
        mask[rr, cc] = True
        out.append((f"B{i}", mask, (0.6, 0.6), None))
    return out


def genant_step():
    """A callable running the Genant classification of a column, or None if unavailable."""
    try:
        from spineviewer.core.genant import classify, load_reference_table

        table = load_reference_table()
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what it could not time
        print(f"(Genant not timed: {exc})")
        return None
    return lambda levels, ms, ovs: classify(levels, ms, table, corner_overlaps=ovs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    try:
        bodies = phantom_bodies(args.seed)
        source = f"phantom slice, seed {args.seed}"
    except ImportError:
        bodies = analytic_bodies()
        source = "analytic wedges"
    bodies = bodies[:6]
    genant = genant_step()
    per_body: dict[str, list[float]] = {b[0]: [] for b in bodies}
    corners_t, morph_t, genant_t, study_t, cpu_t = [], [], [], [], []
    for _ in range(args.repeats):
        t_study, c_study = time.perf_counter(), time.process_time()
        ms, ovs, tc, tm = [], [], 0.0, 0.0
        for level, mask, sp, _truth in bodies:
            t0 = time.perf_counter()
            res = find_corners(mask, sp)
            t1 = time.perf_counter()
            ms.append(measure(res.corners_rc, res.outline_rc, sp))
            t2 = time.perf_counter()
            ovs.append(res.overlap)
            per_body[level].append(t2 - t0)
            tc, tm = tc + t1 - t0, tm + t2 - t1
        t3 = time.perf_counter()
        if genant is not None:
            genant([b[0] for b in bodies], ms, ovs)
        genant_t.append(time.perf_counter() - t3)
        corners_t.append(tc)
        morph_t.append(tm)
        study_t.append(time.perf_counter() - t_study)
        cpu_t.append(time.process_time() - c_study)

    def fmt(xs):
        return f"median {1e3 * statistics.median(xs):7.1f} ms   best {1e3 * min(xs):7.1f} ms"

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(bodies)} bodies ({source}), {args.repeats} repeats, "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")
    for level, ts in per_body.items():
        print(f"  {level:4s} corners+morphometry  {fmt(ts)}")
    print(f"study corners            {fmt(corners_t)}")
    print(f"study morphometry        {fmt(morph_t)}")
    print(f"study Genant             {fmt(genant_t)}")
    print(f"study total              {fmt(study_t)}   (goal < 100 ms)")
    print(f"study total, CPU time    {fmt(cpu_t)}   (what it costs without other load)")
    if bodies[0][3] is not None:
        print("errors against the phantom truth (measured - true):")
        for (level, _m, _sp, t), m in zip(bodies, ms, strict=True):
            print(f"  {level:4s} AH {m.AH_mm - t.AH_mm:+.2f}  PH {m.PH_mm - t.PH_mm:+.2f}  "
                  f"VA {m.VA_deg - t.VA_deg:+.2f}  SC {m.SC_mm - t.SC_mm:+.2f}  "
                  f"IC {m.IC_mm - t.IC_mm:+.2f} mm/deg")


if __name__ == "__main__":
    main()
