"""Inference benchmark of the shipped segmentation model(s) on CPU threads.

Prints, per ``models/*.onnx``: median latency per slice (onnxruntime, ``--threads`` intra-op
threads, batch 1, 448 x 320), the model's convolution FLOPs per slice (from the ONNX graph),
the achieved GFLOP/s and that as a fraction of this machine's fp32 matrix-multiply peak
(numpy GEMM on the same number of threads).

    python benchmarks/bench_inference.py [--threads 2] [--repeats 20] [models/x.onnx ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def gemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of fp32 GEMM rate (GFLOP/s) of numpy's BLAS on an n x n product."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def onnx_conv_flops(path: Path, shape: tuple[int, int] = (448, 320)) -> float:
    """FLOPs (2 per multiply-add) of Conv / ConvTranspose nodes for one slice, via shape
    inference on the ONNX graph."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    m = shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {t.name: numpy_helper.to_array(t).shape for t in m.graph.initializer}
    total = 0.0
    for node in m.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "QLinearConv"):
            continue
        w_name = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
        w = inits.get(w_name)
        if w is None:
            # quantised graphs: weights behind DequantizeLinear
            src = [n for n in m.graph.node if w_name in n.output]
            w = inits.get(src[0].input[0]) if src else None
        if w is None:
            continue
        if node.op_type == "ConvTranspose":
            inp = shapes.get(node.input[0])
            if not inp:
                continue
            total += 2.0 * float(np.prod(inp[1:])) * float(np.prod(w[1:]))
        else:
            out = shapes.get(node.output[0])
            if not out:
                continue
            total += 2.0 * float(np.prod(out[1:])) * float(np.prod(w[1:]))
    return total


def median_latency_s(path: Path, threads: int, repeats: int) -> float:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 1, 448, 320), dtype=np.float32)
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args(argv)
    _set_threads(a.threads)
    root = Path(__file__).resolve().parents[1]
    models = a.models or sorted((root / "models").glob("*.onnx"))
    if not models:
        print("no models/*.onnx found", file=sys.stderr)
        return 1
    peak = gemm_peak_gflops()
    print(f"machine: {os.cpu_count()} CPUs; fp32 GEMM peak on {a.threads} threads "
          f"(numpy 2048^3, best of 5): {peak:.1f} GFLOP/s")
    for p in models:
        flops = onnx_conv_flops(p)
        lat = median_latency_s(p, a.threads, a.repeats)
        rate = flops / lat / 1e9
        print(f"{p.name}: median {lat * 1000:.1f} ms/slice over {a.repeats} runs, "
              f"{flops / 1e9:.2f} GFLOP/slice, {rate:.1f} GFLOP/s = {100 * rate / peak:.0f}% "
              f"of the GEMM peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
