"""Training is safe by default: held-out selection, a config-keyed validation cache and
DataLoader workers that shard the sample stream instead of repeating it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spineviewer.train import loop
from spineviewer.train.loop import TrainConfig, stream_rng, train, val_cache_path


def _manifest(root, n_patients=8):
    root.mkdir(parents=True, exist_ok=True)
    rows = ["file,case,central_rank,slice,split,rows,cols"]
    rows += [f"p{c}_{s}.png,{c},{s},{s},train,256,200" for c in range(1, n_patients + 1)
             for s in range(3)]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_selection_defaults_to_held_out_train_patients(tmp_path, monkeypatch):
    from spineviewer.train.__main__ import main

    assert TrainConfig(spider_root="x", out_dir="y").holdout > 0
    seen = {}
    monkeypatch.setattr(loop, "train", lambda cfg: seen.setdefault("cfg", cfg))
    main(["train", "--spider", str(tmp_path), "--out", str(tmp_path / "run")])
    assert seen["cfg"].holdout > 0 and not seen["cfg"].select_on_val   # the CLI agrees


def test_selection_on_spider_val_must_be_asked_for(tmp_path):
    cfg = TrainConfig(spider_root=str(tmp_path), out_dir=str(tmp_path / "run"), holdout=0,
                      val_every=10, steps=1, num_workers=0)
    with pytest.raises(ValueError, match="held-out"):
        train(cfg)


def test_validation_cache_is_keyed_on_its_configuration(tmp_path):
    _manifest(tmp_path)
    out = tmp_path / "run"
    base = TrainConfig(spider_root=str(tmp_path), out_dir=str(out), holdout=3, seed=1)
    same = TrainConfig(spider_root=str(tmp_path), out_dir=str(out), holdout=3, seed=1,
                       lr=5e-4)                       # training-only change: same set
    assert val_cache_path(base, out) == val_cache_path(same, out)
    # the band's default (0) keeps the name of the caches made before the option existed
    assert val_cache_path(TrainConfig(spider_root=str(tmp_path), out_dir=str(out), holdout=3,
                                      seed=1, hard_rim_prob=0.0), out) == val_cache_path(base, out)
    for change in ({"holdout": 4}, {"seed": 2}, {"n_val_spider": 20}, {"val_synth_seed": 5},
                   {"n_val_synth": 0}, {"s1_pseudo": True}, {"hard_rim_prob": 0.5}):
        other = TrainConfig(spider_root=str(tmp_path), out_dir=str(out),
                            **{"holdout": 3, "seed": 1, **change})
        assert val_cache_path(other, out) != val_cache_path(base, out), change


def test_workers_shard_the_stream(monkeypatch):
    class Info:
        def __init__(self, i):
            self.id = i

    draws = {}
    for wid in (0, 1, 2):
        monkeypatch.setattr(torch.utils.data, "get_worker_info",
                            lambda w=wid: Info(w))
        draws[wid] = stream_rng(7, 100).random(5)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    single = stream_rng(7, 100).random(5)
    assert np.array_equal(single, draws[0])           # one worker: the stream as before
    assert not np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[1], draws[2])
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: Info(1))
    assert np.array_equal(stream_rng(7, 100).random(5), draws[1])   # reproducible
