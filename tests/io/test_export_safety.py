"""The one way out (`io.staging` under `io.export`): all or nothing, refused targets, umask."""

from __future__ import annotations

import errno
import os
import resource
import stat
import sys
from pathlib import Path

import pytest

from spineviewer.io import export, staging
from tests.unprivileged import run_unprivileged

ROOT = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_two_outputs_with_one_path_are_refused(tmp_path, monkeypatch, study_result):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(staging.OutputError, match="same file"):
        staging.write_all({Path("x"): b"csv", tmp_path / "sub" / ".." / "x": b"pdf"})
    with pytest.raises(staging.OutputError, match="same file"):  # --csv X --pdf X
        export.write_outputs(study_result, csv="x", pdf=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_special_file_or_folder_is_never_replaced(tmp_path, kind):
    target = tmp_path / "out.csv"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(staging.OutputError, match="FIFO|folder"):
        staging.write_all({tmp_path / "a.pdf": b"a", target: b"b"}, overwrite=True)
    mode = os.lstat(target).st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISDIR(mode)
    assert not (tmp_path / "a.pdf").exists()


def test_a_file_where_a_folder_is_needed(tmp_path):
    (tmp_path / "f").write_text("keep")
    with pytest.raises(staging.OutputError, match="not a folder"):
        staging.write_all({tmp_path / "f" / "x.csv": b"1"})
    assert (tmp_path / "f").read_text() == "keep"


def test_failure_in_one_output_leaves_the_set_as_it_was(tmp_path, monkeypatch):
    old = tmp_path / "a.csv"
    old.write_text("old csv")
    real = staging._write_new
    calls = []

    def flaky(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(staging, "_write_new", flaky)
    contents = {old: b"new csv", tmp_path / "b.pdf": b"pdf", tmp_path / "sub" / "c.dcm": b"dcm"}
    with pytest.raises(staging.OutputError) as info:
        staging.write_all(contents, overwrite=True)
    assert str(info.value).count("\n") == 0 and "disk full" in str(info.value)
    assert _files(tmp_path) == ["a.csv"] and old.read_text() == "old csv"


def test_failure_while_moving_into_place_restores_replaced_files(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(f"old {name}")
    real = os.replace
    moves = []

    def flaky(src, dst):
        moves.append(dst)
        if Path(dst) == tmp_path / "c" and moves.count(dst) == 1:  # the 3rd file's move fails
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(staging.os, "replace", flaky)
    with pytest.raises(staging.OutputError, match="cannot write .*c: Input/output error"):
        staging.write_all({tmp_path / n: f"new {n}" for n in ("a", "b", "c")}, overwrite=True)
    monkeypatch.setattr(staging.os, "replace", real)
    assert {n: (tmp_path / n).read_text() for n in "abc"} == {n: f"old {n}" for n in "abc"}
    assert _files(tmp_path) == ["a", "b", "c"]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_respect_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        [p] = staging.write_all({tmp_path / "o" / "r.csv": "x"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask


def test_long_file_names(tmp_path):
    ok = tmp_path / ("n" * 245 + ".csv")  # 249 characters: fine, also while staged
    assert staging.write_all({ok: "1"}) == [ok] and ok.read_text() == "1"
    too_long = tmp_path / ("n" * 300 + ".csv")
    with pytest.raises(staging.OutputError, match="name too long"):
        staging.write_all({tmp_path / "a.csv": "a", too_long: "2"})
    assert _files(tmp_path) == [ok.name]


def test_file_size_limit_efbig_is_one_line(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # Python ignores SIGXFSZ
    try:
        with pytest.raises(staging.OutputError, match="File too large"):
            staging.write_all({tmp_path / "small.csv": b"1", tmp_path / "big.pdf": b"x" * 5000})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert _files(tmp_path) == []


def test_read_only_output_folder_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    code = ("import sys; from pathlib import Path; from spineviewer.io import staging\n"
            "try:\n"
            "    staging.write_all({Path(sys.argv[1]) / 'r.csv': 'x'})\n"
            "except staging.OutputError as e:\n"
            "    print(e); sys.exit(2)\n")
    proc = run_unprivileged([sys.executable, "-c", code, str(folder)],
                            env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip().endswith("Permission denied") and "Traceback" not in proc.stderr
    assert _files(folder) == []


def test_export_all_stages_in_the_target_folder_and_leaves_nothing(study_result, tmp_path):
    out = tmp_path / "out"
    paths = export.export_all(study_result, out, pdf=False, csv=True, json=True)
    assert _files(out) == ["results.csv", "results.json"] and len(paths) == 2
    # a refused DICOM folder stops the whole set before anything is built
    (tmp_path / "dcm").write_text("a file")
    with pytest.raises(staging.OutputError, match="not a folder"):
        export.write_outputs(study_result, csv=tmp_path / "x.csv", dicom_dir=tmp_path / "dcm")
    assert not (tmp_path / "x.csv").exists()


def test_leftover_staging_folders_are_removed(tmp_path):
    left = tmp_path / "study" / "dicom" / f"{staging.STAGING_PREFIX}abc"
    left.mkdir(parents=True)
    (left / "0.new").write_bytes(b"half")
    (tmp_path / "study" / "results.csv").write_text("kept")
    assert staging.remove_leftovers(tmp_path / "study") == 1
    assert _files(tmp_path / "study") == ["dicom", "results.csv"]
