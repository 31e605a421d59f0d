"""U-Net shapes, the Dice + CE loss with ignored pixels, ONNX export round-trip (PyTorch)."""

import json
import os

import numpy as np
import pytest

if os.environ.get("SPINEVIEWER_REQUIRE_TRAIN"):  # CI (.ci/run): the [train] extra must be there
    import torch
else:
    torch = pytest.importorskip("torch", reason="the optional [train] extra is not installed")

from spineviewer.train.data import BG_OR_SACRUM, IGNORE
from spineviewer.train.loop import class_edges, dice_ce_loss, dice_per_class
from spineviewer.train.unet import UNet, conv_flops, count_parameters


def test_unet_shapes_and_width():
    torch.manual_seed(0)
    m = UNet(1, 4, base=4).eval()
    with torch.no_grad():
        y = m(torch.zeros(2, 1, 64, 48))
    assert tuple(y.shape) == (2, 4, 64, 48)
    enc_widths = [blk[0].out_channels for blk in m.encoders]
    assert enc_widths == [4, 8, 16, 32, 64]
    assert len(m.ups) == 4                       # skips from the first four blocks


def test_parameter_and_flop_counts_scale_with_width():
    small, big = UNet(base=4), UNet(base=8)
    # conv weights scale with width squared (the 1-channel input layer and biases do not)
    assert 3.6 < count_parameters(big) / count_parameters(small) < 4.0
    assert 3.5 < conv_flops(big, (64, 64)) / conv_flops(small, (64, 64)) < 4.0


def test_loss_ignores_ignore_pixels():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 16, 16)
    target = torch.randint(0, 4, (2, 16, 16))
    target[:, 8:] = IGNORE
    base = dice_ce_loss(logits, target)
    changed = logits.clone()
    changed[:, :, 8:] = torch.randn(2, 4, 8, 16) * 10     # only ignored pixels change
    assert torch.isclose(dice_ce_loss(changed, target), base, atol=1e-6)
    changed[:, :, :8] += torch.randn(2, 4, 8, 16)          # valid pixels change
    assert not torch.isclose(dice_ce_loss(changed, target), base, atol=1e-4)


def test_partial_label_penalises_body_but_not_sacrum():
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, :4, 4:12] = 1
    target[0, 8:] = BG_OR_SACRUM                  # below the lowest disc: bg or sacrum
    def logits_with(cls_below: int) -> torch.Tensor:
        lab = target.clone()
        lab[0, 8:] = cls_below
        return torch.nn.functional.one_hot(lab, 4).permute(0, 3, 1, 2).float() * 20

    as_bg = float(dice_ce_loss(logits_with(0), target))
    as_sacrum = float(dice_ce_loss(logits_with(2), target))
    as_body = float(dice_ce_loss(logits_with(1), target))
    assert as_bg < 0.05 and as_sacrum < 0.05      # either answer is right there
    assert as_body > 1.0                          # body on the sacrum region is wrong
    # the weight scales only that region's cross-entropy
    heavy = float(dice_ce_loss(logits_with(1), target, partial_weight=5.0))
    assert heavy > 3.0 * as_body
    assert float(dice_ce_loss(logits_with(2), target, partial_weight=5.0)) < 0.05


def test_loss_near_zero_for_perfect_prediction():
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 4:8, 4:8] = 1
    target[0, 10:12] = 3
    logits = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float() * 50
    assert float(dice_ce_loss(logits, target)) < 0.02
    assert float(dice_ce_loss(-logits, target)) > 1.0


def test_hard_dice():
    t = np.zeros((10, 10), np.uint8)
    t[:5] = 1
    p = np.zeros_like(t)
    p[:5, :5] = 1
    assert dice_per_class(p, t, 1) == pytest.approx(2 * 25 / (25 + 50))
    t2 = t.copy()
    t2[:, 5:] = IGNORE
    assert dice_per_class(p, t2, 1) == pytest.approx(1.0)
    assert np.isnan(dice_per_class(p, t, 2))


def test_export_round_trip(tmp_path):
    import onnxruntime as ort

    from spineviewer.train.export import check_onnx, export_onnx

    torch.manual_seed(0)
    m = UNet(1, 4, base=2)
    # non-trivial batch-norm statistics so that folding them matters
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(2, 1, 64, 48) * 2)
    m.eval()
    path = export_onnx(m, tmp_path / "tiny.onnx", shape=(64, 48))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "BatchNormalization" not in ops
    assert check_onnx(m, path, n=1, shape=(64, 48)) < 1e-4


def test_holdout_patients_are_train_patients_chosen_reproducibly(tmp_path):
    from spineviewer.train.loop import TrainConfig, holdout_cases

    rows = ["file,case,slice,central_rank,split,rows,cols"]
    for case in range(1, 21):
        split = "val" if case > 16 else "train"
        rows += [f"spider{case:03d}_s{s:03d}.png,{case},{s},{s - 2},{split},64,64"
                 for s in range(5)]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    cfg = TrainConfig(spider_root=str(tmp_path), out_dir=str(tmp_path / "run"), holdout=4)
    held = holdout_cases(cfg)
    assert len(set(held)) == 4 and all(1 <= c <= 16 for c in held)   # never a val patient
    assert holdout_cases(cfg) == held                                 # reproducible
    assert holdout_cases(TrainConfig(spider_root=str(tmp_path), out_dir="x", holdout=0)) == []


