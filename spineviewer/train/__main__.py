"""``python -m spineviewer.train {train,export,evaluate,quantize,from-onnx,soup,targets} ...``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spineviewer.train")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train (or resume) the U-Net")
    t.add_argument("--spider", required=True, help="SPIDER T2 SPACE folder (manifest.csv)")
    t.add_argument("--out", required=True, help="run folder (checkpoints, log)")
    t.add_argument("--base", type=int, default=8)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--steps", type=int, default=2500)
    t.add_argument("--max-minutes", type=float, default=90.0)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--synth-fraction", type=float, default=0.5)
    t.add_argument("--synth-fracture-prob", type=float, default=0.25,
                   help="chance that a synthetic vertebra is deformed")
    t.add_argument("--hard-rim-prob", type=float, default=0.0,
                   help="share of synthetic samples drawn with a hard-edged dark cortical band "
                        "labelled bone (0: the soft rim only)")
    t.add_argument("--s1-pseudo", action="store_true",
                   help="label S1's upper body under SPIDER's lowest disc as sacrum")
    t.add_argument("--partial-weight", type=float, default=1.0,
                   help="weight of the cross-entropy below SPIDER's lowest disc (S1 region)")
    t.add_argument("--edge-weight", type=float, default=0.0,
                   help="extra cross-entropy weight within 2 px of a class border (endplates)")
    t.add_argument("--seed", type=int, default=20261129)
    t.add_argument("--val-every", type=int, default=200,
                   help="validate (and keep best.pt) every N steps; 0: no validation or "
                        "selection, best.pt = the final weights (a last stage on every "
                        "train patient, --holdout 0, must not select on SPIDER val)")
    t.add_argument("--ckpt-minutes", type=float, default=5.0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--bf16", action="store_true", help="bf16 autocast (fast only with AMX/AVX512-BF16)")
    t.add_argument("--num-workers", type=int, default=1)
    t.add_argument("--init", default=None, help="start from this checkpoint's weights "
                   "(fine-tuning; fresh optimiser and schedule)")
    t.add_argument("--below-disc", choices=("partial", "ignore"), default="partial",
                   help="SPIDER pixels caudal to the lowest disc: 'partial' = background or "
                   "sacrum (body/disc there penalised), 'ignore' = no loss")
    t.add_argument("--holdout", type=int, default=5,
                   help="withhold this many train patients for checkpoint selection "
                   "(default 5; SPIDER val then stays unseen until evaluation); 0 trains "
                   "on every train patient and needs --val-every 0 or --select-on-spider-val")
    t.add_argument("--select-on-spider-val", action="store_true",
                   help="with --holdout 0: select checkpoints on SPIDER val (its figures are "
                        "then development figures)")
    t.add_argument("--crop", type=int, nargs=2, default=None, metavar=("ROWS", "COLS"),
                   help="train on random crops of the 448x320 grid (faster steps)")

    e = sub.add_parser("export", help="export a checkpoint to ONNX + model card")
    e.add_argument("--ckpt", required=True)
    e.add_argument("--out", required=True, help="models/<name>.onnx")
    e.add_argument("--name", default=None)
    e.add_argument("--version", default="1.0.0")
    e.add_argument("--recipe", default=None, help="recipe.json of the run (default: beside ckpt)")
    e.add_argument("--notes", default=None, help="JSON file of extra recipe entries (e.g. "
                   "width-choice measurements) to record in the card")

    v = sub.add_parser("evaluate", help="evaluate an ONNX model (onnxruntime) and update its card")
    v.add_argument("--model", required=True, help="models/<name>.onnx")
    v.add_argument("--spider", required=True)
    v.add_argument("--n-phantoms", type=int, default=30)
    v.add_argument("--phantom-seed", type=int, default=913_377)
    v.add_argument("--threads", type=int, default=2)
    v.add_argument("--no-card", action="store_true", help="do not write metrics into the card")

    q = sub.add_parser("quantize", help="static int8 copy calibrated on SPIDER train slices")
    q.add_argument("--model", required=True, help="fp32 models/<name>.onnx")
    q.add_argument("--out", required=True, help="models/<name>-int8.onnx")
    q.add_argument("--spider", required=True)
    q.add_argument("--n-calib", type=int, default=20)

    o = sub.add_parser("from-onnx", help="a --init checkpoint from a shipped ONNX model "
                       "(batch-norm unfolded; to fine-tune when the run is gone)")
    o.add_argument("--onnx", required=True)
    o.add_argument("--out", required=True, help="runs/<name>/best.pt")
    o.add_argument("--holdout", type=int, required=True,
                   help="train patients the model's training held out (its card)")
    o.add_argument("--holdout-seed", type=int, required=True,
                   help="seed that chose them (the first stage's --seed, from the card)")

    s = sub.add_parser("soup", help="uniform weight average of fine-tunes from one start "
                       "(model soup)")
    s.add_argument("--ckpt", nargs="+", required=True, help="runs/<name>/best.pt, two or more")
    s.add_argument("--out", required=True, help="runs/<soup>/best.pt (recipe.json beside it)")

    g = sub.add_parser("targets", help="montage of derived SPIDER targets (PNG)")
    g.add_argument("--spider", required=True)
    g.add_argument("--out", default="/tmp/spider_targets.png")
    g.add_argument("--n", type=int, default=8)

    a = p.parse_args(argv)
    if a.cmd == "train":
        from spineviewer.train.loop import TrainConfig, train

        cfg = TrainConfig(spider_root=a.spider, out_dir=a.out, base=a.base, batch=a.batch,
                          steps=a.steps, max_minutes=a.max_minutes, lr=a.lr,
                          synth_fraction=a.synth_fraction,
                          synth_fracture_prob=a.synth_fracture_prob,
                          hard_rim_prob=a.hard_rim_prob,
                          partial_weight=a.partial_weight, s1_pseudo=a.s1_pseudo,
                          edge_weight=a.edge_weight,
                          seed=a.seed,
                          val_every=a.val_every,
                          ckpt_minutes=a.ckpt_minutes, threads=a.threads, bf16=a.bf16,
                          num_workers=a.num_workers,
                          crop=tuple(a.crop) if a.crop else None, init=a.init,
                          below_disc=a.below_disc, holdout=a.holdout,
                          select_on_val=a.select_on_spider_val)
        train(cfg)
    elif a.cmd == "from-onnx":
        from spineviewer.train.from_onnx import checkpoint_from_onnx

        diff = checkpoint_from_onnx(a.onnx, a.out, holdout=a.holdout,
                                    holdout_seed=a.holdout_seed)
        print(f"wrote {a.out}; eval-mode logits vs onnxruntime: max abs diff {diff:.2e}")
    elif a.cmd == "export":
        import json
        from pathlib import Path

        from spineviewer.train.export import export_checkpoint

        extra = json.loads(Path(a.notes).read_text()) if a.notes else None
        export_checkpoint(a.ckpt, a.out, name=a.name, version=a.version, recipe_path=a.recipe,
                          extra_recipe=extra)
    elif a.cmd == "evaluate":
        from spineviewer.train.evaluate import evaluate_model

        evaluate_model(a.model, a.spider, n_phantoms=a.n_phantoms, phantom_seed=a.phantom_seed,
                       threads=a.threads, write_card=not a.no_card)
    elif a.cmd == "quantize":
        from spineviewer.train.quantize import quantize_int8

        quantize_int8(a.model, a.out, a.spider, a.n_calib)
    elif a.cmd == "soup":
        from spineviewer.train.soup import average_checkpoints

        average_checkpoints(a.ckpt, a.out)
        print(f"wrote {a.out}: the average of {len(a.ckpt)} checkpoints")
    elif a.cmd == "targets":
        from spineviewer.train.evaluate import targets_montage

        targets_montage(a.spider, a.out, n=a.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
