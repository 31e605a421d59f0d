"""Whole-process time of ``spineviewer analyze`` (every slice, per-vertebra; and the paper's
centre-slice mode) against a bare process that reads the same series with pydicom and runs
the model once per slice (prints figures; issue 13's target: per-vertebra <= 2 x bare).

    python benchmarks/bench_slices.py [--repeats 3] [--slices 15] [--threads 2]

Each figure is the median wall time of fresh Python processes (start-up and imports
included), on a phantom study with a 381 mm field of view (512 x 512 pixels; ``--fov`` adds
others), with the processes' CPU time (user + system, all threads) beside it. The app runs
the network on the 0.6 mm grid, the bare process on the native pixels: at 381 mm the app's
grid has 1.56 x the bare run's pixels, at 280 mm 0.85 x.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = r"""
import sys, glob
import numpy as np, pydicom, onnxruntime as ort
from spineviewer.core.segment import default_model_path
files = [f for f in glob.glob(sys.argv[1] + "/**/*", recursive=True) if f.endswith(".dcm")]
dss = [pydicom.dcmread(f) for f in files]
dss = [d for d in dss if d.SeriesInstanceUID == sys.argv[2]]
opts = ort.SessionOptions(); opts.intra_op_num_threads = int(sys.argv[3])
s = ort.InferenceSession(str(default_model_path()), opts, providers=["CPUExecutionProvider"])
for d in dss:
    x = d.pixel_array.astype(np.float32) / 2500.0
    h, w = (-(-n // 16) * 16 for n in x.shape)
    x = np.pad(x, ((0, h - x.shape[0]), (0, w - x.shape[1])))
    s.run(None, {"image": x[None, None]})
print(len(dss))
"""


def _time(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one process."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slices", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fov", type=float, nargs="+", default=[381.0],
                    help="fields of view (mm) of the 512 x 512 phantom series")
    args = ap.parse_args()
    for fov in args.fov:
        _bench(args, fov)


def _bench(args, fov: float) -> None:
    from spineviewer.synth.study import write_study

    with tempfile.TemporaryDirectory() as tmp:
        truth = write_study(Path(tmp) / "s", 2024, n_slices=args.slices, matrix=(512, 512),
                            pixel_spacing_mm=fov / 512, distractors=False)
        d = str(truth.dicom_dir)
        py = sys.executable
        cmds = {
            "bare (pydicom + model per slice)": [py, "-c", BARE, d, truth.t2_series_uid,
                                                 str(args.threads)],
            "analyze --slice-mode per-vertebra": [py, "-m", "spineviewer", "analyze", d, "-q",
                                                  "--threads", str(args.threads),
                                                  "--json", f"{tmp}/a.json", "--force"],
            "analyze --slice-mode centre": [py, "-m", "spineviewer", "analyze", d, "-q",
                                            "--slice-mode", "centre", "--threads",
                                            str(args.threads), "--json", f"{tmp}/b.json",
                                            "--force"],
        }
        times = {k: [] for k in cmds}
        for _ in range(args.repeats):
            for k, c in cmds.items():
                times[k].append(_time(c))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in times.items()}
    bare = med["bare (pydicom + model per slice)"][0]
    print(f"phantom study: {args.slices} slices, 512 x 512, {fov:g} mm field of view, "
          f"threads {args.threads}, repeats {args.repeats} (median wall time per process; "
          "CPU time of all its threads)")
    for k, (v, cpu) in med.items():
        print(f"  {k:<36}{v:7.2f} s   {v / bare:5.2f} x bare   CPU {cpu:5.2f} s")


if __name__ == "__main__":
    main()
