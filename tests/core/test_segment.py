"""ONNX session wrapper (tiny model built here with onnx.helper) and mask post-processing."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from spineviewer.core import segment
from spineviewer.core.errors import ModelError
from spineviewer.core.segment import (
    SegmentationModel,
    choose_providers,
    column_curve,
    postprocess,
    softmax,
)

H, W = 16, 12
CLASSES = ["background", "body", "sacrum", "disc"]
WEIGHTS = np.array([-1.0, 2.0, 0.5, 1.0], np.float32)  # 1x1 conv: logit_k = w_k * x + b_k
BIAS = np.array([0.5, -1.0, 0.0, -0.3], np.float32)


def _write_model(folder, name="tiny", output="logits", sha=True, extra=None):
    w = numpy_helper.from_array(WEIGHTS.reshape(4, 1, 1, 1), "w")
    b = numpy_helper.from_array(BIAS, "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"])
    graph = helper.make_graph(
        [node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, H, W])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / f"{name}.onnx"
    onnx.save(model, path)
    card = {"name": name, "version": "0.0.1", "classes": CLASSES, "output": output,
            "input": {"shape": [H, W], "spacing_mm": 0.6,
                      "normalisation": {"scale": 2500, "clip": 1.0}}}
    if sha:
        card["sha256"] = segment.file_sha256(path)
    card.update(extra or {})
    (folder / f"{name}.json").write_text(json.dumps(card))
    return path


def test_predict_applies_softmax_to_logits(tmp_path):
    model = SegmentationModel(_write_model(tmp_path), provider="cpu", threads=1)
    x = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    p = model.predict(x)
    assert p.shape == (4, H, W) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-5)
    expect = softmax(WEIGHTS[:, None, None] * x[None] + BIAS[:, None, None])
    np.testing.assert_allclose(p, expect, atol=1e-5)
    assert model.provider == "CPUExecutionProvider"
    assert model.class_names == tuple(CLASSES)
    assert model.sha256 == segment.file_sha256(model.path)
    assert model.session.get_session_options().intra_op_num_threads == 1


def test_probabilities_output_passes_through(tmp_path):
    model = SegmentationModel(_write_model(tmp_path, output="probabilities"), provider="cpu")
    x = np.full((H, W), 0.5, np.float32)
    np.testing.assert_allclose(model.predict(x)[1], 2.0 * 0.5 - 1.0, atol=1e-6)


def test_wrong_input_shape_is_rejected(tmp_path):
    model = SegmentationModel(_write_model(tmp_path), provider="cpu")
    with pytest.raises(ValueError, match=r"\(16, 12\)"):
        model.predict(np.zeros((H + 1, W), np.float32))


def test_sha_mismatch_is_model_error(tmp_path):
    path = _write_model(tmp_path, extra={"sha256": "0" * 64})
    with pytest.raises(ModelError, match="does not match its card"):
        SegmentationModel(path, provider="cpu")


def test_missing_model_and_card(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="not found"):
        SegmentationModel(tmp_path / "none.onnx")
    path = _write_model(tmp_path)
    (tmp_path / "tiny.json").unlink()
    with pytest.raises(ModelError, match="card"):
        SegmentationModel(path)
    monkeypatch.setattr(segment, "MODELS_DIR", tmp_path / "empty")
    monkeypatch.delenv(segment.MODEL_ENV, raising=False)
    with pytest.raises(ModelError, match=r"no segmentation model"):
        SegmentationModel()


def test_default_path_from_models_dir_and_env(tmp_path, monkeypatch):
    path = _write_model(tmp_path)
    monkeypatch.delenv(segment.MODEL_ENV, raising=False)
    monkeypatch.setattr(segment, "MODELS_DIR", tmp_path)
    assert SegmentationModel(provider="cpu").path == path
    other = tmp_path / "sub"
    other.mkdir()
    path2 = _write_model(other, name="other")
    monkeypatch.setenv(segment.MODEL_ENV, str(path2))
    assert SegmentationModel(provider="cpu").path == path2


def test_provider_choice(caplog):
    assert choose_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"]
    with pytest.raises(ModelError, match="not available"):
        choose_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(ModelError, match="unknown provider"):
        choose_providers("tpu", ["CPUExecutionProvider"])


def test_provider_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="spineviewer.core.segment"):
        SegmentationModel(_write_model(tmp_path), provider="auto")
    assert any("CPUExecutionProvider" in r.getMessage() or "CUDA" in r.getMessage()
               for r in caplog.records)


# ---- post-processing ---------------------------------------------------------

def _column_probs(shape=(448, 320), n=6):
    """One-hot probs: n bodies on a gently curved column, discs between, sacrum below."""
    cm = np.zeros(shape, int)
    for i in range(n):
        r0 = 40 + i * 55
        c0 = int(120 + 0.0004 * (r0 - 200) ** 2)
        cm[r0:r0 + 42, c0:c0 + 60] = 1
        cm[r0 + 42:r0 + 55, c0:c0 + 60] = 3
    cm[40 + n * 55:40 + n * 55 + 50, 130:200] = 2
    return cm


def _onehot(cm, c=4):
    return np.stack([(cm == k).astype(np.float32) for k in range(c)])


def test_postprocess_fills_holes_and_drops_debris():
    cm = _column_probs()
    noisy = cm.copy()
    noisy[60:66, 140:146] = 0  # hole in a body
    noisy[10:14, 10:14] = 1  # 16 px = 5.8 mm^2: too small
    noisy[200:240, 280:310] = 1  # big cluster 160 px (= 96 mm) lateral to the column
    out = postprocess(_onehot(noisy), spacing_mm=0.6, class_names=CLASSES)
    assert (out[60:66, 140:146] == 1).all()
    assert (out[10:14, 10:14] == 0).all()
    assert (out[200:240, 280:310] == 0).all()
    np.testing.assert_array_equal(out, cm)


def test_postprocess_keeps_lowest_large_sacrum_and_other_classes():
    cm = _column_probs()
    cm[5:60, 250:300] = 2  # spurious "sacrum" high up, larger than 150 mm^2
    names = CLASSES + ["canal"]
    cm[100:300, 300:310] = 4
    out = postprocess(_onehot(cm, 5), spacing_mm=0.6, class_names=names)
    assert (out[5:60, 250:300] == 0).all()
    assert (out[40 + 6 * 55:40 + 6 * 55 + 50, 130:200] == 2).all()
    assert (out[100:300, 300:310] == 4).all()


def test_postprocess_checks_shape():
    with pytest.raises(ValueError):
        postprocess(np.zeros((3, 10, 10)), class_names=CLASSES)


def test_column_curve_is_robust_to_one_outlier():
    rows = np.arange(50, 400, 50, dtype=float)
    cols = 100 + 0.001 * (rows - 200) ** 2
    pts = np.c_[rows, cols]
    pts[3, 1] += 80
    coef = column_curve(pts)
    assert np.abs(np.polyval(coef, rows[[0, 1, 2, 4, 5, 6]]) - cols[[0, 1, 2, 4, 5, 6]]).max() < 1.0


class _FakeNet:
    """Duck-typed SegmentationModel: one slice per batch, logits from the image, and an
    error or a record of the batches it ran."""

    class_names = tuple(CLASSES)
    spacing_mm = 0.6
    output_kind = "logits"

    def __init__(self, fail_at=None):
        self.fail_at, self.ran = fail_at, []

    def chunks(self, n, shape):
        return [slice(i, i + 1) for i in range(n)]

    def run_batch(self, x):
        self.ran.append(len(self.ran))
        if self.fail_at is not None and len(self.ran) - 1 == self.fail_at:
            raise ModelError("model output does not match the card")
        return (WEIGHTS[None, :, None, None] * x[:, None] + BIAS[None, :, None, None]).astype(
            np.float32)


def _stack(n=6):
    x = np.zeros((n, 40, 30), np.float32)
    for i in range(n):
        x[i, 5 + i:20 + i, 8:22] = 1.0   # one body-like square per slice, moving down
    return x


def _network_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "spineviewer-network" and t.is_alive()]


def test_segment_volume_post_processes_while_the_network_runs_and_gives_the_same_maps():
    x = _stack()
    net = _FakeNet()
    maps, margins = segment.segment_volume(net, x)
    for i in range(len(x)):
        want = postprocess(net.run_batch(x[i:i + 1])[0], 0.6, class_names=CLASSES)
        assert np.array_equal(maps[i], want)
        assert (maps[i] == 1).sum() > 100 and margins[i][maps[i] == 1].min() > 0
    assert not _network_threads()


def test_an_error_in_the_network_thread_is_raised_to_the_caller():
    net = _FakeNet(fail_at=2)
    with pytest.raises(ModelError, match="does not match"):
        segment.segment_volume(net, _stack())
    assert not _network_threads()
    assert len(net.ran) == 3          # nothing ran after the failing batch


def test_cancel_stops_the_network_thread_after_its_batch():
    from spineviewer.core.errors import Cancelled

    net, asked = _FakeNet(), []

    def cancel():
        asked.append(1)
        return len(asked) > 2          # cancel before the third batch is handed on

    with pytest.raises(Cancelled):
        segment.segment_volume(net, _stack(), cancel=cancel)
    assert not _network_threads()
    assert len(net.ran) <= 4           # one batch ahead at most, then it stopped


class _SlowRunners(_FakeNet):
    """A _FakeNet whose batches run on several runners, the first slowest (so later batches
    finish first), optionally failing on one batch."""

    def runners(self, n_batches):
        import time

        def make(k):
            def run(x):
                time.sleep(0.03 if k == 0 else 0.0)
                return self.run_batch(x)
            return run
        return [make(k) for k in range(3)]


def test_several_runners_hand_on_the_batches_in_order_with_the_same_maps():
    x = _stack(7)
    maps, margins = segment.segment_volume(_SlowRunners(), x)
    one, one_margins = segment.segment_volume(_FakeNet(), x)
    assert np.array_equal(maps, one) and np.array_equal(margins, one_margins)
    assert not _network_threads()


def test_an_error_on_one_of_several_runners_is_raised_and_all_workers_stop():
    net = _SlowRunners(fail_at=3)
    with pytest.raises(ModelError, match="does not match"):
        segment.segment_volume(net, _stack(8))
    assert not _network_threads()
    assert len(net.ran) < 8


def test_prepare_fills_each_batch_just_before_the_network_runs_it():
    src = _stack(5)
    x = np.zeros_like(src)
    filled = []

    def prepare(sl):
        filled.append(sl.start)
        x[sl] = src[sl]

    maps, _ = segment.segment_volume(_SlowRunners(), x, prepare=prepare)
    assert sorted(filled) == list(range(5)) and np.array_equal(x, src)
    assert np.array_equal(maps, segment.segment_volume(_FakeNet(), src)[0])


def test_on_slice_gets_each_class_map_in_order_and_its_error_stops_the_workers():
    """``on_slice`` sees every post-processed class map in stack order, as stored; an error
    in it reaches the caller and no network worker is left running."""
    x = _stack(6)
    seen = []
    maps, _ = segment.segment_volume(_SlowRunners(), x,
                                     on_slice=lambda k, m: seen.append((k, m.copy())))
    assert [k for k, _ in seen] == list(range(6))
    assert all(np.array_equal(m, maps[k]) for k, m in seen)

    def boom(k, _m):
        if k == 2:
            raise ValueError("label inputs failed")

    with pytest.raises(ValueError, match="label inputs failed"):
        segment.segment_volume(_SlowRunners(), _stack(8), on_slice=boom)
    assert not _network_threads()


@pytest.mark.skipif(not list(segment.MODELS_DIR.glob("*.onnx")), reason="no shipped model")
def test_the_cpu_runs_whole_slices_side_by_side_with_the_numbers_of_one_session():
    """The shipped (fully convolutional) model: two single-thread sessions give the maps
    and margins of one two-thread session, slice for slice."""
    two = SegmentationModel(provider="cpu", threads=2)
    one = SegmentationModel(provider="cpu", threads=1)
    assert two.stride and two.chunks(3, (64, 48)) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert len(two.runners(3)) == 2 and len(two.runners(1)) == 1
    assert len(one.runners(3)) == 1
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (3, 64, 48)).astype(np.float32)
    a, b = segment.segment_volume(two, x), segment.segment_volume(one, x)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(two.run_batch(x[:1]), one.run_batch(x[:1]))
