"""Uniform weight average ("model soup") of fine-tunes that share one starting point.

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves
accuracy without increasing inference time", ICML 2022. Fine-tunes of the same initial
weights lie in one basin of the loss; their average is one network of the same size and
speed, usually at least as good as the best of them and steadier on data none was chosen on.

Every floating tensor of the checkpoints' ``model`` state (batch-norm running statistics
included) is averaged; integer tensors (batch-norm step counters) are taken from the first.
The result is a checkpoint the exporter reads like a training run's (``model``, ``base``,
``classes``, ``config`` of the first ingredient, plus ``soup_of``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

__all__ = ["average_checkpoints"]


def average_checkpoints(paths: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Average the checkpoints ``paths`` (same architecture, same classes) into ``out``.

    Writes ``out`` and a ``recipe.json`` beside it (the first ingredient's configuration with
    the list of ingredients) and returns the checkpoint dict.
    """
    if len(paths) < 2:
        raise ValueError("a soup needs at least two checkpoints")
    cks = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    first = cks[0]
    for p, ck in zip(paths[1:], cks[1:]):
        if ck.get("base") != first.get("base") or ck.get("classes") != first.get("classes"):
            raise ValueError(f"{p}: architecture or classes differ from {paths[0]}")
        if set(ck["model"]) != set(first["model"]):
            raise ValueError(f"{p}: parameter names differ from {paths[0]}")
    state = {}
    for name, t0 in first["model"].items():
        if torch.is_floating_point(t0):
            state[name] = torch.stack([ck["model"][name].double() for ck in cks]).mean(0).to(
                t0.dtype)
        else:
            state[name] = t0.clone()
    ingredients = [{"checkpoint": str(p), "step": ck.get("step"),
                    "seed": (ck.get("config") or {}).get("seed")} for p, ck in zip(paths, cks)]
    config = dict(first.get("config") or {})
    config["notes"] = {**(config.get("notes") or {}),
                       "soup_of": ingredients}
    soup = {"model": state, "base": first["base"], "classes": first.get("classes"),
            "config": config, "step": None, "history": [], "soup_of": ingredients}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(soup, out)
    (out.parent / "recipe.json").write_text(json.dumps(
        {"config": config, "soup_of": ingredients,
         "steps_done": sum(int(i["step"] or 0) for i in ingredients)}, indent=1))
    return soup
