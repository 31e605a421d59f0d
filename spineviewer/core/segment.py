"""Segmentation stage: the ONNX Runtime session with its model card, and mask post-processing.

The network is data: a single ``models/<name>.onnx`` beside its card ``models/<name>.json``
(input shape, spacing, normalisation, class names, output kind, sha256). Post-processing follows
the reference paper: fill holes, drop small clusters, drop clusters far from the column.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spineviewer.core.errors import Cancelled, ModelError
from spineviewer.core.maskops import centres_of_mass, component_areas, fill_holes, label
from spineviewer.core.resources import data_dir

logger = logging.getLogger(__name__)

MODELS_DIR = data_dir("models")
MODEL_ENV = "SPINEVIEWER_MODEL"
DEFAULT_CLASSES = ("background", "body", "sacrum", "disc")
#: Smallest cluster kept, mm^2 (a lumbar body is ~ 900-1500 mm^2 on a mid-sagittal slice,
#: a disc ~ 300-500 mm^2; fragments below these are noise).
MIN_AREA_MM2 = {"body": 40.0, "sacrum": 150.0, "disc": 20.0}
#: Body clusters whose centroid lies further than this from the column curve are dropped.
MAX_COLUMN_DISTANCE_MM = 25.0
#: Pixels (N x H x W) per ONNX call on a GPU: four whole 500 mm slices at 0.6 mm (848 x 848)
#: peaked at about 0.7 GB with the shipped model.
MAX_BATCH_PIXELS = 3.0e6
#: At most this many slices run side by side on the CPU (`SegmentationModel.runners`): each
#: holds its own activations (about 0.1 GB for a 381 mm slice on the 0.6 mm grid).
MAX_SLICE_WORKERS = 4
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def default_model_path() -> Path:
    """The model to use: ``$SPINEVIEWER_MODEL`` or the single ``*.onnx`` in ``models/``."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    found = sorted(MODELS_DIR.glob("*.onnx")) if MODELS_DIR.is_dir() else []
    if not found:
        raise ModelError(f"no segmentation model (*.onnx) in {MODELS_DIR}; "
                         f"install one or set {MODEL_ENV}")
    if len(found) > 1:
        # prefer fp32 over quantised variants when several ship
        plain = [p for p in found if "int8" not in p.stem]
        found = plain or found
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise ModelError(f"several models in {MODELS_DIR} ({names}); "
                             f"choose one with {MODEL_ENV} or --model")
    return found[0]


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def choose_providers(provider: str = "auto", available: Sequence[str] | None = None) -> list[str]:
    """onnxruntime providers for ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``."""
    import onnxruntime as ort

    available = list(ort.get_available_providers() if available is None else available)
    provider = provider.lower()
    if provider == "auto":
        cuda = _PROVIDERS["cuda"] in available
        return [_PROVIDERS["cuda"], _PROVIDERS["cpu"]] if cuda else [_PROVIDERS["cpu"]]
    if provider not in _PROVIDERS:
        raise ModelError(f"unknown provider {provider!r}: use auto, cpu or cuda")
    if _PROVIDERS[provider] not in available:
        raise ModelError(f"provider {provider} is not available in this onnxruntime "
                         f"(available: {', '.join(available)})")
    return [_PROVIDERS[provider]] + ([_PROVIDERS["cpu"]] if provider == "cuda" else [])


