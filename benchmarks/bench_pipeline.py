"""Per-stage time of the whole analysis for one phantom study (prints figures).

    python benchmarks/bench_pipeline.py [--repeats 5] [--threads 2] [--truth-masks]

Stages: index, select, load, preprocess, segment (ONNX inference + post-processing), label,
corners, morphometry + Genant. The first run also creates the ONNX session (reported apart).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from spineviewer.core import pipeline
from spineviewer.synth.study import write_study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--truth-masks", action="store_true", help="bypass the network")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        truth = write_study(Path(tmp) / "study", 1234, n_slices=15)
        labels = np.load(Path(truth.out_dir) / "truth_labels.npy") if args.truth_masks else None
        t0 = time.perf_counter()
        if labels is None:
            pipeline.get_model(threads=args.threads)
        print(f"session creation: {time.perf_counter() - t0:.3f} s")
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = pipeline.analyze_study(truth.dicom_dir, threads=args.threads,
                                       masks_override=labels)
            runs.append((time.perf_counter() - t0, r.timings_s))
    print(f"study: {len(truth.vertebrae)} truth bodies, {truth.n_slices} slices, "
          f"{truth.matrix[0]}x{truth.matrix[1]}, repeats {args.repeats}, "
          f"threads {args.threads}, model {r.model.get('name')}")
    print(f"{'stage':<14}{'median ms':>12}{'min ms':>10}")
    for stage in pipeline.STAGES:
        vals = [t.get(stage, 0.0) * 1000 for _, t in runs]
        print(f"{stage:<14}{statistics.median(vals):>12.1f}{min(vals):>10.1f}")
    post = [sum(t.get(s, 0.0) for s in ("corners", "morphometry", "genant")) * 1000
            for _, t in runs]
    print(f"{'corners+morph+genant':<22}{statistics.median(post):>4.1f} ms (target < 100 ms)")
    print(f"{'total':<14}{statistics.median(w for w, _ in runs) * 1000:>12.1f}")


if __name__ == "__main__":
    main()
