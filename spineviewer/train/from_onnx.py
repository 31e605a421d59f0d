"""A training checkpoint from a shipped ONNX model, to fine-tune it when its run is gone.

The exporter folds each batch-norm into the convolution before it (``W' = W * g / s``,
``b' = beta - mu * g / s``), so the ONNX file holds ``W'`` and ``b'`` only. To train on, each
pair is unfolded again: the convolution gets ``W'``; its batch-norm gets running statistics
``(m, v)`` measured on synthetic training slices at that layer, scale ``sqrt(v + eps)`` and
shift ``m + b'``. In eval mode that is exactly ``W' x + b'`` (the ONNX model); in train mode,
where batch-norm uses the batch's own statistics, it starts close to it.

    python -m spineviewer.train from-onnx --onnx models/spineviewer-unet-v4.onnx \
        --out runs/v4_from_onnx/best.pt --holdout 5 --holdout-seed 20261201
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from spineviewer.train.unet import UNet

__all__ = ["checkpoint_from_onnx"]


def _conv_pairs(model: UNet) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, batch-norm) pairs in forward order: encoders, then decoders."""
    pairs = []
    for block in list(model.encoders) + list(model.decoders):
        pairs += [(block[0], block[1]), (block[3], block[4])]
    return pairs


def _onnx_convs(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    convs = []
    for node in m.graph.node:
        if node.op_type == "Conv" and not node.input[1].startswith("head."):
            convs.append((inits[node.input[1]], inits[node.input[2]]))
    return convs, inits


def checkpoint_from_onnx(onnx_path: str | Path, out: str | Path, *, holdout: int,
                         holdout_seed: int, n_samples: int = 16, seed: int = 0) -> float:
    """Write ``{"model", "config", "step"}`` for ``--init``; returns the max abs difference
    of its eval-mode logits from onnxruntime's on one synthetic slice."""
    import onnxruntime as ort

    from spineviewer.synth.training import train_sample

    convs, inits = _onnx_convs(Path(onnx_path))
    base = int(convs[0][0].shape[0])
    model = UNet(1, 4, base)
    pairs = _conv_pairs(model)
    if len(pairs) != len(convs):
        raise ValueError(f"{onnx_path}: {len(convs)} folded convolutions, the U-Net has "
                         f"{len(pairs)}")
    with torch.no_grad():
        for (conv, bn), (w, b) in zip(pairs, convs):
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(np.array(b)))
        for k, up in enumerate(model.ups):
            up.weight.copy_(torch.from_numpy(np.array(inits[f"ups.{k}.weight"])))
            up.bias.copy_(torch.from_numpy(np.array(inits[f"ups.{k}.bias"])))
        model.head.weight.copy_(torch.from_numpy(np.array(inits["head.weight"])))
        model.head.bias.copy_(torch.from_numpy(np.array(inits["head.bias"])))
    model.eval()
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.stack([train_sample(rng)[0] for _ in range(n_samples)])[:, None])
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [conv.register_forward_hook(
        lambda _m, _i, y, k=k: stats.__setitem__(k, (y.mean((0, 2, 3)), y.var((0, 2, 3)))))
        for k, (conv, _bn) in enumerate(pairs)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for k, (_conv, bn) in enumerate(pairs):
            mean, var = stats[k]
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.add_(mean)
        got = model(x[:1]).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x[:1].numpy()})[0]
    diff = float(np.abs(got - want).max())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "step": 0,
                "config": {"holdout": holdout, "seed": holdout_seed, "holdout_seed": holdout_seed,
                           "base": base, "from_onnx": str(onnx_path)}}, out)
    return diff
