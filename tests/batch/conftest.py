"""A small archive for the batch tests: 10 phantom studies laid out awkwardly, plus breakage.

Layout under ``archive/``:
  study_00 .. study_07    one phantom study each (synth.write_study, 5 small slices)
  split_a/, split_b/      study 8's files split over two folders (a study spanning folders)
  mixed/                  study 9's files together with a T1-only study that cannot be
                          analysed (a folder holding two studies, one failing)
  broken_garbage/         files named .dcm that are not DICOM
  broken_truncated/       DICOM files cut in half
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spineviewer.batch.runner import BatchOptions, run_batch

ROOT = Path(__file__).resolve().parents[2]
N_STUDIES = 10


def _need_model() -> None:
    if not any((ROOT / "models").glob("*.onnx")):
        pytest.skip("no shipped ONNX model in models/")


@pytest.fixture(scope="session")
def archive(tmp_path_factory):
    """(root, truths): the archive folder and the phantom truth of its 10 studies."""
    _need_model()
    from spineviewer.synth.study import write_study
    from tests.dicom_factory import SeriesSpec, write_series

    base = tmp_path_factory.mktemp("batch")
    root = base / "archive"
    truths = []
    for i in range(N_STUDIES):
        # 5 small slices keep a study under a second to analyse
        truths.append(write_study(base / "gen" / f"s{i}", 300 + i, n_slices=5,
                                  matrix=(384, 288), distractors=i % 3 == 0))
    for i in range(8):
        shutil.copytree(truths[i].dicom_dir, root / f"study_{i:02d}")
    files8 = sorted(p for p in truths[8].dicom_dir.rglob("*") if p.is_file())
    for k, f in enumerate(files8):
        dest = root / ("split_a" if k % 2 else "split_b") / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    shutil.copytree(truths[9].dicom_dir, root / "mixed")
    write_series(root / "mixed", SeriesSpec(description="T1 SAG", te_ms=10, tr_ms=500,
                                                   n_slices=3, file_names="dcm"))
    garbage = root / "broken_garbage"
    garbage.mkdir()
    for k in range(3):
        (garbage / f"IM{k}.dcm").write_bytes(bytes(range(256)) * 4)
    (garbage / "notes.txt").write_text("scanned at night")
    trunc = root / "broken_truncated"
    trunc.mkdir()
    for f in sorted(truths[0].dicom_dir.rglob("*.dcm"))[:3]:
        data = f.read_bytes()
        (trunc / f.name).write_bytes(data[: len(data) // 2])
    return root, truths


@pytest.fixture(scope="session")
def first_run(archive, tmp_path_factory):
    """An uninterrupted batch of the archive with 2 local workers: (out, summary)."""
    root, _ = archive
    out = tmp_path_factory.mktemp("batch_out") / "out"
    summary = run_batch(BatchOptions(root=str(root), out=str(out), workers=2))
    return out, summary
