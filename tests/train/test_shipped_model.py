"""The shipped ONNX model (no PyTorch): card keys, sha256, I/O names, a phantom slice."""

import json
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

MODELS = Path(__file__).resolve().parents[2] / "models"
CARD_KEYS = {"name", "version", "input", "classes", "output", "sha256", "data", "recipe",
             "metrics"}


def _shipped() -> list[Path]:
    return sorted(p for p in MODELS.glob("spineviewer-unet-*.onnx") if "int8" not in p.stem)


@pytest.fixture(scope="module")
def model_path() -> Path:
    found = _shipped()
    if not found:
        pytest.skip("no shipped model in models/")
    return found[0]


def test_card_keys_and_sha256(model_path):
    from spineviewer.train.card import sha256_file

    card = json.loads(model_path.with_suffix(".json").read_text())
    assert set(card) == CARD_KEYS
    assert card["sha256"] == sha256_file(model_path)
    assert card["input"] == {"shape": [448, 320], "stride": 16, "spacing_mm": 0.6,
                             "normalisation": {"scale": 2500.0, "clip": 1.0}}
    assert card["classes"] == ["background", "body", "sacrum", "disc"]
    assert card["output"] == "logits"
    assert "van der Graaf" in json.dumps(card["data"])
    assert model_path.stat().st_size < 40e6
    assert model_path.with_suffix(".md").is_file()


def test_runs_and_segments_a_phantom(model_path):
    from spineviewer.synth.training import train_sample
    from spineviewer.train.evaluate import OnnxPredictor, dice

    pred = OnnxPredictor(model_path, threads=2)
    io = pred.session
    assert [i.name for i in io.get_inputs()] == ["image"]
    assert list(io.get_inputs()[0].shape) == ["N", 1, "H", "W"]
    assert [o.name for o in io.get_outputs()] == ["logits"]
    rng = np.random.default_rng(4242)
    scores = []
    for _ in range(4):
        img, tgt = train_sample(rng)
        logits = pred.logits(img)
        assert logits.shape == (4, 448, 320)
        assert np.isfinite(logits).all()
        scores.append(dice(logits.argmax(0), tgt, 1))
    # Fresh phantoms score near the card's measured phantom Dice (30-slice mean); 4 slices
    # scatter, hence the margin. Never below 0.5: a broken export scores ~0.
    card = json.loads(model_path.with_suffix(".json").read_text())
    measured = card["metrics"].get("phantom_body_dice_mean", 0.75)
    assert np.mean(scores) > max(0.5, measured - 0.2)