def read_card(model_path: Path) -> dict[str, Any]:
    """The model card ``<stem>.json`` beside the ONNX file."""
    card_path = model_path.with_suffix(".json")
    if not card_path.is_file():
        raise ModelError(f"model card {card_path.name} missing beside {model_path.name}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"model card {card_path.name} is unreadable: {e}") from e
    if "classes" not in card or "input" not in card:
        raise ModelError(f"model card {card_path.name} lacks 'classes' or 'input'")
    return card


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    e = logits - logits.max(axis=axis, keepdims=True)
    np.exp(e, out=e)  # in place: the same numbers, one array fewer of (N, C, H, W)
    e /= e.sum(axis=axis, keepdims=True)
    return e


class SegmentationModel:
    """An ONNX segmentation network and its card; the session is created once.

    Parameters
    ----------
    model_path : str or Path, optional
        ``.onnx`` file; default `default_model_path`.
    provider : {"auto", "cpu", "cuda"}
    threads : int, optional
        CPU threads: the model session's intra-op threads (default: onnxruntime's choice),
        shared among the sessions that run slices side by side (`runners`).

    Raises
    ------
    ModelError
        Model or card missing, sha256 not the card's, provider unavailable.
    """

    def __init__(self, model_path: str | Path | None = None, provider: str = "auto",
                 threads: int | None = None) -> None:
        self.path = Path(model_path) if model_path is not None else default_model_path()
        if not self.path.is_file():
            raise ModelError(f"segmentation model not found: {self.path}")
        self.card = read_card(self.path)
        self.sha256 = file_sha256(self.path)
        want = self.card.get("sha256")
        if want and want.lower() != self.sha256:
            raise ModelError(f"model {self.path.name} does not match its card (sha256 "
                             f"{self.sha256[:12]}... vs card {str(want)[:12]}...)")
        self.class_names = tuple(self.card["classes"])
        self.input_shape = tuple(int(v) for v in self.card["input"].get("shape", (448, 320)))
        #: A card with a stride declares symbolic (N, 1, H, W) dims: any batch, any H and W
        #: that are multiples of the stride (the whole field of view). Without one the model
        #: takes exactly ``input_shape``, one slice at a time.
        stride = self.card["input"].get("stride")
        self.stride: int | None = int(stride) if stride else None
        self.output_kind = str(self.card.get("output", "probabilities"))
        self.threads = threads
        self._providers = choose_providers(provider)
        self.session = self._new_session(threads)
        self._slice_sessions: list[Any] = []
        self.provider = self.session.get_providers()[0]
        self._input_name = self.session.get_inputs()[0].name
        logger.info("segmentation model %s (%s) on %s, threads=%s", self.path.name,
                    self.sha256[:12], self.provider, threads)

    def _new_session(self, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting of the intra-op threads between and after runs: on a small machine
        # they would spin against the post-processing that follows each run (same numbers)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        try:
            return ort.InferenceSession(str(self.path), sess_options=opts,
                                        providers=self._providers)
        except Exception as e:  # onnxruntime raises its own types for bad files
            raise ModelError(f"cannot load model {self.path.name}: {str(e).splitlines()[0]}") from e

    @property
    def on_cpu(self) -> bool:
        return self.provider == _PROVIDERS["cpu"]

    def runners(self, n_batches: int) -> list[Callable[[np.ndarray], np.ndarray]]:
        """Callables like `run_batch`, one per worker thread of `segment_volume`.

        On the CPU, slices run side by side: ``k`` sessions (k = the threads, at most
        ``MAX_SLICE_WORKERS`` and ``n_batches``) of ``threads // k`` intra-op threads each.
        Whole slices in parallel keep every core busy, where one session splitting each
        layer across its threads waits at every layer for the slowest (a post-processing
        thread beside it makes one slow): at 381 mm on 2 cores the network's wall time in
        `segment_volume` fell by about 0.2 s (``benchmarks/bench_slices.py``). One session
        computes a slice with the same numbers whatever its threads. Elsewhere (a GPU, one
        thread): the model's own session alone.
        """
        total = self.threads if self.threads else _available_cores()
        k = min(int(total), MAX_SLICE_WORKERS, int(n_batches))
        if not self.on_cpu or k < 2:
            return [self.run_batch]
        per = max(1, int(total) // k)
        while len(self._slice_sessions) < k:
            self._slice_sessions.append(self._new_session(per))
        return [functools.partial(self.run_batch, session=s) for s in self._slice_sessions[:k]]

    @property
    def spacing_mm(self) -> float:
        return float(self.card["input"].get("spacing_mm", 0.6))

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError unless (H, W) ``shape`` is an input this model takes."""
        shape = tuple(int(v) for v in shape)
        if self.stride is None:
            if shape != self.input_shape:
                raise ValueError(f"model input must be {self.input_shape}, got {shape}")
        elif len(shape) != 2 or min(shape) < self.stride or any(v % self.stride for v in shape):
            raise ValueError(f"model input must be (H, W) multiples of {self.stride}, "
                             f"got {shape}")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (C, H, W) float32 for one pre-processed slice ``x`` (H, W)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"model input must be one (H, W) slice, got {x.shape}")
        return self.predict_batch(x[None])[0]

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C, H, W) float32 for pre-processed slices ``x`` (N, H, W),
        in one session call (one call per slice for a fixed-shape model)."""
        out = self.run_batch(x)
        if self.output_kind == "logits":
            out = softmax(out, axis=1)
        return out

    def run_batch(self, x: np.ndarray, session=None) -> np.ndarray:
        """The network's own output (N, C, H, W) float32 for slices ``x`` (N, H, W): logits
        or probabilities, as the card's ``output`` says (`output_kind`). Their argmax is the
        same either way; `segment_volume` takes the softmax only where it needs it.
        ``session``: one of `runners`' sessions (default the model's own)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3:
            raise ValueError(f"expected (N, H, W) slices, got {x.shape}")
        self.check_input(x.shape[1:])
        if self.stride is None and len(x) > 1:
            return np.concatenate([self.run_batch(x[i:i + 1], session) for i in range(len(x))])
        out = np.asarray((session or self.session).run(None, {self._input_name: x[:, None]})[0],
                         dtype=np.float32)
        if out.shape != (len(x), len(self.class_names), *x.shape[1:]):
            raise ModelError(f"model output {out.shape} does not match the card "
                             f"({len(self.class_names)} classes, {x.shape[1:]})")
        return out

    def chunks(self, n: int, shape: tuple[int, int], max_pixels: float = MAX_BATCH_PIXELS
               ) -> list[slice]:
        """Batches of slices for `run_batch`: one slice each on the CPU, elsewhere at most
        ``max_pixels`` each (bounds the memory of one call: activations grow with N x H x W).

        On the CPU a batch of several slices is no faster than the same slices one by one,
        and it holds all their activations at once: at 381 mm, 15 slices in batches of 7
        peaked at 1.1 GB, one by one at 0.4 GB, and the fresh process ran 0.1-0.2 s faster
        (fewer new pages to fault in)."""
        per = (1 if self.stride is None or self.on_cpu
               else max(1, int(max_pixels // (shape[0] * shape[1]))))
        return [slice(i, min(n, i + per)) for i in range(0, n, per)]


def segment_volume(model: SegmentationModel, x: np.ndarray, *,
                   class_names: Sequence[str] | None = None, spacing_mm: float | None = None,
                   cancel=None, prepare: Callable[[slice], None] | None = None,
                   on_slice: Callable[[int, np.ndarray], None] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Segment every slice of a pre-processed series.

    The network runs in worker threads (onnxruntime releases the GIL; on the CPU several
    slices side by side, `SegmentationModel.runners`) while this thread post-processes, in
    order, the batches already done: post-processing costs little wall time beyond the
    network's. Each batch gives the same numbers whichever worker runs it.

    Parameters
    ----------
    model : SegmentationModel
    x : (N, H, W) float32 model inputs (see ``preprocess.preprocess_volume``).
    cancel : optional callable; checked between batches (raises ``errors.Cancelled``).
    prepare : optional ``prepare(sl)`` that fills ``x[sl]``: called by the worker that runs
        batch ``sl`` just before it runs it (preprocessing overlaps the network).
    on_slice : optional ``on_slice(k, class_map)``, called in this thread with each slice's
        post-processed class map (``class_maps[k]``) as soon as it is done: per-slice work of
        the later stages then overlaps the network too.

    Returns
    -------
    class_maps : (N, H, W) uint8 post-processed class maps (`postprocess`).
    margins : (N, H, W) float16 softmax margin (top probability minus the second) on the
        pixels of the body and sacrum classes (0 elsewhere: only they are checked).
    """
    names = list(class_names or model.class_names)
    spacing = float(spacing_mm if spacing_mm is not None else model.spacing_mm)
    class_maps = np.zeros(x.shape, dtype=np.uint8)
    margins = np.zeros(x.shape, dtype=np.float16)
    keep = [names.index(k) for k in ("body", "sacrum") if k in names]
    logits = model.output_kind == "logits"
    for sl, out in _network_batches(model, x, cancel, prepare):
        # the raw output: post-processing needs only its argmax, and the margin needs the
        # softmax on the body and sacrum pixels alone (not on the whole (N, C, H, W) batch)
        for j, p in enumerate(out):
            cmap = postprocess(p, spacing, class_names=names)
            class_maps[sl.start + j] = cmap
            sel = np.isin(cmap, keep)
            q = p[:, sel]
            q = np.sort(softmax(q, axis=0) if logits else q, axis=0)
            margins[sl.start + j][sel] = q[-1] - q[-2]
            if on_slice is not None:
                on_slice(sl.start + j, class_maps[sl.start + j])
    return class_maps, margins


def _network_batches(model: SegmentationModel, x: np.ndarray, cancel, prepare=None):
    """(slice, network output) per batch of `SegmentationModel.chunks`, in order.

    The batches run in worker threads, one per runner (`SegmentationModel.runners`; a model
    without them: its `run_batch` in one worker), each taking the next batch not yet
    started (``prepare(sl)`` first, if given), at most one batch per worker ahead of the one
    handed on. ``cancel()`` is
    checked before each batch is handed on; the first error in a worker is raised here and
    no worker starts a batch after it; leaving early stops the workers after the batches in
    flight."""
    import threading

    chunks = model.chunks(len(x), x.shape[1:])
    runners = model.runners(len(chunks)) if hasattr(model, "runners") else [model.run_batch]
    lock = threading.Condition()
    state = {"next": 0, "handed": 0, "stop": False, "error": None}
    done: dict[int, np.ndarray] = {}

    def work(run) -> None:
        while True:
            with lock:
                while (not state["stop"] and state["next"] < len(chunks)
                       and state["next"] > state["handed"] + len(runners)):
                    lock.wait()
                if state["stop"] or state["next"] >= len(chunks):
                    return
                i = state["next"]
                state["next"] += 1
            try:
                if prepare is not None:
                    prepare(chunks[i])
                out = run(x[chunks[i]])
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread, raised there
                with lock:
                    if state["error"] is None:
                        state["error"] = e
                    state["stop"] = True
                    lock.notify_all()
                return
            with lock:
                done[i] = out
                lock.notify_all()

    workers = [threading.Thread(target=work, args=(r,), name="spineviewer-network", daemon=True)
               for r in runners]
    for w in workers:
        w.start()
    try:
        for i, sl in enumerate(chunks):
            if cancel is not None and cancel():
                raise Cancelled("analysis cancelled by the user")
            with lock:
                while i not in done and state["error"] is None:
                    lock.wait()
                if state["error"] is not None:
                    raise state["error"]
                out = done.pop(i)
                state["handed"] = i + 1
                lock.notify_all()
            yield sl, out
    finally:
        with lock:
            state["stop"] = True
            lock.notify_all()
        for w in workers:  # let the batches in flight finish
            w.join()


def _class_index(class_names: Sequence[str], name: str) -> int | None:
    return list(class_names).index(name) if name in class_names else None


def _drop_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    lab, n = label(mask)
    if n == 0:
        return mask
    areas = component_areas(lab, n)
    keep = np.r_[False, areas >= min_px]
    return keep[lab]


def column_curve(points_rc: np.ndarray, weights: np.ndarray | None = None,
                 n_iter: int = 3) -> np.ndarray:
    """Robust quadratic col(row) through centroids: coefficients for `np.polyval`.

    Iteratively reweighted: points further than 2.5 x the median absolute residual get
    weight 0. With fewer than 3 points, a straight (or constant) line.
    """
    r, c = points_rc[:, 0].astype(float), points_rc[:, 1].astype(float)
    w = np.ones_like(r) if weights is None else np.asarray(weights, float)
    deg = min(2, len(r) - 1)
    coef = np.polyfit(r, c, deg, w=np.sqrt(w)) if deg > 0 else np.array([np.median(c)])
    for _ in range(n_iter):
        res = np.abs(c - np.polyval(coef, r))
        mad = max(np.median(res), 1.0)
        keep = res <= 2.5 * mad
        if keep.sum() <= deg:
            break
        coef = np.polyfit(r[keep], c[keep], deg, w=np.sqrt(w[keep])) if deg > 0 else coef
    return coef


def _drop_off_column(body: np.ndarray, spacing_mm: float) -> np.ndarray:
    lab, n = label(body)
    if n < 3:
        return body
    idx = np.arange(1, n + 1)
    cents = np.array(centres_of_mass(body, lab, idx))
    areas = component_areas(lab, n)
    big = areas >= 0.3 * np.median(areas[areas >= 0.5 * areas.max()])
    if big.sum() < 3:
        return body
    coef = column_curve(cents[big], weights=areas[big])
    dist_mm = np.abs(cents[:, 1] - np.polyval(coef, cents[:, 0])) * spacing_mm
    keep = np.r_[False, dist_mm <= MAX_COLUMN_DISTANCE_MM]
    return keep[lab]


def _keep_sacrum(sacrum: np.ndarray, body: np.ndarray) -> np.ndarray:
    """The sacrum component that is largest and lies below the column's lowest part."""
    lab, n = label(sacrum)
    if n <= 1:
        return sacrum
    idx = np.arange(1, n + 1)
    areas = component_areas(lab, n)
    cents = np.array(centres_of_mass(sacrum, lab, idx))
    if body.any():
        low_row = np.nonzero(body.any(axis=1))[0].max()
        below = cents[:, 0] >= low_row - 0.1 * body.shape[0]
        if below.any():
            areas = np.where(below, areas, 0)
    return lab == idx[int(np.argmax(areas))]


def postprocess(probs: np.ndarray, spacing_mm: float = 0.6,
                class_names: Sequence[str] = DEFAULT_CLASSES) -> np.ndarray:
    """Class map from network probabilities: argmax, fill holes, drop small/off-column clusters.

    Parameters
    ----------
    probs : (C, H, W) float
        Class probabilities in the model grid (or logits: only their argmax is used).
    spacing_mm : float
        Isotropic pixel spacing of the model grid.
    class_names : sequence of str
        Names of the C classes (card order); "body", "sacrum", "disc" are recognised.

    Returns
    -------
    (H, W) int class map (indices into ``class_names``; 0 background).
    """
    if probs.ndim != 3 or probs.shape[0] != len(class_names):
        raise ValueError(f"probs must be (C={len(class_names)}, H, W), got {probs.shape}")
    labels = np.argmax(probs, axis=0)
    px_mm2 = spacing_mm * spacing_mm
    known = {_class_index(class_names, n) for n in ("disc", "sacrum", "body")}
    out = np.where(np.isin(labels, [k for k in known if k is not None]), 0, labels)
    masks: dict[str, np.ndarray] = {}
    for name in ("disc", "sacrum", "body"):  # later classes win where filled holes overlap
        k = _class_index(class_names, name)
        if k is None:
            continue
        m = fill_holes(labels == k)
        m = _drop_small(m, MIN_AREA_MM2[name] / px_mm2)
        masks[name] = m
    if "body" in masks:
        masks["body"] = _drop_off_column(masks["body"], spacing_mm)
    if "sacrum" in masks:
        masks["sacrum"] = _keep_sacrum(masks["sacrum"], masks.get("body", np.zeros_like(out, bool)))
    for name, m in masks.items():
        out[m] = _class_index(class_names, name)
    return out.astype(np.int32)
