"""Run a batch: discover, skip what is finished, analyse the rest, write the tables.

Only a bounded number of studies is in flight at once (twice the worker slots), so memory
stays bounded however large the archive. ``results.csv`` is rebuilt from the per-study records
sorted by study, so a resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from spineviewer.batch.discover import Discovery, Failure, StudyJob, discover, study_key
from spineviewer.batch.executors import DaskExecutor, LocalExecutor
from spineviewer.batch.manifest import Manifest, fingerprint, is_current, model_identity
from spineviewer.batch.task import TaskOptions, cpu_count, run_study
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import atomic_write_text, rows_to_csv

RESULTS_NAME, FAILURES_NAME, SUMMARY_NAME = "results.csv", "failures.csv", "summary.json"
CRASHED = "worker process died while analysing this study (out of memory?)"


@dataclass(frozen=True)
class BatchOptions:
    """The ``batch`` command's options."""

    root: str
    out: str
    workers: int | None = None
    scheduler: str | None = None
    pdf: bool = False
    dicom: bool = False
    deidentify: bool = False
    provider: str = "auto"
    threads: int | None = None
    model_path: str | None = None
    debug: bool = False
    connect_timeout_s: float = 15.0
    pseudonym_key_file: str | None = None


class Reporter(Protocol):
    def discovering(self, n_files: int) -> None: ...
    def start(self, total: int, skipped: int) -> None: ...
    def update(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class _Silent:
    def discovering(self, n_files: int) -> None: pass
    def start(self, total: int, skipped: int) -> None: pass
    def update(self, record: dict[str, Any]) -> None: pass
    def close(self) -> None: pass


def run_batch(opts: BatchOptions, reporter: Reporter | None = None) -> dict[str, Any]:
    """Analyse every study under ``opts.root`` not finished before; return the summary.

    Raises
    ------
    SpineViewerError
        ROOT missing, contradictory options, no model, Dask scheduler unreachable.
    """
    t0 = time.perf_counter()
    rep = reporter or _Silent()
    # absolute: Dask workers run in other folders (and on other machines)
    opts = replace(opts, root=os.path.abspath(opts.root), out=os.path.abspath(opts.out))
    root, out = Path(opts.root), Path(opts.out)
    if not root.exists():
        raise SpineViewerError(f"folder {str(root)!r} does not exist")
    if opts.dicom and opts.deidentify:
        from spineviewer.io.export import DEIDENTIFY_DICOM_REFUSED

        raise SpineViewerError(DEIDENTIFY_DICOM_REFUSED)
    if opts.workers is not None and opts.workers < 1:
        raise SpineViewerError("--workers must be at least 1")
    pseudo = _pseudonymizer(opts)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out)
    model = model_identity(opts.model_path)
    workers = opts.workers or cpu_count()
    # a cluster is reached before the (possibly long) discovery: fail fast; local workers
    # start only when there is work
    ex = DaskExecutor(opts.scheduler, opts.connect_timeout_s) if opts.scheduler else None
    try:
        disc = discover(root, exclude=[out], cache=manifest.load_probes(),
                        progress=rep.discovering)
        manifest.save_probes(disc.probes)
        todo, records = _plan(disc, manifest, model, opts, pseudo)
        n_skipped = len(records)
        rep.start(len(todo), n_skipped)
        try:
            if todo:
                ex = ex or LocalExecutor(workers, opts.debug)
                _execute(todo, opts, ex, workers, manifest, model, records, rep, pseudo)
        finally:
            rep.close()
            summary = _write_tables(out, disc, records, opts, pseudo)
    except BaseException:
        if ex is not None:
            ex.close(cancel=True)
        raise
    if ex is not None:
        ex.close()
    summary.update(skipped=n_skipped, elapsed_s=round(time.perf_counter() - t0, 3), model=model,
                   workers=None if opts.scheduler else workers, scheduler=opts.scheduler)
    summary["studies_per_min"] = round(60 * summary["done"] / max(summary["elapsed_s"], 1e-9), 2)
    atomic_write_text(out / SUMMARY_NAME, _json(summary))
    return summary


def _plan(disc: Discovery, manifest: Manifest, model: dict, opts: BatchOptions, pseudo=None):
    options = {"pdf": opts.pdf, "dicom": opts.dicom, "deidentify": opts.deidentify,
               "pseudonym_key": pseudo.fingerprint() if pseudo is not None else None}
    todo: list[tuple[str, StudyJob, str]] = []
    finished: dict[str, dict] = {}
    for uid in sorted(disc.studies):
        job = disc.studies[uid]
        key = study_key(_shown_uid(uid, pseudo))
        fp = fingerprint(job, model, options)
        record = manifest.record(key)
        if is_current(record, fp, opts.out):
            finished[key] = {**record, "skipped": True}
        else:
            todo.append((key, job, fp))
    return todo, finished


