"""Where study tasks run: local worker processes (default) or a Dask distributed cluster.

Both give the runner the same four operations: ``submit``, ``wait_any``, ``capacity`` (how
many tasks can run at once) and ``close``. Each local worker process keeps one ONNX session
for all its studies (the pipeline caches the model per process).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from typing import Any

from spineviewer.core.errors import SpineViewerError

DASK_MISSING = ("--scheduler needs Dask distributed, an optional extra: "
                "pip install 'spineviewer[dask]'")


class LocalExecutor:
    """A pool of ``workers`` spawned processes."""

    def __init__(self, workers: int, debug: bool = False):
        self.capacity = max(1, int(workers))
        self._debug = debug
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        from spineviewer.batch.task import init_worker

        return cf.ProcessPoolExecutor(
            max_workers=self.capacity, mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker, initargs=(self._debug,))

    def submit(self, fn, *args, key: str = "") -> cf.Future:
        try:
            return self._pool.submit(fn, *args)
        except cf.process.BrokenProcessPool:  # a worker died: the others are gone too
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args)

    @staticmethod
    def wait_any(futures) -> tuple[set, set]:
        done, pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    @staticmethod
    def is_crash(exc: BaseException) -> bool:
        """True when a task failed because its process died (not because of the study)."""
        return isinstance(exc, cf.process.BrokenProcessPool)

    def close(self, cancel: bool = False) -> None:
        if cancel:  # interrupted: stop the running studies too (they are redone on resume)
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                proc.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class DaskExecutor:
    """Tasks on an existing Dask distributed scheduler at ``address``."""

    def __init__(self, address: str, timeout_s: float = 30.0):
        try:
            import distributed
        except ImportError as exc:
            raise SpineViewerError(DASK_MISSING) from exc
        self._distributed = distributed
        try:
            self._client = distributed.Client(address, timeout=timeout_s,
                                              set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise SpineViewerError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        nthreads = self._client.nthreads()
        self.capacity = max(1, sum(nthreads.values()))

    def threads_per_worker(self) -> dict[str, int]:
        """ONNX threads for each worker now connected: its machine's cores divided among all
        task slots of that machine (``--nworkers`` x ``--nthreads``)."""
        from spineviewer.batch.task import cpu_count

        nthreads = self._client.nthreads()
        cores = self._client.run(cpu_count)
        host = {w: w.rsplit(":", 1)[0] for w in nthreads}
        slots: dict[str, int] = {}
        for w, n in nthreads.items():
            slots[host[w]] = slots.get(host[w], 0) + n
        return {w: max(1, int(cores.get(w, 1)) // slots[host[w]]) for w in nthreads}

    def submit(self, fn, *args, key: str = "") -> Any:
        import uuid

        return self._client.submit(fn, *args, pure=False,
                                   key=f"spineviewer-study-{key}-{uuid.uuid4().hex[:8]}")

    def wait_any(self, futures) -> tuple[set, set]:
        with self._client.as_current():
            done, pending = self._distributed.wait(list(futures),
                                                   return_when="FIRST_COMPLETED")
        return set(done), set(pending)

    def is_crash(self, exc: BaseException) -> bool:
        return type(exc).__name__ == "KilledWorker"

    def close(self, cancel: bool = False) -> None:
        self._client.close()
