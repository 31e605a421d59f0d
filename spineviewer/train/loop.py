"""Training loop: mixed SPIDER + synthetic batches, Dice + CE, checkpoints, resume, time budget.

Run as ``python -m spineviewer.train train --spider PATH --out runs/NAME ...``. The run writes
``train.log``, ``last.pt`` (every ``ckpt_minutes`` and at the end), ``best.pt`` (best
validation body Dice) and ``recipe.json`` into ``--out``; re-running the same command resumes
from ``last.pt``. A file named ``STOP`` in the run folder ends the run cleanly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset

from spineviewer.train.data import (
    BG_OR_SACRUM,
    IGNORE,
    TARGET_CLASSES,
    augment_spider,
    derive_spider_target,
    holdout_patients,
    load_spider,
    read_manifest,
    spider_eval_sample,
)
from spineviewer.train.unet import UNet, count_parameters

__all__ = ["TrainConfig", "build_val_set", "class_edges", "dice_ce_loss", "dice_per_class",
           "train"]

#: Half-width (px at 0.6 mm) of the class-border band that ``edge_weight`` emphasises.
EDGE_RADIUS = 2


@dataclass
class TrainConfig:
    """All hyperparameters of one run (written to ``recipe.json``)."""

    spider_root: str
    out_dir: str
    base: int = 8
    batch: int = 4
    steps: int = 2500
    max_minutes: float = 90.0
    lr: float = 1e-3
    lr_min: float = 1e-5
    weight_decay: float = 0.0
    synth_fraction: float = 0.5
    synth_reuse: float = 0.5
    #: Chance that a synthetic vertebra is deformed (``synth.training.train_sample``).
    synth_fracture_prob: float = 0.25
    #: Share of synthetic samples whose cortex is a hard-edged dark band labelled bone
    #: (``synth.training.train_sample``; 0 = the soft rim only, as before the option).
    hard_rim_prob: float = 0.0
    #: Weight of the cross-entropy on SPIDER's "background or sacrum" region (``dice_ce_loss``).
    partial_weight: float = 1.0
    #: Extra cross-entropy weight on labelled pixels within ``EDGE_RADIUS`` px of a class
    #: border (0 = off; ``dice_ce_loss``): endplate contours, where morphometry is measured.
    edge_weight: float = 0.0
    #: Label S1's upper body on SPIDER as sacrum (``data.derive_spider_target``).
    s1_pseudo: bool = False
    seed: int = 20261129
    val_every: int = 200
    n_val_spider: int = 40
    n_val_synth: int = 40
    val_synth_seed: int = 777_001
    ckpt_minutes: float = 5.0
    threads: int = 2
    bf16: bool = False
    num_workers: int = 1
    crop: tuple[int, int] | None = None
    init: str | None = None
    below_disc: str = "partial"
    #: Train patients withheld from training and used (instead of SPIDER ``val``) to choose
    #: the best checkpoint, so ``val`` stays untouched until the final evaluation (the
    #: default). 0 trains on every train patient: then either no selection (``val_every``
    #: 0) or, only with ``select_on_val``, selection on ``n_val_spider`` val slices.
    holdout: int = 5
    #: Seed of the held-out choice (None: ``seed``). A fine-tune inherits its init run's.
    holdout_seed: int | None = None
    #: Allow checkpoint selection on SPIDER ``val`` (``holdout`` 0 with validation): its
    #: figures are then development figures, never held-out ones.
    select_on_val: bool = False
    notes: dict = field(default_factory=dict)


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, ignore: int = IGNORE,
                 smooth: float = 1.0, partial: int = BG_OR_SACRUM,
                 partial_weight: float = 1.0, edge_weight: float = 0.0) -> torch.Tensor:
    """Soft Dice over the foreground classes + cross-entropy, with partial labels.

    ``ignore`` pixels are excluded from both terms. ``partial`` pixels are known to be
    background or sacrum (classes 0 and 2): their cross-entropy is -log(p0 + p2), they count
    as negatives in the body and disc Dice, and are excluded from the sacrum Dice.
    ``partial_weight`` scales their cross-entropy (on SPIDER that region holds S1, which the
    network must not call a lumbar body). ``edge_weight`` adds that much cross-entropy
    weight on fully labelled pixels within ``EDGE_RADIUS`` px of a border between two classes
    (the border weighting of Ronneberger et al. 2015, here meant for the endplates, whose
    depressions are a small share of a body's Dice).

    Parameters
    ----------
    logits : (N, C, H, W) float tensor
    target : (N, H, W) long tensor with values in 0..C-1, ``partial`` or ``ignore``.
    """
    logits = logits.float()
    n_cls = logits.shape[1]
    full = target < n_cls
    part = target == partial
    logp = torch.log_softmax(logits, dim=1)
    tgt = torch.where(full, target, torch.zeros_like(target))
    nll_full = -logp.gather(1, tgt.unsqueeze(1)).squeeze(1)
    nll_part = -torch.logsumexp(logp[:, [0, 2]], dim=1) if n_cls > 2 else -logp[:, 0]
    n_lab = (full | part).sum().clamp(min=1)
    w_full = full.float()
    if edge_weight:
        w_full = w_full * (1.0 + edge_weight * class_edges(target, n_cls))
    ce = (nll_full * w_full + partial_weight * nll_part * part).sum() / n_lab
    probs = logp.exp()
    onehot = F.one_hot(tgt, n_cls).permute(0, 3, 1, 2).float() * full.unsqueeze(1)
    w = (full | part).unsqueeze(1).float().repeat(1, n_cls, 1, 1)
    if n_cls > 2:
        w[:, 2] = full.float()             # sacrum Dice only where the label is complete
    dims = (0, 2, 3)
    inter = (probs * onehot * w).sum(dims)[1:]
    denom = ((probs * w).sum(dims) + (onehot * w).sum(dims))[1:]
    dice = (2 * inter + smooth) / (denom + smooth)
    return ce + (1.0 - dice.mean())


def class_edges(target: torch.Tensor, n_cls: int, radius: int | None = None) -> torch.Tensor:
    """1.0 where a (2r+1)^2 window around a pixel holds more than one class (labels
    0..n_cls-1; partial and ignore pixels count as no class), else 0.0; (N, H, W)."""
    r = EDGE_RADIUS if radius is None else radius
    onehot = F.one_hot(torch.where(target < n_cls, target, torch.full_like(target, n_cls)),
                       n_cls + 1)[..., :n_cls].permute(0, 3, 1, 2).float()
    present = F.max_pool2d(onehot, 2 * r + 1, stride=1, padding=r)
    return (present.sum(1) > 1).float()


def dice_per_class(pred: np.ndarray, target: np.ndarray, cls: int, ignore: int = IGNORE
                   ) -> float:
    """Hard Dice of class ``cls`` (valid pixels only); NaN when absent from both."""
    valid = target != ignore
    p = (pred == cls) & valid
    t = (target == cls) & valid
    s = p.sum() + t.sum()
    return float("nan") if s == 0 else float(2.0 * (p & t).sum() / s)


def _synth_available() -> bool:
    try:
        from spineviewer.synth.training import train_sample  # noqa: F401
    except ImportError:
        return False
    return True


class MixedStream(IterableDataset):
    """Endless stream of (image (1,H,W) float32, target (H,W) int64) training pairs."""

    def __init__(self, cfg: TrainConfig, start_step: int) -> None:
        self.cfg = cfg
        self.start_step = start_step

    def __iter__(self):
        cfg = self.cfg
        rng = stream_rng(cfg.seed, self.start_step)
        held = set(holdout_cases(cfg))
        cases = [c for c in read_manifest(cfg.spider_root, "train") if c.case not in held]
        spider = []
        for c in cases:
            img, m = load_spider(cfg.spider_root, c)
            spider.append((img, derive_spider_target(m, s1_pseudo=cfg.s1_pseudo)))
        synth_fn = None
        cache: list[tuple[np.ndarray, np.ndarray]] = []
        while True:
            use_synth = rng.random() < cfg.synth_fraction
            if use_synth and synth_fn is None:
                try:
                    from spineviewer.synth.training import train_sample as synth_fn
                except ImportError:
                    synth_fn = None
            if use_synth and synth_fn is not None:
                if len(cache) >= 8 and rng.random() < cfg.synth_reuse:
                    img, tgt = _rejitter(rng, *cache[rng.integers(len(cache))])
                else:
                    try:
                        img, tgt = synth_fn(rng, fracture_prob=cfg.synth_fracture_prob,
                                            hard_rim_prob=cfg.hard_rim_prob)
                    except (ValueError, IndexError, RuntimeError, ArithmeticError) as e:
                        warnings.warn(f"synthetic sample skipped: {e}", stacklevel=1)
                        continue
                    img = np.asarray(img, np.float32)
                    tgt = np.asarray(tgt, np.uint8)
                    if len(cache) < 64:
                        cache.append((img, tgt))
                    else:
                        cache[rng.integers(len(cache))] = (img, tgt)
            else:
                img, tgt = spider[rng.integers(len(spider))]
                img, tgt = augment_spider(rng, img, tgt)
                if cfg.below_disc == "ignore":      # stage-1 recipe: no supervision there
                    tgt = np.where(tgt == BG_OR_SACRUM, IGNORE, tgt).astype(np.uint8)
            if cfg.crop is not None:
                ch, cw = cfg.crop
                r0 = int(rng.integers(0, img.shape[0] - ch + 1))
                c0 = int(rng.integers(0, img.shape[1] - cw + 1))
                img, tgt = img[r0:r0 + ch, c0:c0 + cw], tgt[r0:r0 + ch, c0:c0 + cw]
            yield (torch.from_numpy(np.ascontiguousarray(img[None], np.float32)),
                   torch.from_numpy(tgt.astype(np.int64)))


def stream_rng(seed: int, start_step: int) -> np.random.Generator:
    """The sample stream's generator, one independent stream per DataLoader worker.

    Every worker runs its own copy of the dataset; seeded alike they would all yield the same
    samples (a batch of copies). The worker id enters the seed, so the workers shard the
    stream instead of repeating it; with no workers (id 0) the stream is the single one.
    """
    info = torch.utils.data.get_worker_info()
    wid = 0 if info is None else int(info.id)
    return np.random.default_rng([seed, start_step, wid] if wid else [seed, start_step])


def val_cache_path(cfg: TrainConfig, out: Path) -> Path:
    """Where the selection set is cached: named by a hash of what it is built from, so a run
    resumed or reused with another hold-out, seed or size never reads a stale set."""
    key = {"spider_root": str(Path(cfg.spider_root).resolve()), "holdout": cfg.holdout,
           "holdout_cases": holdout_cases(cfg) if cfg.holdout else [],
           "n_val_spider": cfg.n_val_spider, "n_val_synth": cfg.n_val_synth,
           "val_synth_seed": cfg.val_synth_seed, "s1_pseudo": cfg.s1_pseudo,
           "synth": _synth_available(),
           **({"hard_rim_prob": cfg.hard_rim_prob} if cfg.hard_rim_prob else {})}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return out / f"val_set_{digest}.npz"


def _rejitter(rng: np.random.Generator, img: np.ndarray, tgt: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Reuse a cached synthetic pair: integer shift, gain and gamma change, fresh noise."""
    dr, dc = rng.integers(-40, 41), rng.integers(-25, 26)
    img = np.roll(img, (dr, dc), axis=(0, 1))
    tgt = np.roll(tgt, (dr, dc), axis=(0, 1))
    if dr > 0:
        img[:dr], tgt[:dr] = 0, 0
    elif dr < 0:
        img[dr:], tgt[dr:] = 0, 0
    if dc > 0:
        img[:, :dc], tgt[:, :dc] = 0, 0
    elif dc < 0:
        img[:, dc:], tgt[:, dc:] = 0, 0
    gamma = float(np.exp(rng.uniform(np.log(0.75), np.log(1.33))))
    img = np.clip(img, 0, 1) ** gamma * rng.uniform(0.7, 1.3)
    img = img + rng.normal(0, rng.uniform(0, 0.02), img.shape)
    return np.clip(img, 0, 1).astype(np.float32), tgt


def holdout_cases(cfg: TrainConfig) -> list[int]:
    """The ``cfg.holdout`` train patients withheld for checkpoint selection (seeded choice)."""
    seed = cfg.seed if cfg.holdout_seed is None else cfg.holdout_seed
    return holdout_patients(cfg.spider_root, cfg.holdout, seed)


def build_val_set(cfg: TrainConfig, cache_path: Path | None = None
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fixed selection set: SPIDER slices + ``n_val_synth`` phantoms.

    The SPIDER part is the held-out train patients (``cfg.holdout`` > 0; SPIDER ``val`` is
    then never seen during training or selection) or, for ``holdout`` 0, ``n_val_spider``
    slices of SPIDER ``val``.

    Returns {"spider": (images (N,H,W), targets (N,H,W)), "synth": (...)}; synthetic part
    empty when the generator is unavailable. Cached as .npz when ``cache_path`` is given.
    """
    if cache_path is not None and cache_path.exists():
        z = np.load(cache_path)
        out = {"spider": (z["si"], z["st"])}
        if z["pi"].shape[0]:
            out["synth"] = (z["pi"], z["pt"])
        return out
    if cfg.holdout > 0:
        held = set(holdout_cases(cfg))
        cases = [c for c in read_manifest(cfg.spider_root, "train") if c.case in held]
    else:
        cases = read_manifest(cfg.spider_root, "val")
    # 5 slices per patient nearest the middle (8 patients -> 40).
    by_case: dict[int, list] = {}
    for c in cases:
        by_case.setdefault(c.case, []).append(c)
    chosen = []
    per = max(1, cfg.n_val_spider // max(1, len(by_case)))
    for k in sorted(by_case):
        chosen += sorted(by_case[k], key=lambda c: abs(c.central_rank))[:per]
    si, st = [], []
    for c in chosen[: cfg.n_val_spider]:
        img, m = load_spider(cfg.spider_root, c)
        a, b = spider_eval_sample(img, derive_spider_target(m, s1_pseudo=cfg.s1_pseudo))
        si.append(a)
        st.append(b)
    pi, pt = [], []
    if _synth_available() and cfg.n_val_synth:
        from spineviewer.synth.training import train_sample

        rng = np.random.default_rng(cfg.val_synth_seed)
        for _ in range(cfg.n_val_synth):
            a, b = train_sample(rng, hard_rim_prob=cfg.hard_rim_prob)
            pi.append(np.asarray(a, np.float32))
            pt.append(np.asarray(b, np.uint8))
    shape = (0, *st[0].shape)
    arrays = {"si": np.stack(si), "st": np.stack(st),
              "pi": np.stack(pi) if pi else np.zeros(shape, np.float32),
              "pt": np.stack(pt) if pt else np.zeros(shape, np.uint8)}
    if cache_path is not None:
        np.savez_compressed(cache_path, **arrays)
    out = {"spider": (arrays["si"], arrays["st"])}
    if pi:
        out["synth"] = (arrays["pi"], arrays["pt"])
    return out


@torch.no_grad()
def evaluate_torch(model: torch.nn.Module, val: dict, batch: int = 4) -> dict[str, float]:
    """Mean per-slice Dice (body, disc, sacrum) per validation subset, torch forward."""
    model.eval()
    res: dict[str, float] = {}
    for name, (imgs, tgts) in val.items():
        scores: dict[int, list[float]] = {1: [], 2: [], 3: []}
        body_px, body_partial_px = 0, 0
        for i in range(0, len(imgs), batch):
            x = torch.from_numpy(imgs[i:i + batch][:, None]).contiguous(
                memory_format=torch.channels_last)
            pred = model(x).argmax(1).numpy()
            for p, t in zip(pred, tgts[i:i + batch]):
                body_px += int((p == 1).sum())
                body_partial_px += int(((p == 1) & (t == BG_OR_SACRUM)).sum())
                for c, lst in scores.items():
                    d = dice_per_class(p, t, c)
                    if not math.isnan(d):
                        lst.append(d)
        for c, nm in ((1, "body"), (2, "sacrum"), (3, "disc")):
            if scores[c]:
                res[f"{name}_{nm}_dice"] = float(np.mean(scores[c]))
        if (tgts == BG_OR_SACRUM).any():
            # share of predicted body pixels lying where SPIDER has only sacrum (S1 as body)
            res[f"{name}_body_below_lowest_disc"] = body_partial_px / max(body_px, 1)
    model.train()
    return res


def _score(metrics: dict[str, float]) -> float:
    """Model-selection score: mean body Dice minus the share of body predicted on S1."""
    dice = float(np.mean([v for k, v in metrics.items() if k.endswith("body_dice")]))
    return dice - sum(v for k, v in metrics.items() if k.endswith("body_below_lowest_disc"))


def _lr(cfg: TrainConfig, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def inherit_holdout(cfg: TrainConfig, init_config: dict) -> None:
    """Make a fine-tune hold out the same patients as the run it starts from.

    Otherwise the checkpoint would be chosen on patients the initial weights were trained
    on (a leak). Raises ``ValueError`` when the initial run held out none but ``cfg`` asks
    for a held-out selection.
    """
    if not cfg.holdout:
        return
    if not init_config.get("holdout"):
        raise ValueError("--holdout with --init needs an initial run that held patients out "
                         "(it trained on every train patient)")
    cfg.holdout = int(init_config["holdout"])
    seed = init_config.get("holdout_seed")
    cfg.holdout_seed = int(init_config["seed"] if seed is None else seed)


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) training; returns the run folder. Stops at ``steps``,
    ``max_minutes`` of wall clock (this invocation), or a ``STOP`` file."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train.log"

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S', time.gmtime())} {msg}"
        print(line, flush=True)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    model = UNet(1, len(TARGET_CLASSES), cfg.base).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, train_s, best = 0, 0.0, -1.0
    history: list[dict] = []
    last = out / "last.pt"
    if cfg.init and not last.exists():
        ck0 = torch.load(cfg.init, map_location="cpu", weights_only=False)
        model.load_state_dict(ck0["model"])
        inherit_holdout(cfg, ck0.get("config", {}))
        log(f"initialised from {cfg.init} (step {ck0.get('step')}); fresh optimiser")
    if last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, train_s, best = ck["step"], ck["train_s"], ck["best"]
        history = ck.get("history", [])
        torch.set_rng_state(ck["torch_rng"])
        log(f"resumed from step {step} (train time {train_s / 60:.1f} min, best {best:.4f})")
    # The cosine schedule runs over the planned steps or the time budget, whichever
    # is reached first, so a slow machine still ends at a low learning rate.
    budget_s = cfg.max_minutes * 60.0
    log(f"config {json.dumps(asdict(cfg))}")
    log(f"params {count_parameters(model)}; synth available: {_synth_available()}")
    # --val-every 0: no selection; the run's result is its final weights (``last.pt``,
    # copied to ``best.pt``). For a last stage on every train patient, where no held-out
    # train patient is left and selecting on SPIDER val would leak it.
    validate = cfg.val_every > 0
    if validate and not cfg.holdout and not cfg.select_on_val:
        raise ValueError("checkpoint selection needs held-out train patients (--holdout N); "
                         "selecting on SPIDER val makes its figures development figures: "
                         "pass --select-on-spider-val to do it anyway, or --val-every 0")
    if validate:
        val = build_val_set(cfg, val_cache_path(cfg, out))
        if cfg.holdout:
            log(f"selection on held-out train patients {holdout_cases(cfg)} (not trained on)")
        log("val set: " + ", ".join(f"{k}={len(v[0])}" for k, v in val.items()))
    else:
        log("no validation (--val-every 0): the final weights are the result")
    loader = DataLoader(MixedStream(cfg, step), batch_size=cfg.batch,
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
                        prefetch_factor=4 if cfg.num_workers > 0 else None)

    def save(path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "train_s": train_s, "best": best, "history": history,
                    "torch_rng": torch.get_rng_state(), "config": asdict(cfg),
                    "base": cfg.base, "classes": list(TARGET_CLASSES)}, tmp)
        os.replace(tmp, path)

    t_start = time.time()
    t_ckpt = time.time()
    t_seg = time.time()
    seg_steps, loss_acc = 0, 0.0
    model.train()
    stop_reason = "steps"
    for x, y in loader:
        if step >= cfg.steps:
            break
        now = time.time()
        if (now - t_start) > budget_s:
            stop_reason = "max_minutes"
            break
        if (out / "STOP").exists():
            stop_reason = "STOP file"
            break
        progress = max(step / cfg.steps, (train_s + now - t_seg) / budget_s)
        lr = _lr(cfg, progress)
        for g in opt.param_groups:
            g["lr"] = lr
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(x)
        loss = dice_ce_loss(logits, y, partial_weight=cfg.partial_weight,
                            edge_weight=cfg.edge_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seg_steps += 1
        loss_acc += loss.item()
        if step % 20 == 0:
            el = time.time() - t_seg
            log(f"step {step} loss {loss_acc / seg_steps:.4f} lr {lr:.2e} "
                f"{el / seg_steps:.2f} s/step")
            train_s += el
            t_seg = time.time()
            seg_steps, loss_acc = 0, 0.0
        if validate and step % cfg.val_every == 0:
            t_v = time.time()
            metrics = evaluate_torch(model, val)
            score = _score(metrics)
            history.append({"step": step, "score": score, **metrics})
            log(f"val step {step}: {json.dumps(metrics)} score {score:.4f} "
                f"({time.time() - t_v:.0f} s)")
            if score > best:
                best = score
                save(out / "best.pt")
                log(f"new best {best:.4f}")
            t_seg += time.time() - t_v      # validation time does not count as training
        if time.time() - t_ckpt > cfg.ckpt_minutes * 60:
            save(last)
            t_ckpt = time.time()
    train_s += time.time() - t_seg if seg_steps else 0.0
    # Final validation so the last weights are compared too.
    if validate and (not history or history[-1]["step"] != step):
        metrics = evaluate_torch(model, val)
        score = _score(metrics)
        history.append({"step": step, "score": score, **metrics})
        log(f"val step {step}: {json.dumps(metrics)} score {score:.4f}")
        if score > best:
            best = score
            save(out / "best.pt")
            log(f"new best {best:.4f}")
    save(last)
    if not validate:
        shutil.copyfile(last, out / "best.pt")
    recipe = {"config": asdict(cfg), "steps_done": step, "train_minutes": train_s / 60,
              "stop_reason": stop_reason, "best_val_score": best, "history": history,
              "machine": f"{platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} CPUs, torch {torch.__version__}"}
    (out / "recipe.json").write_text(json.dumps(recipe, indent=1))
    log(f"stopped ({stop_reason}) at step {step}; "
        + (f"best {best:.4f}" if validate else "final weights copied to best.pt"))
    return out
