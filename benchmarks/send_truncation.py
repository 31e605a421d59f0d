"""How many truncated DICOM outputs would `spineviewer send` accept? (issue 16, case 10)

Builds SpineViewer's four DICOM outputs (SEG, TID 1500 SR, presentation state, Encapsulated
PDF) for the io tests' synthetic five-vertebra slice, or takes the files under ``--dir``, cuts
each file at every ``--step``-th byte offset (1 .. size-1) and runs the check `send` makes
before association (`spineviewer.io.dicom_integrity.verify_bytes`). Prints, per file, the
number of cuts and how many were accepted (should be 0), and that the whole files pass.

    python benchmarks/send_truncation.py [--step 1] [--dir FOLDER]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spineviewer.io.dicom_integrity import IncompleteDicom, verify_bytes


def build_outputs(folder: Path) -> list[Path]:
    from pydicom import dcmread

    from spineviewer.io.export import write_dicom_outputs
    from tests.io.conftest import make_result, make_source_dataset

    src = folder / "src" / "IM0008"
    src.parent.mkdir(parents=True)
    make_source_dataset().save_as(src, enforce_file_format=True)
    return write_dicom_outputs(make_result(src, dcmread(src)), folder / "dicom")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=1, help="cut every STEP bytes (default 1)")
    ap.add_argument("--dir", type=Path, help="check these DICOM files instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = (sorted(p for p in args.dir.rglob("*.dcm")) if args.dir
                 else build_outputs(Path(tmp)))
        total_cuts = total_accepted = 0
        t0 = time.perf_counter()
        for path in files:
            data = path.read_bytes()
            verify_bytes(data, path.name)  # the complete file must pass
            cuts = range(1, len(data), args.step)
            accepted = []
            for cut in cuts:
                try:
                    verify_bytes(data[:cut], path.name)
                except IncompleteDicom:
                    continue
                accepted.append(cut)
            total_cuts += len(cuts)
            total_accepted += len(accepted)
            print(f"{path.name:<22} {len(data):>7} bytes  {len(cuts):>6} cuts  "
                  f"{len(accepted)} accepted{'  at ' + str(accepted[:10]) if accepted else ''}")
        print(f"total: {total_cuts} truncated files, {total_accepted} accepted; complete files "
              f"accepted: {len(files)} of {len(files)}; {time.perf_counter() - t0:.1f} s")
    return 1 if total_accepted else 0


if __name__ == "__main__":
    sys.exit(main())
