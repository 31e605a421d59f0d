"""Batch throughput against separate `analyze` processes, worker memory, no-op re-run time.

    python benchmarks/bench_batch.py [--n 20] [--seed 11] [--analyze-n 8] [--slices N]

Writes ``--n`` varied phantom studies (synth.write_cohort: vendors, matrices, 11-17 slices,
distractor series) plus two broken folders, then times, each as a fresh process:
  * separate ``spineviewer analyze STUDY --csv --json`` processes, one at a time and two at a
    time (on the first ``--analyze-n`` studies);
  * ``spineviewer batch`` with 1 and 2 workers (fresh output folders);
  * the same 2-worker batch again (nothing to do).
Prints studies per minute, the ratios (targets: batch >= 2x separate processes; no-op re-run
< 10 % of the first run) and each worker's peak resident memory from summary.json.
Wall times include process start-up, which is the point of the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> float:
    """Run ``spineviewer ARGS`` as a fresh process; return its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spineviewer.cli", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _archive(base: Path, n: int, seed: int, slices: int | None) -> list[Path]:
    from spineviewer.synth.study import write_cohort

    truths = write_cohort(base / "gen", n, seed, n_slices=slices)
    root = base / "archive"
    root.mkdir()
    for k, t in enumerate(truths):
        os.rename(t.dicom_dir, root / f"study_{k:03d}")
    (root / "broken_a").mkdir()
    (root / "broken_a" / "IM0001.dcm").write_bytes(os.urandom(4096))
    (root / "broken_b").mkdir()
    first = sorted((root / "study_000").rglob("*"))
    data = next(p for p in first if p.is_file()).read_bytes()
    (root / "broken_b" / "cut.dcm").write_bytes(data[: len(data) // 3])
    return [root / f"study_{k:03d}" for k in range(n)]


def _analyze_rate(studies: list[Path], out: Path, parallel: int) -> float:
    def one(k_study):
        k, study = k_study
        return _cli("analyze", str(study), "-q", "--csv", str(out / f"{k}.csv"),
                    "--json", str(out / f"{k}.json"), "--force")

    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, enumerate(studies)))
    return 60 * len(studies) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="studies in the archive")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--analyze-n", type=int, default=8,
                    help="studies timed with separate analyze processes")
    ap.add_argument("--slices", type=int, default=None,
                    help="T2 slices per study (default: the cohort's 11-17)")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        studies = _archive(base, args.n, args.seed, args.slices)
        print(f"archive: {args.n} phantom studies ({args.slices or '11-17'} slices) + 2 broken "
              f"folders "
              f"(written in {time.perf_counter() - t0:.1f} s)")
        sample = studies[: args.analyze_n]
        seq = _analyze_rate(sample, base / "single", 1)
        par = _analyze_rate(sample, base / "single", 2)
        print(f"separate analyze processes, 1 at a time: {seq:6.1f} studies/min "
              f"({len(sample)} studies)")
        print(f"separate analyze processes, 2 at a time: {par:6.1f} studies/min")
        first = {}
        for workers in (1, 2):
            out = base / f"out{workers}"
            wall = _cli("batch", str(base / "archive"), "--out", str(out), "--workers",
                        str(workers), "-q")
            first[workers] = wall
            summary = json.loads((out / "summary.json").read_text())
            rate = 60 * summary["done"] / wall
            peaks = ", ".join(f"{v:.0f}" for v in summary["worker_peak_rss_mb"].values())
            print(f"batch --workers {workers}: {rate:6.1f} studies/min ({summary['done']} "
                  f"analysed, {summary['failed']} failed, {wall:.1f} s wall); "
                  f"x{rate / seq:.2f} vs analyze 1 at a time, x{rate / par:.2f} vs 2 at a "
                  f"time; worker peak RSS MiB: {peaks}")
        again = _cli("batch", str(base / "archive"), "--out", str(base / "out2"),
                     "--workers", "2", "-q")
        summary = json.loads((base / "out2" / "summary.json").read_text())
        print(f"no-op re-run (--workers 2): {again:.2f} s = {100 * again / first[2]:.1f} % of "
              f"the first run ({summary['skipped']} skipped, {summary['done']} analysed)")
    print(f"load average {os.getloadavg()[0]:.2f} at end (the machine is shared)")


if __name__ == "__main__":
    main()