def test_fine_tune_holds_out_the_patients_of_its_initial_run(tmp_path):
    from dataclasses import asdict

    from spineviewer.train.loop import TrainConfig, holdout_cases, inherit_holdout

    rows = ["file,case,slice,central_rank,split,rows,cols"]
    rows += [f"spider{case:03d}_s000.png,{case},0,0,train,64,64" for case in range(1, 31)]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    first = TrainConfig(spider_root=str(tmp_path), out_dir="a", holdout=5, seed=11)
    tune = TrainConfig(spider_root=str(tmp_path), out_dir="b", holdout=5, seed=12)
    assert holdout_cases(tune) != holdout_cases(first)   # a fresh seed would choose others
    inherit_holdout(tune, asdict(first))
    assert holdout_cases(tune) == holdout_cases(first)
    again = TrainConfig(spider_root=str(tmp_path), out_dir="c", holdout=5, seed=13)
    inherit_holdout(again, asdict(tune))                   # a fine-tune of a fine-tune
    assert holdout_cases(again) == holdout_cases(first)
    with pytest.raises(ValueError):
        inherit_holdout(TrainConfig(spider_root=str(tmp_path), out_dir="d", holdout=5),
                        asdict(TrainConfig(spider_root=str(tmp_path), out_dir="e", holdout=0)))


def test_class_edges_mark_borders_only():
    target = torch.zeros(1, 20, 20, dtype=torch.long)
    target[0, 5:15, 5:15] = 1
    target[0, 0, :] = IGNORE                       # ignore pixels are no class
    edges = class_edges(target, 4, radius=1)[0]
    assert edges[4, 10] == 1 and edges[5, 10] == 1  # both sides of the body border
    assert edges[10, 10] == 0 and edges[18, 18] == 0  # deep inside, far outside
    assert edges[1, 10] == 0                        # next to ignore, not a class border


def test_edge_weight_scales_only_border_errors():
    target = torch.zeros(1, 20, 20, dtype=torch.long)
    target[0, 5:15, 5:15] = 1
    good = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float() * 20
    far = good.clone()
    far[0, :, 18, 18] = torch.tensor([0.0, 20.0, 0.0, 0.0])      # error far from a border
    near = good.clone()
    near[0, :, 5, 10] = torch.tensor([20.0, 0.0, 0.0, 0.0])      # error on the border
    for logits in (far, near):
        assert float(dice_ce_loss(logits, target)) > 0.01
    ratio_far = float(dice_ce_loss(far, target, edge_weight=4)) / float(dice_ce_loss(far, target))
    ratio_near = float(dice_ce_loss(near, target, edge_weight=4)) / float(dice_ce_loss(near, target))
    assert ratio_far == pytest.approx(1.0, abs=1e-3)
    assert ratio_near > 1.5


def _fake_spider(root):
    """Two tiny SPIDER-like train slices: vertebrae and discs stacked, canal behind."""
    from skimage.io import imsave

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mask = np.zeros((256, 200), np.uint8)
    for top in range(10, 220, 40):
        mask[top:top + 30, 50:130] = 1                 # vertebral body
        mask[top + 30:top + 38, 52:128] = 2            # disc
    mask[:, 135:150] = 3                               # canal
    image = (40 + 150 * (mask == 1) + 200 * (mask == 2)).astype(np.uint8)
    rows = ["file,case,slice,central_rank,split,rows,cols"]
    for case in (1, 2):
        name = f"spider{case:03d}_s000.png"
        imsave(root / "images" / name, image, check_contrast=False)
        imsave(root / "masks" / name, mask, check_contrast=False)
        rows.append(f"{name},{case},0,0,train,256,200")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_val_every_zero_trains_without_selection_and_keeps_final_weights(tmp_path):
    from spineviewer.train.loop import TrainConfig, train

    _fake_spider(tmp_path / "spider")
    cfg = TrainConfig(spider_root=str(tmp_path / "spider"), out_dir=str(tmp_path / "run"),
                      base=2, batch=1, steps=3, synth_fraction=0.0, num_workers=0,
                      crop=(64, 64), val_every=0, threads=1, holdout=0)
    out = train(cfg)
    assert not list(out.glob("val_set*.npz"))          # SPIDER val never loaded
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["steps_done"] == 3 and recipe["history"] == []
    best = torch.load(out / "best.pt", weights_only=False)
    last = torch.load(out / "last.pt", weights_only=False)
    assert best["step"] == last["step"] == 3
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    assert "no validation" in (out / "train.log").read_text()
    from spineviewer.train.export import export_checkpoint

    onnx_path = export_checkpoint(out / "best.pt", tmp_path / "tiny.onnx")
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    assert card["recipe"]["checkpoint_selection"].startswith("none: the final weights")


def test_checkpoint_from_onnx_unfolds_batch_norm_exactly(tmp_path):
    """A shipped ONNX file (batch-norm folded) becomes a --init checkpoint whose eval-mode
    output is the ONNX model's, and which records the held-out patients' seed."""
    from spineviewer.train.export import export_onnx
    from spineviewer.train.from_onnx import checkpoint_from_onnx

    torch.manual_seed(3)
    m = UNet(1, 4, base=2)
    with torch.no_grad():  # non-trivial batch-norm so that folding changes the weights
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    onnx_path = export_onnx(m, tmp_path / "m.onnx", shape=(64, 48))
    diff = checkpoint_from_onnx(onnx_path, tmp_path / "init.pt", holdout=5, holdout_seed=7,
                                n_samples=2)
    assert diff < 1e-4
    ck = torch.load(tmp_path / "init.pt", map_location="cpu", weights_only=False)
    assert ck["config"]["holdout"] == 5 and ck["config"]["holdout_seed"] == 7
    back = UNet(1, 4, base=2)
    back.load_state_dict(ck["model"])
    x = torch.rand(1, 1, 64, 48)
    with torch.no_grad():
        assert torch.allclose(back.eval()(x), m.eval()(x), atol=1e-4)