def _execute(todo, opts: BatchOptions, ex, workers: int, manifest: Manifest, model: dict,
             records: dict[str, dict], rep: Reporter, pseudo) -> None:
    threads = opts.threads or (None if opts.scheduler else max(1, cpu_count() // workers))
    by_worker = ex.threads_per_worker() if opts.scheduler and not opts.threads else None
    topts = TaskOptions(str(opts.out), opts.pdf, opts.dicom, opts.deidentify, opts.provider,
                        threads, opts.model_path, by_worker, pseudo)
    queue, suspects = deque(todo), deque()
    pending: dict[Any, tuple[str, StudyJob, str, bool]] = {}
    while queue or suspects or pending:
        while queue and len(pending) < 2 * ex.capacity:
            key, job, fp = queue.popleft()
            pending[ex.submit(run_study, job, key, topts, key=key)] = (key, job, fp, False)
        if not pending and suspects:  # a study whose worker died: alone, once more
            key, job, fp = suspects.popleft()
            pending[ex.submit(run_study, job, key, topts, key=key)] = (key, job, fp, True)
        done, _ = ex.wait_any(list(pending))
        for fut in done:
            key, job, fp, alone = pending.pop(fut)
            try:
                record = fut.result()
            except Exception as exc:  # noqa: BLE001 - a dead worker or a lost task
                if ex.is_crash(exc) and not alone:
                    suspects.append((key, job, fp))
                    continue
                reason = CRASHED if ex.is_crash(exc) else f"{type(exc).__name__}: {exc}"
                record = {"study_uid": job.study_uid, "path": job.folder, "key": key,
                          "status": "failed", "reason": reason}
            else:
                if record["status"] == "done" and record["model_sha256"] != model["sha256"]:
                    record = {**record, "status": "failed", "reason": (
                        f"worker {record['worker']} has another model (sha256 "
                        f"{record['model_sha256'][:12]}...); install the same model everywhere")}
                else:
                    manifest.save_record(key, {**record, "fingerprint": fp})
            records[key] = record
            rep.update(record)


def _pseudonymizer(opts: BatchOptions):
    """One UID key for the whole run (folder names here, every worker's outputs)."""
    if not opts.deidentify:
        return None
    from spineviewer.io.deidentify import Pseudonymizer

    return Pseudonymizer.for_export(opts.pseudonym_key_file)


def _shown_uid(uid: str, pseudo) -> str:
    return uid if pseudo is None else pseudo.uid(uid)


def _write_tables(out: Path, disc: Discovery, records: dict[str, dict],
                  opts: BatchOptions, pseudo) -> dict[str, Any]:
    """results.csv, failures.csv; returns the summary's counts."""
    current = {study_key(_shown_uid(uid, pseudo)) for uid in disc.studies}
    keys = sorted(k for k in records if k in current)
    ok = [records[k] for k in keys if records[k]["status"] == "done"]
    text = rows_to_csv([]) + "".join(r["csv_body"] for r in ok)
    atomic_write_text(out / RESULTS_NAME, text)
    failures = list(disc.failures) + [
        Failure(r["path"], _shown_uid(r["study_uid"], pseudo), r["reason"])
        for r in (records[k] for k in keys) if r["status"] == "failed"]
    failures.sort(key=lambda f: (f.path, f.study_uid))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "study_uid", "reason"])
    w.writerows([f.path, f.study_uid, f.reason] for f in failures)
    atomic_write_text(out / FAILURES_NAME, buf.getvalue())
    return {"root": str(opts.root), "out": str(out), "files": disc.n_files,
            "studies": len(disc.studies), "in_results": len(ok),
            "done": sum(1 for r in ok if not r.get("skipped")), "failed": len(failures),
            "broken_folders": len(disc.failures),
            "failed_studies": len(failures) - len(disc.failures),
            **_level_counts(text),
            "worker_peak_rss_mb": _peaks(records)}


def _level_counts(results_csv: str) -> dict[str, dict[str, int]]:
    vertebrae, fractures = Counter(), Counter()
    for row in csv.DictReader(io.StringIO(results_csv)):
        vertebrae[row["level"]] += 1
        fractures[row["level"]] += row["fracture"] == "1"
    order = {lv: i for i, lv in enumerate(("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5",
                                           "L6"))}
    levels = sorted(vertebrae, key=lambda lv: (order.get(lv, 99), lv))
    return {"vertebrae_per_level": {lv: vertebrae[lv] for lv in levels},
            "fractures_per_level": {lv: fractures[lv] for lv in levels}}


def _peaks(records: dict[str, dict]) -> dict[str, float]:
    """Peak memory per worker process among the studies analysed in this run."""
    peaks: dict[str, float] = {}
    for r in records.values():
        if not r.get("skipped") and r.get("peak_rss_mb") is not None and r.get("worker"):
            peaks[r["worker"]] = max(peaks.get(r["worker"], 0.0), float(r["peak_rss_mb"]))
    return dict(sorted(peaks.items()))


def _json(data: dict) -> str:
    import json

    return json.dumps(data, indent=1) + "\n"

