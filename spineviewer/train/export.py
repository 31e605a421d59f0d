"""Export a training checkpoint to a single-file ONNX model plus its model card.

The card (``models/<name>.json``) is what ``spineviewer.core.segment`` reads: input shape,
spacing, normalisation, class names, output kind and the sha256 of the ONNX file.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spineviewer.train.card import base_card, write_card
from spineviewer.train.data import MODEL_SHAPE, TARGET_CLASSES
from spineviewer.train.unet import UNet, conv_flops, count_parameters

__all__ = ["check_onnx", "export_checkpoint", "export_onnx", "load_checkpoint_model"]

OPSET = 17


def load_checkpoint_model(ckpt_path: str | Path) -> tuple[UNet, dict]:
    """(model in eval mode, checkpoint dict) from a ``.pt`` written by the training loop."""
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = UNet(1, len(ck.get("classes", TARGET_CLASSES)), int(ck["base"]))
    model.load_state_dict(ck["model"])
    model.eval()
    return model, ck


def export_onnx(model: torch.nn.Module, out_path: str | Path,
                shape: tuple[int, int] = MODEL_SHAPE) -> Path:
    """Write ``model`` (eval mode: batch-norm folded into the convolutions by the
    exporter's constant folding) as a single-file ONNX, opset 17, input "image"
    (N, 1, H, W) float32, output "logits" (N, C, H, W); N, H, W symbolic (H, W multiples
    of the stride, 16)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().to(memory_format=torch.contiguous_format)
    x = torch.zeros(1, 1, *shape, dtype=torch.float32)
    with torch.no_grad():
        torch.onnx.export(model, (x,), str(out_path), opset_version=OPSET,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N", 2: "H", 3: "W"},
                                        "logits": {0: "N", 2: "H", 3: "W"}},
                          do_constant_folding=True, dynamo=False)
    import onnx

    m = onnx.load(str(out_path))
    onnx.checker.check_model(m)
    onnx.save_model(m, str(out_path), save_as_external_data=False)
    return out_path


def check_onnx(model: torch.nn.Module, onnx_path: str | Path, n: int = 2, seed: int = 0,
               shape: tuple[int, int] = MODEL_SHAPE) -> float:
    """Largest absolute logit difference onnxruntime vs torch on random [0,1] inputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    model.eval()
    for _ in range(n):
        x = rng.random((1, 1, *shape), dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(["logits"], {"image": x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def _train_command(cfg: dict[str, Any]) -> str:
    """The ``train`` command line that reproduces a checkpoint's run configuration."""
    parts = ["python -m spineviewer.train train --spider <SPIDER> --out runs/<run>",
             f"--base {cfg.get('base')}", f"--steps {cfg.get('steps')}",
             f"--max-minutes {cfg.get('max_minutes')}", f"--lr {cfg.get('lr')}",
             f"--synth-fraction {cfg.get('synth_fraction')}", f"--seed {cfg.get('seed')}",
             f"--val-every {cfg.get('val_every')}"]
    if cfg.get("crop"):
        parts.append(f"--crop {cfg['crop'][0]} {cfg['crop'][1]}")
    if cfg.get("synth_fracture_prob", 0.25) != 0.25:
        parts.append(f"--synth-fracture-prob {cfg['synth_fracture_prob']}")
    if cfg.get("hard_rim_prob"):
        parts.append(f"--hard-rim-prob {cfg['hard_rim_prob']}")
    if cfg.get("partial_weight", 1.0) != 1.0:
        parts.append(f"--partial-weight {cfg['partial_weight']}")
    if cfg.get("s1_pseudo"):
        parts.append("--s1-pseudo")
    if cfg.get("edge_weight"):
        parts.append(f"--edge-weight {cfg['edge_weight']}")
    if cfg.get("init"):
        parts.append(f"--init {cfg['init']}")
    parts.append(f"--below-disc {cfg.get('below_disc', 'partial')}")
    if cfg.get("holdout"):
        parts.append(f"--holdout {cfg['holdout']}")
    return " ".join(parts)


