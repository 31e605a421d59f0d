"""`spineviewer evaluate`: agreement of the app's results with a readers' reference CSV.

Usage: ``spineviewer evaluate --reference R.csv --results S.csv [--json F] [--pdf F]``.
Prints a short summary; user-caused errors exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from spineviewer.core.agreement import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.evaluate import evaluate_files, summary_to_json

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spineviewer evaluate",
        description="Agreement of SpineViewer results with a reference (readers) CSV: ICC, "
                    "Bland-Altman, sensitivity/specificity/accuracy with exact 95% CIs, kappa.")
    p.add_argument("--reference", required=True, type=Path,
                   help="readers' CSV (study_uid, level, measurements, fracture; optional "
                        "reader column and subgroup columns such as vendor)")
    p.add_argument("--results", required=True, type=Path, help="the app's results CSV")
    p.add_argument("--json", type=Path, help="write the statistics as JSON here")
    p.add_argument("--pdf", type=Path, help="write the tables and Bland-Altman plots here")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP_RESAMPLES,
                   help=f"study-level bootstrap resamples (default {BOOTSTRAP_RESAMPLES}; 0 = off)")
    p.add_argument("--seed", type=int, default=BOOTSTRAP_SEED, help="bootstrap seed")
    return p


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal: overall fracture rates and the ICC/Bland-Altman table."""
    lines = [f"{summary['n_vertebrae']} vertebrae in {summary['n_studies']} studies"]
    g = summary["fracture"].get("all")
    if g:
        lines.append(f"fracture: TP {g['tp']} FP {g['fp']} TN {g['tn']} FN {g['fn']}, "
                     f"kappa {_num(g['kappa'])}")
        for rate in ("sensitivity", "specificity", "accuracy"):
            p = g[rate]
            if p["value"] is not None:
                lines.append(f"  {rate:<11} {p['value']:.3f} ({p['ci_low']:.3f}-"
                             f"{p['ci_high']:.3f})")
    for name, m in summary["measurements"].items():
        if m["n"] >= 2 and m["icc"] is not None:
            lines.append(f"{name:<7} n {m['n']:<5} ICC(2,1) {m['icc']:.3f} "
                         f"({m['icc_ci'][0]:.3f}-{m['icc_ci'][1]:.3f})  bias {m['bias']:+.2f} "
                         f"LoA {m['loa_low']:.2f} to {m['loa_high']:.2f}")
    lines += [f"note: {t['text']}" for t in summary["significant_differences"]]
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    """Run ``spineviewer evaluate``; ``argv`` are the arguments after ``evaluate``.

    Returns
    -------
    int
        0 on success, 2 on bad input (one line on stderr).
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        from spineviewer.io.staging import check_targets

        # one file each, never a folder or special file: refused before the work
        check_targets([p for p in (args.json, args.pdf) if p], overwrite=True)
        summary, joined = evaluate_files(args.reference, args.results, n_boot=args.bootstrap,
                                         seed=args.seed)
        outputs: dict[Path, bytes | str] = {}
        if args.json:
            outputs[args.json] = summary_to_json(summary) + "\n"
        if args.pdf:
            from spineviewer.io.evaluation_report import render_evaluation_pdf

            outputs[args.pdf] = render_evaluation_pdf(
                summary, joined, inputs={"reference": args.reference.name,
                                         "results": args.results.name})
        if outputs:  # both or neither
            from spineviewer.io.staging import write_all

            write_all(outputs, overwrite=True)
    except SpineViewerError as exc:
        print(f"spineviewer evaluate: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"spineviewer evaluate: error: cannot write output: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
