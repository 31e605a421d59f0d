"""The model soup: a uniform weight average of fine-tunes (``train soup``)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")


def _ckpt(path, seed, base=4):
    from spineviewer.train.unet import UNet

    torch.manual_seed(seed)
    m = UNet(1, 4, base)
    for p in m.parameters():
        p.data.normal_()
    for name, b in m.named_buffers():
        if b.is_floating_point():
            b.data.uniform_(0.5, 1.5)
    torch.save({"model": m.state_dict(), "base": base,
                "classes": ["background", "body", "sacrum", "disc"], "step": 100 * seed,
                "config": {"seed": seed, "base": base}}, path)
    return m.state_dict()


def test_soup_averages_every_float_tensor_and_records_its_ingredients(tmp_path):
    from spineviewer.train.export import load_checkpoint_model
    from spineviewer.train.soup import average_checkpoints

    states = [_ckpt(tmp_path / f"c{k}.pt", k) for k in (1, 2, 3)]
    out = tmp_path / "soup" / "best.pt"
    average_checkpoints([tmp_path / f"c{k}.pt" for k in (1, 2, 3)], out)
    model, ck = load_checkpoint_model(out)         # the exporter reads it like a run's
    got = model.state_dict()
    for name, t in states[0].items():
        if t.is_floating_point():
            want = (states[0][name] + states[1][name] + states[2][name]) / 3
            torch.testing.assert_close(got[name], want, rtol=1e-6, atol=1e-6)
            assert not torch.equal(got[name], states[0][name])
        else:
            assert torch.equal(got[name], t)
    recipe = json.loads((out.parent / "recipe.json").read_text())
    assert [i["seed"] for i in recipe["soup_of"]] == [1, 2, 3]
    assert [i["seed"] for i in ck["config"]["notes"]["soup_of"]] == [1, 2, 3]


def test_soup_refuses_mismatched_or_single_checkpoints(tmp_path):
    from spineviewer.train.soup import average_checkpoints

    _ckpt(tmp_path / "a.pt", 1, base=4)
    _ckpt(tmp_path / "b.pt", 2, base=8)
    with pytest.raises(ValueError, match="architecture"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "s.pt")
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([tmp_path / "a.pt"], tmp_path / "s.pt")


def test_soup_card_recipe_names_each_ingredient_run_and_the_average(tmp_path):
    from pathlib import Path

    from spineviewer.train.export import _soup_recipe

    for k in (1, 2):
        _ckpt(tmp_path / f"c{k}.pt", k)
    ingredients = [{"checkpoint": str(tmp_path / f"c{k}.pt"), "step": 100 * k, "seed": k}
                   for k in (1, 2)]
    r = _soup_recipe(ingredients, Path("models/x.onnx"))
    assert "--seed 1" in r["command"] and "--seed 2" in r["command"]
    assert "spineviewer.train soup --ckpt runs/<ingredient1>/best.pt runs/<ingredient2>/best.pt" \
        in r["command"]
    assert r["command"].endswith("--out models/x.onnx")
    assert "step 100, seed 1; step 200, seed 2" in r["checkpoint_selection"]
