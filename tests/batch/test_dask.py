"""The same batch on a real Dask scheduler + worker pair started on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from spineviewer.batch.runner import BatchOptions, run_batch
from spineviewer.batch.task import cpu_count
from tests.batch.conftest import N_STUDIES, ROOT

pytest.importorskip("distributed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cmd() -> list[str]:
    exe = shutil.which("dask")
    if exe is None:
        pytest.skip("the dask command is not installed")
    return [exe]


def _start(args: list[str], tmp_path, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def dask_cluster(tmp_path):
    """tcp address of a scheduler with one worker process of 2 threads (both on loopback)."""
    import distributed

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start([*_dask_cmd(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], tmp_path, "scheduler")]
    try:
        procs.append(_start([*_dask_cmd(), "worker", address, "--nworkers", "1",
                             "--nthreads", "2", "--no-dashboard", "--host", "127.0.0.1",
                             "--local-directory", str(tmp_path / "dask-worker")],
                            tmp_path, "worker"))
        deadline = time.monotonic() + 120
        while True:
            try:
                with distributed.Client(address, timeout=5) as client:
                    client.wait_for_workers(1, timeout=max(1, deadline - time.monotonic()))
                    break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
                    pytest.fail(f"the Dask cluster did not start:\n{logs[-3000:]}")
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            _stop(p)


@pytest.mark.slow
def test_batch_on_dask_cluster_matches_local_run(archive, first_run, dask_cluster, tmp_path):
    root, _ = archive
    out_ref, _ = first_run
    out = tmp_path / "out"
    summary = run_batch(BatchOptions(root=str(root), out=str(out), scheduler=dask_cluster))
    assert summary["done"] == N_STUDIES and summary["failed"] == 3
    assert summary["scheduler"] == dask_cluster
    # the studies ran in the worker process, not in this one
    assert all(not w.endswith(f":{os.getpid()}") for w in summary["worker_peak_rss_mb"])
    assert (out / "results.csv").read_bytes() == (out_ref / "results.csv").read_bytes()
    assert (out / "failures.csv").read_bytes() == (out_ref / "failures.csv").read_bytes()
    # the machine's cores shared among the worker's 2 task slots
    records = [json.loads(p.read_text()) for p in (out / "manifest" / "studies").glob("*")]
    assert {r["threads"] for r in records if r["status"] == "done"} == {max(1, cpu_count() // 2)}


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    from spineviewer.core.errors import SpineViewerError

    with pytest.raises(SpineViewerError, match="cannot reach the Dask scheduler"):
        run_batch(BatchOptions(root=str(tmp_path), out=str(tmp_path / "o"),
                               scheduler=f"tcp://127.0.0.1:{_free_port()}",
                               connect_timeout_s=2))