def _soup_recipe(ingredients: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Recipe entries of a model soup (``train.soup``): each ingredient's own run command (from
    its checkpoint's configuration), the average, the export."""
    cmds, cfgs = [], []
    for i in ingredients:
        try:
            ick = torch.load(i["checkpoint"], map_location="cpu", weights_only=False)
            cfgs.append(ick.get("config", {}))
        except (OSError, RuntimeError):
            cfgs.append({})
        where = f"runs/<ingredient{len(cmds) + 1}>"
        cmds.append(_train_command(cfgs[-1]).replace("runs/<run>", where) if cfgs[-1]
                    else f"(checkpoint {i['checkpoint']} not found)")
    names = " ".join(f"runs/<ingredient{k + 1}>/best.pt" for k in range(len(ingredients)))
    return {
        "checkpoint_step": None,
        "checkpoint_selection": (
            "uniform weight average (model soup, Wortsman et al. 2022) of "
            f"{len(ingredients)} fine-tunes from the same start, each its own run's best "
            "checkpoint on the held-out train patients: "
            + "; ".join(f"step {i['step']}, seed {i['seed']}" for i in ingredients)),
        "soup_of": ingredients,
        "command": " ; ".join(cmds) + f" ; python -m spineviewer.train soup --ckpt {names} "
                   f"--out runs/<soup>/best.pt ; python -m spineviewer.train export --ckpt "
                   f"runs/<soup>/best.pt --out {out.as_posix()}",
    }


def _held_out(cfg: dict[str, Any]) -> list[int]:
    """The train patients the run withheld (empty without ``holdout`` or the SPIDER folder)."""
    from spineviewer.train.data import holdout_patients

    seed = cfg.get("holdout_seed")
    seed = cfg.get("seed") if seed is None else seed
    try:
        return holdout_patients(cfg.get("spider_root", ""), int(cfg.get("holdout") or 0),
                                int(seed or 0))
    except OSError:
        return []


def export_checkpoint(ckpt: str | Path, out: str | Path, name: str | None = None,
                      version: str = "1.0.0", recipe_path: str | Path | None = None,
                      extra_recipe: dict[str, Any] | None = None) -> Path:
    """Export ``ckpt`` to ``out`` (.onnx), verify against torch (max |diff| < 1e-3) and write
    the card, keeping existing ``metrics`` of a previous card only if the sha256 matches.
    Returns the ONNX path."""
    out = Path(out)
    name = name or out.stem
    model, ck = load_checkpoint_model(ckpt)
    t0 = time.time()
    export_onnx(model, out)
    diff = check_onnx(model, out)
    if diff > 1e-3:
        raise RuntimeError(f"onnxruntime differs from torch by {diff:.2e} (> 1e-3)")
    size_mb = out.stat().st_size / 1e6
    if size_mb >= 40:
        raise RuntimeError(f"ONNX file is {size_mb:.1f} MB (>= 40 MB)")
    recipe_file = Path(recipe_path) if recipe_path else Path(ckpt).parent / "recipe.json"
    run = json.loads(recipe_file.read_text()) if recipe_file.exists() else {}
    cfg = ck.get("config", {})
    recipe: dict[str, Any] = {
        "architecture": f"U-Net, 5 levels, filters {cfg.get('base')}..{16 * int(cfg.get('base', 0))}",
        "base_filters": cfg.get("base"),
        "parameters": count_parameters(model),
        "gflops_per_slice": round(conv_flops(model) / 1e9, 3),
        "checkpoint_step": ck.get("step"),
        "optimizer": f"Adam lr {cfg.get('lr')} cosine to {cfg.get('lr_min')} over "
                     f"min(steps, wall-clock budget), weight decay {cfg.get('weight_decay')}",
        "loss": "soft Dice (body, sacrum, disc; ignore pixels excluded) + cross-entropy" + (
            "; SPIDER pixels caudal to the lowest labelled disc are a partial label 'background "
            "or sacrum' (CE -log(p_bg + p_sacrum), negatives for the body/disc Dice, excluded "
            "from the sacrum Dice" + (f"; that CE weighted x{cfg['partial_weight']:g}"
                                      if cfg.get("partial_weight", 1.0) != 1.0 else "")
            + ")" + ("; there, a band under the disc (S1's upper body) is labelled sacrum "
                     "(--s1-pseudo)" if cfg.get("s1_pseudo") else "")
            if cfg.get("below_disc", "partial") == "partial" else
            "; SPIDER pixels caudal to the lowest labelled disc ignored") + (
            f"; cross-entropy weighted x{1 + cfg['edge_weight']:g} within 2 px of a class border "
            "(--edge-weight)" if cfg.get("edge_weight") else ""),
        "batch": cfg.get("batch"),
        "planned_steps": cfg.get("steps"),
        "max_minutes": cfg.get("max_minutes"),
        "synth_fraction": cfg.get("synth_fraction"),
        "seed": cfg.get("seed"),
        "crop": cfg.get("crop"),
        "init": cfg.get("init"),
        "spider_below_lowest_disc": cfg.get("below_disc", "partial"),
        "checkpoint_selection": (
            "none: the final weights (--val-every 0); SPIDER val unseen until the final "
            "evaluation" if cfg.get("val_every") == 0 else
            f"best periodic validation score on {cfg['holdout']} SPIDER train patients held "
            "out of training, plus phantoms; SPIDER val unseen until the final evaluation"
            if cfg.get("holdout") else
            "best periodic validation score on SPIDER val slices plus phantoms"),
        "augmentation": "SPIDER: assumed native spacing U(0.45,0.85) mm resampled to 0.6 mm, "
                        "rotation +-15 deg, translation +-60 mm rows (crops cutting the sacrum "
                        "or T12), gamma [0.6,1.6], linear bias field, gain U(0.3,1.3) on "
                        "image/255, blur, Gaussian noise, clip [0,1]; synthetic: generator's "
                        "own domain randomisation (+ shift/gain/gamma/noise on reuse)",
        "precision": "bf16 autocast" if cfg.get("bf16") else "fp32, channels_last",
        "threads": cfg.get("threads"),
        "steps_done": run.get("steps_done", ck.get("step")),
        "train_minutes": round(float(run.get("train_minutes", ck.get("train_s", 0) / 60)), 1),
        "machine": run.get("machine") or f"{platform.machine()}, {os.cpu_count()} CPUs, "
                                          f"torch {torch.__version__}",
        "onnx_opset": OPSET,
        "onnx_max_abs_diff_vs_torch": diff,
        "onnx_size_mb": round(size_mb, 2),
        "command": _train_command(cfg) + "; python -m spineviewer.train export --ckpt "
                   f"runs/<run>/best.pt --out {out.as_posix()}",
    }
    if ck.get("soup_of"):
        recipe.update(_soup_recipe(ck["soup_of"], out))
    held = _held_out(cfg)
    if held:
        recipe["held_out_train_patients"] = held
    if extra_recipe:
        recipe.update(extra_recipe)
    metrics: dict[str, Any] = {}
    hist = ck.get("history") or []
    best = [h for h in hist if h["step"] == ck.get("step")]
    if best:
        metrics["training_validation_at_checkpoint"] = {
            k: round(v, 4) for k, v in best[-1].items() if k not in ("step",)}
    card = base_card(name, version, out, recipe, metrics)
    old = out.with_suffix(".json")
    if old.exists():
        prev = json.loads(old.read_text())
        if prev.get("sha256") == card["sha256"]:
            card["metrics"] = {**prev.get("metrics", {}), **metrics}
    write_card(card, out)
    print(f"exported {out} ({size_mb:.2f} MB, max |onnx - torch| = {diff:.2e}), "
          f"export+check {time.time() - t0:.0f} s")
    return out
