"""Static int8 quantisation (per-channel weights, QDQ) calibrated on real SPIDER slices.

No PyTorch: onnxruntime.quantization only. The int8 model is shipped only when its SPIDER
val body Dice is within 0.005 of the fp32 model (decided by the caller from
``evaluate_model`` results).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spineviewer.train.data import (
    derive_spider_target,
    load_spider,
    read_manifest,
    spider_eval_sample,
)

__all__ = ["calibration_slices", "quantize_int8"]


def calibration_slices(spider_root: str | Path, n: int = 20, seed: int = 5) -> np.ndarray:
    """(n, 1, 1, H, W) float32 model inputs from SPIDER ``train`` slices (fixed seed)."""
    cases = read_manifest(spider_root, "train")
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(cases), n, replace=False):
        img, m = load_spider(spider_root, cases[int(i)])
        x, _ = spider_eval_sample(img, derive_spider_target(m))
        out.append(x[None, None])
    return np.stack(out).astype(np.float32)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, spider_root: str | Path,
                  n_calib: int = 20) -> Path:
    """Write a static int8 (per-channel, QDQ, MinMax-calibrated) copy of ``fp32_path``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    data = calibration_slices(spider_root, n_calib)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(data)

        def get_next(self) -> dict | None:
            x = next(self.it, None)
            return None if x is None else {"image": x}

    out_path = Path(out_path)
    pre = out_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre))
    quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    pre.unlink(missing_ok=True)
    return out_path
