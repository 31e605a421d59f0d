"""spineviewer batch: every study found and analysed once, failures listed, resumable."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spineviewer.batch.discover import discover
from spineviewer.batch.manifest import Manifest, model_identity
from spineviewer.batch.runner import BatchOptions, _plan, run_batch
from spineviewer.cli import main
from tests.batch.conftest import N_STUDIES, ROOT


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_batch_analyses_every_study_and_lists_failures(archive, first_run):
    _, truths = archive
    out, summary = first_run
    rows = _csv(out / "results.csv")
    assert {r["study_uid"] for r in rows} == {t.study_uid for t in truths}
    # one series per study, and it is the T2 sagittal (not a distractor)
    assert {r["series_uid"] for r in rows} == {t.t2_series_uid for t in truths}
    uids = [r["study_uid"] for r in rows]
    assert uids == sorted(uids)
    failures = _csv(out / "failures.csv")
    by_path = {Path(f["path"]).name: f for f in failures}
    assert set(by_path) == {"broken_garbage", "broken_truncated", "mixed"}, failures
    assert "not DICOM" in by_path["broken_garbage"]["reason"]
    assert "truncated" in by_path["broken_truncated"]["reason"]
    assert by_path["mixed"]["study_uid"] and "sagittal T2" in by_path["mixed"]["reason"]
    assert summary["studies"] == N_STUDIES + 1 and summary["done"] == N_STUDIES
    assert summary["failed"] == 3 and summary["broken_folders"] == 2
    assert sum(summary["vertebrae_per_level"].values()) == len(rows)
    assert sum(summary["fractures_per_level"].values()) == sum(r["fracture"] == "1" for r in rows)
    assert len(summary["worker_peak_rss_mb"]) <= 2
    assert json.loads((out / "summary.json").read_text())["done"] == N_STUDIES
    for t in truths:
        result = json.loads((out / "studies" / t.study_uid / "results.json").read_text())
        assert result["study_uid"] == t.study_uid


def test_study_spanning_two_folders_is_one_study(archive, first_run):
    root, truths = archive
    out, _ = first_run
    result = json.loads((out / "studies" / truths[8].study_uid / "results.json").read_text())
    # all 5 slices indexed together: the centre slice is the truth's
    assert result["sop_instance_uid"] == truths[8].sop_instance_uid
    assert Path(result["source_slice_file"]).parent.name in ("split_a", "split_b")
    assert Path(result["source_path"]) == root


def test_batch_rows_equal_single_analyze(archive, first_run, tmp_path):
    root, truths = archive
    out, _ = first_run
    single = tmp_path / "single.csv"
    assert main(["analyze", str(root / "study_03"), "-q", "--csv", str(single)]) == 0
    lines = single.read_text().splitlines()
    batch = [ln for ln in (out / "results.csv").read_text().splitlines()
             if ln.startswith(truths[3].study_uid + ",")]
    assert len(lines) > 2 and batch == lines[1:]


def test_noop_rerun_skips_everything_and_keeps_the_csv(archive, first_run):
    root, _ = archive
    out, _ = first_run
    before = (out / "results.csv").read_bytes()
    summary = run_batch(BatchOptions(root=str(root), out=str(out), workers=2))
    assert summary["done"] == 0 and summary["skipped"] == N_STUDIES + 1
    assert (out / "results.csv").read_bytes() == before
    assert summary["failed"] == 3


def test_changed_study_and_new_model_are_redone(archive, first_run, tmp_path, monkeypatch):
    root, truths = archive
    out, _ = first_run
    manifest = Manifest(out)
    opts = BatchOptions(root=str(root), out=str(out))
    disc = discover(root, exclude=[out], cache=manifest.load_probes())
    model = model_identity()
    todo, finished = _plan(disc, manifest, model, opts)
    assert todo == [] and len(finished) == N_STUDIES + 1
    todo, _ = _plan(disc, manifest, {**model, "version": "99"}, opts)
    assert len(todo) == N_STUDIES + 1
    todo, _ = _plan(disc, manifest, model, BatchOptions(root=str(root), out=str(out), pdf=True))
    assert len(todo) == N_STUDIES + 1
    with monkeypatch.context() as m:  # another CSV contract: old rows must not be reused
        m.setattr("spineviewer.core.results.CSV_COLUMNS", ("study_uid", "level"))
        assert len(_plan(disc, manifest, model, opts)[0]) == N_STUDIES + 1
    # a real change: one study's files touched -> only that study is analysed again
    copy = tmp_path / "archive"
    shutil.copytree(root / "study_05", copy / "study_05")
    shutil.copytree(root / "study_06", copy / "study_06")
    out2 = tmp_path / "out"
    first = run_batch(BatchOptions(root=str(copy), out=str(out2), workers=1))
    assert first["done"] == 2
    for f in (copy / "study_06").iterdir():
        os.utime(f, ns=(time.time_ns(), time.time_ns()))
    again = run_batch(BatchOptions(root=str(copy), out=str(out2), workers=1))
    assert again["done"] == 1 and again["skipped"] == 1
    assert (out2 / "results.csv").read_bytes() == first_run_subset(out, truths[5:7])


def first_run_subset(out: Path, truths) -> bytes:
    uids = {t.study_uid for t in truths}
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    return "".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in uids]).encode()


def test_discovery_reuses_cached_header_probes(archive, first_run, monkeypatch):
    root, _ = archive
    out, _ = first_run
    cache = Manifest(out).load_probes()
    calls = []
    import spineviewer.batch.discover as d

    monkeypatch.setattr(d, "probe_file", lambda p: calls.append(p) or (None, "x"))
    disc = discover(root, exclude=[out], cache=cache)
    assert calls == [] and len(disc.studies) == N_STUDIES + 1


@pytest.mark.slow
def test_kill_then_resume_gives_the_same_csv(archive, first_run, tmp_path):
    root, _ = archive
    out_ref, _ = first_run
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "spineviewer.cli", "batch", str(root),
                             "--out", str(out), "--workers", "1", "-q"], cwd=ROOT, env=env,
                            start_new_session=True)
    records = out / "manifest" / "studies"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if records.is_dir() and len(list(records.glob("*.json"))) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the batch finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the batch and its workers: a power cut
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    n_before = len(list(records.glob("*.json")))
    assert 3 <= n_before < N_STUDIES + 1
    for rec in records.glob("*.json"):
        json.loads(rec.read_text())  # every record whole
    summary = run_batch(BatchOptions(root=str(root), out=str(out), workers=2))
    assert summary["skipped"] == n_before
    assert summary["skipped"] + summary["done"] + summary["failed_studies"] == N_STUDIES + 1
    assert (out / "results.csv").read_bytes() == (out_ref / "results.csv").read_bytes()
    assert (out / "failures.csv").read_bytes() == (out_ref / "failures.csv").read_bytes()


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--dicom",
                 "--deidentify", "-q"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith("spineviewer: error:") for e in err)


def test_pdf_dicom_and_deidentified_outputs(archive, tmp_path, monkeypatch):
    from spineviewer.io.deidentify import KEY_ENV, Pseudonymizer

    monkeypatch.setenv(KEY_ENV, "the batch's project key")

    root, truths = archive
    out = tmp_path / "out"
    s = run_batch(BatchOptions(root=str(root / "study_01"), out=str(out), workers=1, pdf=True,
                               dicom=True))
    assert s["done"] == 1
    folder = out / "studies" / truths[1].study_uid
    assert (folder / "report.pdf").read_bytes().startswith(b"%PDF")
    assert len(list((folder / "dicom").glob("*.dcm"))) >= 3
    out2 = tmp_path / "out2"
    s = run_batch(BatchOptions(root=str(root / "study_02"), out=str(out2), workers=1, pdf=True,
                               deidentify=True))
    hashed = Pseudonymizer.from_environment().uid(truths[2].study_uid)
    assert s["done"] == 1 and {r["study_uid"] for r in _csv(out2 / "results.csv")} == {hashed}
    assert (out2 / "studies" / hashed / "results.json").is_file()
    again = run_batch(BatchOptions(root=str(root / "study_02"), out=str(out2), pdf=True,
                                   deidentify=True))  # same project key: nothing to redo
    assert again["skipped"] == 1 and again["done"] == 0
    text = "".join(p.read_text(errors="ignore") for p in out2.rglob("*.json")
                   if "manifest" not in p.parts)
    assert truths[2].study_uid not in text and "PHANTOM" not in text


def test_progress_lines_summary_and_quiet(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "scan").mkdir(parents=True)
    (root / "scan" / "IM1.dcm").write_bytes(b"\x00" * 200)
    assert main(["batch", str(root), "--out", str(tmp_path / "o")]) == 0
    cap = capsys.readouterr()
    assert "batch: 0 studies to analyse" in cap.err  # stderr is not a terminal: plain lines
    assert "0 studies under" in cap.out and "1 failed" in cap.out
    assert main(["batch", str(root), "--out", str(tmp_path / "o"), "-q"]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""
    assert _csv(tmp_path / "o" / "failures.csv")[0]["path"] == str(root / "scan")


def test_a_worker_with_another_model_is_refused(archive, tmp_path, monkeypatch):
    from spineviewer.batch import runner

    root, _ = archive
    expected = {**model_identity(), "sha256": "0" * 64}  # what this (client) side expects
    monkeypatch.setattr(runner, "model_identity", lambda path=None: expected)
    out = tmp_path / "out"
    s = run_batch(BatchOptions(root=str(root / "study_04"), out=str(out), workers=1))
    assert s["done"] == 0 and s["failed_studies"] == 1
    assert "another model" in _csv(out / "failures.csv")[0]["reason"]
    assert _csv(out / "results.csv") == []
    assert not list((out / "manifest" / "studies").glob("*.json"))  # retried next time


def test_progress_bar_counts_failures_and_stays_on_its_stream(capsys):
    from spineviewer.batch.cli import BarReporter

    bar = BarReporter()
    bar.stream = io.StringIO()
    bar.start(3, 1)
    for status in ("failed", "done", "done"):
        bar.update({"status": status, "key": "k"})
    bar.close()
    text = bar.stream.getvalue()
    assert "3/3" in text and "failed=1" in text and "1 studies unchanged" in text
    assert capsys.readouterr().out == ""
