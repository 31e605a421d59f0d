"""Seeded DICOM fuzz run (issue 16): N mutated phantom studies through the input half.

    python benchmarks/fuzz_dicom.py [--n 1200] [--seed 16] [--timeout 60] [--workers 2]

Each case runs in a worker process under a timeout: a hang, or a crash that kills the worker
(a C library's abort), is counted as "hang or crash" and the workers replaced. Prints the counts: ok / flagged / refused / uncaught / hang, and the checks that
must stay 0: traceback or stderr text, millimetres from an unknown pixel size, lost outputs,
multi-line refusals. See `spineviewer.synth.fuzz` for the mutations and the checks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spineviewer.synth import fuzz


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1200)
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--keep", help="keep the cases in this folder")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    r = fuzz.run_many(a.n, a.seed, a.timeout, a.workers, a.keep, a.verbose)
    c, k = r["counts"], r["checks"]
    print(f"fuzz: {r['n']} cases, seed {r['seed']}, {r['seconds']:.0f} s "
          f"(base studies {r['base_s']:.0f} s, mutations {r['make_s']:.0f} s)")
    print("mutations: " + ", ".join(f"{n} {kind}" for kind, n in sorted(r["kinds"].items())))
    print(f"outcomes: ok {c['ok']}, flagged {c['flagged']}, refused {c['refused']}, "
          f"uncaught {c['uncaught']}, hang or crash {c['hang']}")
    print(f"must be 0: traceback/stderr {k['traceback']}, mm from unknown spacing "
          f"{k['mm_unknown_spacing']}, lost outputs {k['lost_output']}, multi-line refusals "
          f"{k['multiline_refusal']}")
    for name, items in r["examples"].items():
        for line in items[:5]:
            print(f"  {name}: {line}")
    bad = c["uncaught"] + c["hang"] + sum(k.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
