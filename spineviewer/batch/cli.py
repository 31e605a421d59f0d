"""``spineviewer batch``: options, progress (a bar on a terminal, lines in a log) and summary."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

from spineviewer import DISCLAIMER


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``batch`` subcommand on the main parser's subparsers."""
    b = sub.add_parser("batch", help="analyse every study under a folder tree (resumable)",
                       description="Analyse every study under ROOT (grouped by "
                       "StudyInstanceUID) into DIR: per-study JSON (and PDF/DICOM), one "
                       "results.csv, failures.csv and summary.json. Re-running skips the "
                       "studies whose files, model and options are unchanged.")
    b.add_argument("root", metavar="ROOT", help="archive folder to search (any depth)")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder")
    b.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core)")
    b.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster, e.g. tcp://host:8786 (needs the "
                        "[dask] extra; ROOT and DIR must be at the same path on every worker)")
    b.add_argument("--pdf", action="store_true", help="also write each study's PDF report")
    b.add_argument("--dicom", action="store_true",
                   help="also write each study's DICOM SEG, SR and presentation state")
    b.add_argument("--deidentify", action="store_true",
                   help="CSV, JSON and PDF without names, IDs or dates; UIDs pseudonymised")
    b.add_argument("--pseudonym-key-file",
                   help="key (>= 16 bytes) for --deidentify's UID pseudonyms; default "
                        "$SPINEVIEWER_PSEUDONYM_KEY, else a random key for this run (then a "
                        "re-run cannot reuse earlier results)")
    b.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the network per worker (default: cores / workers)")
    b.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    b.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    b.set_defaults(func=cmd_batch)
    return b


def cmd_batch(args) -> int:
    from spineviewer.batch.runner import BatchOptions, run_batch

    opts = BatchOptions(root=args.root, out=args.out, workers=args.workers,
                        scheduler=args.scheduler, pdf=args.pdf, dicom=args.dicom,
                        deidentify=args.deidentify, provider=args.provider,
                        threads=args.threads, debug=args.debug,
                        pseudonym_key_file=args.pseudonym_key_file)
    if args.deidentify and not (args.quiet or args.pseudonym_key_file):
        from spineviewer.io.deidentify import KEY_ENV

        if not os.environ.get(KEY_ENV):
            print("spineviewer: note: UIDs pseudonymised under a random key made for this run: "
                  "they match no other export, and a re-run analyses every study again (give "
                  f"--pseudonym-key-file or ${KEY_ENV})", file=sys.stderr)
    reporter = None if args.quiet else (BarReporter() if sys.stderr.isatty() else LineReporter())
    summary = run_batch(opts, reporter)
    if not args.quiet:
        print(format_summary(summary))
    return 0


def format_summary(s: dict[str, Any]) -> str:
    """The end-of-batch text: counts, fractures per level, where the tables are."""
    lines = [(f"{s['studies']} studies under {s['root']}: {s['done']} analysed, "
              f"{s['skipped']} unchanged (skipped), {s['failed']} failed "
              f"({s['broken_folders']} unreadable folders, {s['failed_studies']} studies) "
              f"in {s['elapsed_s']:.1f} s")]
    levels = s["vertebrae_per_level"]
    if levels:
        lines.append("fractures per level: " + ", ".join(
            f"{lv} {s['fractures_per_level'][lv]}/{n}" for lv, n in levels.items()))
    lines.append(f"results: {s['out']}/results.csv; failures: {s['out']}/failures.csv; "
                 f"summary: {s['out']}/summary.json")
    lines.append(DISCLAIMER)
    return "\n".join(lines)


class LineReporter:
    """Plain progress lines (for logs and pipes)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.total = self.n = self.failed = 0
        self.t0 = time.perf_counter()

    def _say(self, text: str) -> None:
        print(f"batch: {text}", file=self.stream, flush=True)

    def discovering(self, n_files: int) -> None:
        self._say(f"reading headers: {n_files} files")

    def start(self, total: int, skipped: int) -> None:
        self.total, self.t0 = total, time.perf_counter()
        self._say(f"{total} studies to analyse, {skipped} unchanged since the last run")

    def update(self, record: dict[str, Any]) -> None:
        self.n += 1
        self.failed += record["status"] != "done"
        rate = self.n / max(time.perf_counter() - self.t0, 1e-9)
        eta = (self.total - self.n) / rate
        what = "done" if record["status"] == "done" else f"FAILED: {record.get('reason', '')}"
        self._say(f"[{self.n}/{self.total}] {record.get('key', '')} {what} "
                  f"(ETA {_clock(eta)})")

    def close(self) -> None:
        pass


class BarReporter(LineReporter):
    """A tqdm progress bar with rate and ETA (on a terminal)."""

    def __init__(self):
        super().__init__()
        self.bar = None

    def start(self, total: int, skipped: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="study", desc="batch", file=self.stream,
                        dynamic_ncols=True)
        if skipped:
            self.bar.write(f"batch: {skipped} studies unchanged since the last run (skipped)",
                           file=self.stream)

    def update(self, record: dict[str, Any]) -> None:
        self.failed += record["status"] != "done"
        if self.bar is not None:
            self.bar.set_postfix(failed=self.failed, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
