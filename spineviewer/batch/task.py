"""Analyse one study in a worker, through the same pipeline and exports as ``analyze``.

`run_study` is what a local worker process or a Dask worker executes. It writes the study's
outputs atomically under ``OUT/studies/<key>/`` and returns a plain record (CSV lines, the
files written, timing, the worker's memory peak); it never raises for a bad study.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spineviewer.batch.discover import StudyJob
from spineviewer.core.errors import SpineViewerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOptions:
    """What every study task needs besides its files."""

    out_dir: str
    pdf: bool = False
    dicom: bool = False
    deidentify: bool = False
    provider: str = "auto"
    threads: int | None = None
    model_path: str | None = None
    threads_by_worker: dict[str, int] | None = None  # Dask: worker address -> ONNX threads
    pseudonymizer: Any = None  # io.deidentify.Pseudonymizer: the run's UID key (deidentify)


def study_dir(out_dir: str | os.PathLike, key: str) -> Path:
    """Folder of one study's outputs."""
    return Path(out_dir) / "studies" / key


def run_study(job: StudyJob, key: str, opts: TaskOptions) -> dict[str, Any]:
    """Analyse ``job`` and write its outputs; return its record.

    Returns
    -------
    dict with ``status`` ("done" or "failed"), ``study_uid``, ``path`` (the study's folder),
    ``csv_body`` (the study's CSV without its header line, as ``analyze --csv`` writes it),
    ``outputs`` (paths relative to ``opts.out_dir``), ``threads`` (ONNX intra-op threads),
    ``reason`` (failed only), ``seconds``,
    ``worker`` and ``peak_rss_mb``.
    """
    t0 = time.perf_counter()
    record: dict[str, Any] = {"study_uid": job.study_uid, "path": job.folder, "key": key}
    try:
        record.update(status="done", **_analyse(job, key, opts))
    except SpineViewerError as exc:
        record.update(status="failed", reason=str(exc))
    except Exception as exc:  # one bad study never stops the batch
        log.debug("study %s failed", key, exc_info=True)
        record.update(status="failed", reason=f"internal error: {type(exc).__name__}: {exc}")
    record.update(seconds=round(time.perf_counter() - t0, 3), worker=_worker_name(),
                  peak_rss_mb=peak_rss_mb())
    return record


def _analyse(job: StudyJob, key: str, opts: TaskOptions) -> dict[str, Any]:
    from spineviewer.core.pipeline import analyze_study
    from spineviewer.io import export

    threads = opts.threads or _default_threads(opts.threads_by_worker)
    result = analyze_study(job.folder, files=job.all_paths(), model_path=opts.model_path,
                           provider=opts.provider, threads=threads)
    out = study_dir(opts.out_dir, key)
    if out.is_dir():  # staging folders left by a worker killed mid-write
        from spineviewer.io.staging import remove_leftovers

        remove_leftovers(out)
    # exactly what `analyze --csv --json [--pdf] [--dicom-out]` writes, into the study folder
    written = export.write_outputs(
        result, csv=out / export.CSV_NAME, json=out / export.JSON_NAME,
        pdf=out / export.PDF_NAME if opts.pdf else None,
        dicom_dir=out / export.DICOM_DIR if opts.dicom else None,
        deidentify=opts.deidentify, overwrite=True, pseudonymizer=opts.pseudonymizer)
    text = (out / export.CSV_NAME).read_text(encoding="utf-8")
    return {"csv_body": text.split("\n", 1)[1], "threads": threads,
            "model_sha256": str(result.model.get("sha256", "")),
            "outputs": sorted(os.path.relpath(p, opts.out_dir) for p in written)}


def _default_threads(by_worker: dict[str, int] | None) -> int:
    """ONNX intra-op threads when not given: the cores divided among the worker's slots."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            worker = get_worker()
        except (ImportError, ValueError):
            worker = None
        if worker is not None:
            if by_worker and worker.address in by_worker:
                return by_worker[worker.address]
            return max(1, cpu_count() // max(1, int(worker.state.nthreads)))
    return cpu_count()


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MiB (None where unknown)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def init_worker(debug: bool = False) -> None:
    """Local worker start-up: Ctrl-C is handled by the parent; library warnings stay in the
    results instead of interleaving with the progress bar."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.DEBUG if debug else logging.ERROR)
