"""Check that ``analyze_study`` gives bit-identical results to a saved reference set.

A speed-only change must not move any result. Run once on the commit you start from with
``--write REF_DIR`` (writes one JSON per case), then after each change with ``REF_DIR``:
prints, per case and slice mode, ``same`` or the first differing keys, and exits 1 on any
difference. Timings (``timings_s``), the study folder and the reference table's file path
are left out of the comparison.

    python benchmarks/check_identical.py --write /tmp/ref
    python benchmarks/check_identical.py /tmp/ref
    python benchmarks/check_identical.py /tmp/ref --preliminary

``--preliminary`` runs the per-vertebra mode with the viewer's early-result callback
(``analyze_study(preliminary=...)``): its final result must equal the per-vertebra reference,
and its early result, without the preliminary marks, the centre-mode reference.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed copy

from spineviewer.synth.params import PhantomParams


def cases() -> list[tuple[str, int, dict]]:
    from spineviewer.cli import demo_study_options

    return [
        ("demo", 1, demo_study_options()),
        ("random7", 7, {}),
        ("random23", 23, {"vendor": "ge"}),
        ("biconcave_offset", 3, {"params": PhantomParams(
            deformities={"L2": ("biconcave", 2), "L4": ("wedge", 1)}, midline_offset_mm=4.0)}),
        ("crush_scoliosis", 5, {"params": PhantomParams(
            deformities={"L3": ("crush", 3)}, scoliosis_mm=6.0, tilt_deg=8.0)}),
        ("scoliosis_offset", 11, {"params": PhantomParams(
            midline_offset_mm=-3.0, scoliosis_mm=4.0, osteophyte_levels=("L2", "L5"),
            schmorl_levels=("L1",))}),
        ("no_t12_philips", 13, {"vendor": "philips", "params": PhantomParams(
            t12_in_fov=False, deformities={"L5": ("wedge", 3)})}),
        ("six_lumbar", 17, {"params": PhantomParams(n_lumbar=6, degenerated_discs=("L4",))}),
    ]


def normalised(result, study_dir: Path) -> dict:
    d = json.loads(result.to_json().replace(str(study_dir), "<study>"))
    d.pop("timings_s", None)
    d.pop("source_path", None)
    d.pop("source_slice_file", None)
    d.get("parameters", {}).get("reference", {}).pop("path", None)  # the checkout's own file
    return d


def unmarked(d: dict) -> dict:
    """A normalised preliminary result without its marks (``pipeline.mark_preliminary``)."""
    from spineviewer.core.pipeline import PRELIMINARY_FLAG, PRELIMINARY_WARNING

    d = json.loads(json.dumps(d))
    d["parameters"].pop("preliminary", None)
    d["flags"] = [f for f in d["flags"] if f != PRELIMINARY_FLAG]
    d["warnings"] = [w for w in d["warnings"] if w != PRELIMINARY_WARNING]
    return d


def diff_keys(a, b, prefix="") -> list[str]:
    if type(a) is not type(b):
        return [prefix or "<root>"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{prefix}.{k}")
            else:
                out += diff_keys(a[k], b[k], f"{prefix}.{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{prefix}[len]"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff_keys(x, y, f"{prefix}[{i}]")
        return out
    return [] if a == b else [prefix or "<root>"]


def main(argv=None) -> int:
    from spineviewer.core.pipeline import analyze_study
    from spineviewer.synth.study import write_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref_dir")
    ap.add_argument("--write", action="store_true", help="write the reference set")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--preliminary", action="store_true",
                    help="per-vertebra with the early-result callback (see above)")
    args = ap.parse_args(argv)
    if args.write and args.preliminary:
        ap.error("--write runs without --preliminary (the reference is the plain result)")
    ref = Path(args.ref_dir)
    ref.mkdir(parents=True, exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed, opts in cases():
            if only and name not in only:
                continue
            d = Path(tmp) / name
            write_study(d, seed=seed, **opts)
            early: list = []  # the preliminary result of the per-vertebra run
            for mode in ("per-vertebra", "centre"):
                f = ref / f"{name}_{mode}.json"
                if args.preliminary and mode == "centre":
                    if len(early) != 1:
                        print(f"{name:18s} preliminary called {len(early)} times")
                        bad += 1
                        continue
                    mode, res = "preliminary", unmarked(normalised(early[0], d))
                else:
                    res = normalised(analyze_study(
                        d, slice_mode=mode, **({"preliminary": early.append}
                                               if args.preliminary else {})), d)
                if args.write:
                    f.write_text(json.dumps(res, indent=1, sort_keys=True))
                    print(f"{name:18s} {mode:13s} written ({len(res['vertebrae'])} bodies)")
                    continue
                want = json.loads(f.read_text())
                keys = diff_keys(want, res)
                bad += bool(keys)
                print(f"{name:18s} {mode:13s} {'same' if not keys else 'DIFFERENT: ' + ', '.join(keys[:8])}",
                      flush=True)
    if not args.write:
        print("ALL IDENTICAL" if not bad else f"{bad} case(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
