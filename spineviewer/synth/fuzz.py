"""Seeded DICOM fuzzing: mutated phantom studies through the input half of the analysis.

``make_case(base, out, rng)`` copies a small phantom study and applies one mutation: header
fuzz (a geometry, pixel or identity tag made missing, empty, zero, negative, NaN, huge, text
or swapped), byte flips, truncation, a wrong VR code, a re-encoding in another transfer
syntax (`codecs.SYNTAXES`, possibly with a second mutation on top), a deleted file, or a
special file (named pipe, dangling link, empty file). ``run_case(folder)`` runs what
`core.pipeline.analyze_study` runs before the network (index, series choice, load,
`core.dicom.checks.check_input`) and, for an accepted study, writes the CSV and JSON through
`io.export.write_outputs` and reads them back; it classifies the outcome:

- ``ok`` / ``flagged``: accepted, without or with input flags;
- ``refused``: a one-line `SpineViewerError` (what the CLI prints, exit 2);
- ``uncaught``: any other exception (the CLI's "internal error", exit 1);
- and checks counted across outcomes: ``traceback`` (a traceback or any text on stderr),
  ``mm_unknown_spacing`` (accepted although the analysed file has no valid PixelSpacing of
  its own), ``lost_output`` (an output missing or not reading back with the result's flags),
  ``multiline_refusal``.

``benchmarks/fuzz_dicom.py`` runs each case in a worker process under a timeout (a hang is
counted, the worker replaced).
"""

from __future__ import annotations

import io
import math
import os
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spineviewer.synth import codecs

#: Mutation kinds and their relative frequency.
KINDS = {"header": 4, "byteflip": 2, "truncate": 2, "wrong_vr": 2, "syntax": 3,
         "delete": 1, "special": 1}
#: Tags the header fuzz targets: (keyword, VR).
HEADER_TAGS = (
    ("PixelSpacing", "DS"), ("Rows", "US"), ("Columns", "US"), ("BitsAllocated", "US"),
    ("BitsStored", "US"), ("HighBit", "US"), ("PixelRepresentation", "US"),
    ("SamplesPerPixel", "US"), ("PhotometricInterpretation", "CS"),
    ("ImageOrientationPatient", "DS"), ("ImagePositionPatient", "DS"),
    ("SeriesInstanceUID", "UI"), ("StudyInstanceUID", "UI"), ("SOPInstanceUID", "UI"),
    ("InstanceNumber", "IS"), ("RescaleSlope", "DS"), ("RescaleIntercept", "DS"),
    ("EchoTime", "DS"), ("RepetitionTime", "DS"), ("SliceThickness", "DS"),
    ("NumberOfFrames", "IS"), ("Modality", "CS"), ("PatientName", "PN"),
    ("SeriesDescription", "LO"), ("SOPClassUID", "UI"), ("TransferSyntaxUID", "UI"),
)
_TEXT_VALUES = ("", "0", "-1", "nan", "inf", "1e308", "abc", "0\\0", "-0.6\\0.6", "0.6",
                "9999\\9999", "\\", "1.2.3", "MONOCHROME1", "RGB", "PALETTE COLOR", "x" * 70,
                "\u00e9\u00e8\u4e2d", "1\\2\\3\\4\\5\\6\\7")
_INT_VALUES = (0, 1, 7, 8, 9, 12, 15, 16, 17, 32, 255, 65535)
_VR_CODES = (b"AE", b"CS", b"DS", b"IS", b"UI", b"US", b"UL", b"SQ", b"OB", b"OW", b"UN",
             b"ZZ", b"\x00\x00", b"??", b"LO", b"FD", b"AT")


@dataclass
class Case:
    """One mutated study: where it is and what was done to it."""

    index: int
    folder: str
    kind: str
    detail: str
    centre_touched: bool = False


@dataclass
class Outcome:
    """What the input half did with one case (see the module docstring)."""

    status: str  # ok | flagged | refused | uncaught
    message: str = ""
    flags: list[str] = field(default_factory=list)
    traceback: bool = False
    stderr: str = ""
    mm_unknown_spacing: bool = False
    lost_output: bool = False
    multiline_refusal: bool = False


def write_base(out: str | Path, seed: int = 16) -> Path:
    """A small phantom study (7 sagittal T2 slices of 160 x 112 at 2.2 mm, with the T1
    and axial distractors) and copies of it in every transfer syntax, under ``out``."""
    from spineviewer.synth.study import write_study

    out = Path(out)
    plain = out / "explicit"
    if not plain.exists():
        write_study(out / "phantom", seed, n_slices=7, pixel_spacing_mm=2.2, matrix=(160, 112),
                    file_names="numbered")
        shutil.copytree(out / "phantom" / "dicom", plain)
    for name in codecs.SYNTAXES:
        if name != "explicit" and not (out / name).exists():
            codecs.transcode_study(plain, out / name, name)
    return out


def make_case(base: str | Path, out: str | Path, rng: np.random.Generator, index: int = 0,
              kind: str | None = None) -> Case:
    """Copy a base study into ``out`` and mutate it once (twice for some re-encodings)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's complaints about the values written
        return _make_case(Path(base), Path(out), rng, index, kind)


def _make_case(base: Path, out: Path, rng: np.random.Generator, index: int,
               kind: str | None) -> Case:
    kinds = list(KINDS)
    weights = np.array([KINDS[k] for k in kinds], float)
    kind = kind or str(rng.choice(kinds, p=weights / weights.sum()))
    syntax = "explicit"
    if kind == "syntax":
        syntax = str(rng.choice(list(codecs.SYNTAXES)))
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base / syntax, out)
    files = _t2_files(out)
    centre = files[(len(files) - 1) // 2]
    target = centre if rng.random() < 0.5 else files[int(rng.integers(len(files)))]
    every = sorted(p for p in out.rglob("*") if p.is_file())
    if rng.random() < 0.2:  # sometimes a distractor or any file
        target = every[int(rng.integers(len(every)))]
    detail = syntax
    if kind == "syntax":
        if rng.random() < 0.5:
            sub = str(rng.choice(["header", "byteflip", "truncate", "wrong_vr"]))
            detail += "+" + _mutate(sub, target, out, rng)
        return Case(index, str(out), kind, detail, target == centre)
    detail = _mutate(kind, target, out, rng)
    return Case(index, str(out), kind, detail, target == centre)


def _t2_files(folder: Path) -> list[Path]:
    """The T2 series' files in slice order (the numbered layout: SE0003/IM00001..)."""
    t2 = sorted((folder / "SE0003").iterdir())
    return t2


def _mutate(kind: str, target: Path, folder: Path, rng: np.random.Generator) -> str:
    if kind == "header":
        return _header(target, rng)
    if kind == "byteflip":
        data = bytearray(target.read_bytes())
        n = int(rng.integers(1, 64))
        hi = len(data) if rng.random() < 0.3 else min(len(data), 2000)  # mostly the header
        for pos in rng.integers(0, hi, n):
            data[pos] = int(rng.integers(256))
        target.write_bytes(bytes(data))
        return f"byteflip {n} in {target.name}"
    if kind == "truncate":
        data = target.read_bytes()
        cut = int(rng.integers(0, len(data)))
        target.write_bytes(data[:cut])
        return f"truncate {target.name} at {cut}/{len(data)}"
    if kind == "wrong_vr":
        data = bytearray(target.read_bytes())
        spots = [i for i in range(132, min(len(data) - 2, 4000))
                 if data[i:i + 2] in _VR_CODES[:11] and data[i - 4] in (0x08, 0x10, 0x18, 0x20,
                                                                        0x28)]
        if not spots:
            return "wrong_vr (no VR found)"
        at = spots[int(rng.integers(len(spots)))]
        new = _VR_CODES[int(rng.integers(len(_VR_CODES)))]
        data[at:at + 2] = new
        target.write_bytes(bytes(data))
        return f"wrong VR {new!r} at {at} in {target.name}"
    if kind == "delete":
        target.unlink()
        return f"delete {target.name}"
    if kind == "special":
        what = str(rng.choice(["fifo", "dangling_link", "empty", "fifo_replaces"]))
        extra = folder / f"zz_{what}"
        if what == "fifo" and hasattr(os, "mkfifo"):
            os.mkfifo(extra)
        elif what == "fifo_replaces" and hasattr(os, "mkfifo"):
            target.unlink()
            os.mkfifo(target)
        elif what == "dangling_link":
            os.symlink(folder / "does-not-exist", extra)
        else:
            extra.write_bytes(b"")
        return f"special {what}"
    raise ValueError(f"unknown mutation {kind!r}")


def _header(target: Path, rng: np.random.Generator) -> str:
    import pydicom
    from pydicom import config

    keyword, vr = HEADER_TAGS[int(rng.integers(len(HEADER_TAGS)))]
    old_mode = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        ds = pydicom.dcmread(target, force=True)
        holder = ds.file_meta if keyword == "TransferSyntaxUID" else ds
        if rng.random() < 0.25:
            if keyword in holder:
                delattr(holder, keyword)
            value = "<deleted>"
        elif keyword in ("Rows", "Columns") and rng.random() < 0.4:
            ds.Rows, ds.Columns = ds.Columns, ds.Rows
            value = "<rows/columns swapped>"
        elif vr == "US":
            value = int(rng.choice(_INT_VALUES))
            setattr(holder, keyword, value)
        else:
            value = str(rng.choice(_TEXT_VALUES))
            holder[keyword] = pydicom.DataElement(_tag(keyword), vr, value)
        ds.save_as(target, enforce_file_format=False)
    except Exception as exc:  # noqa: BLE001 - a mutation pydicom cannot write: keep the file
        return f"header {keyword} (not written: {type(exc).__name__})"
    finally:
        config.settings.writing_validation_mode = old_mode
    return f"header {keyword}={value!r} in {target.name}"


def _tag(keyword: str) -> int:
    from pydicom.datadict import tag_for_keyword

    return int(tag_for_keyword(keyword))


#: stderr lines that are the application's own log lines (as the CLI configures logging).
_OWN_LOG = ("WARNING: ", "INFO: ", "ERROR: ")


def run_case(folder: str | Path) -> Outcome:
    """The input half of the analysis on ``folder``, with stderr (fd 2) captured; logging
    set up as the CLI sets it up, so log lines are told apart from anything else."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    with tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as out_dir:
        saved_fd = os.dup(2)
        saved_stderr = sys.stderr
        os.dup2(err.fileno(), 2)
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), write_through=True)
        try:
            outcome = _run(folder, Path(out_dir))
        finally:
            sys.stderr.flush()
            sys.stderr = saved_stderr
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    other = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(_OWN_LOG)]
    outcome.stderr = "\n".join(other)[:2000]
    outcome.traceback = bool(other)
    return outcome


def _run(folder, out_dir: Path) -> Outcome:
    from spineviewer.core.dicom.checks import check_input
    from spineviewer.core.dicom.index import scan_folder
    from spineviewer.core.dicom.select import choose_series
    from spineviewer.core.dicom.volume import load_series
    from spineviewer.core.errors import SpineViewerError

    try:
        volume = load_series(choose_series(scan_folder(folder)).series)
        checked = check_input(volume)
    except SpineViewerError as exc:
        msg = str(exc)
        return Outcome("refused", msg, multiline_refusal="\n" in msg or not msg.strip())
    except Exception:  # noqa: BLE001 - counted, that is the point
        return Outcome("uncaught", traceback.format_exc(limit=-3)[-600:])
    status = "flagged" if checked.flags else "ok"
    outcome = Outcome(status, flags=list(checked.flags))
    outcome.mm_unknown_spacing = not _spacing_of_file_matches(volume.files[checked.centre],
                                                             checked.spacing_mm)
    outcome.lost_output = _outputs_lost(volume, checked, out_dir)
    return outcome


def _spacing_of_file_matches(path: str, spacing: tuple[float, float]) -> bool:
    """Independent check: the analysed file's own PixelSpacing, parsed strictly, is valid and
    equals the spacing the analysis uses."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        raw = ds["PixelSpacing"].value if "PixelSpacing" in ds else None
        if raw is None:
            seq = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
            raw = seq.PixelSpacing
        values = [float(v) for v in raw]
    except Exception:  # noqa: BLE001 - no readable spacing of its own
        return False
    return (len(values) == 2 and all(math.isfinite(v) and 0.05 <= v <= 5.0 for v in values)
            and np.allclose(values, spacing))


def _outputs_lost(volume, checked, out_dir: Path) -> bool:
    """Write CSV and JSON of an (unmeasured) result through the one export path; True when
    either is missing or does not read back with the study's flags."""
    from spineviewer.core.results import StudyResult, VertebraResult, load_json, read_csv_rows
    from spineviewer.io.export import write_outputs

    ds = volume.datasets[checked.centre]
    result = StudyResult(
        study_uid=str(volume.series.study_uid), series_uid=str(volume.series.series_uid),
        sop_instance_uid=str(volume.sop_instance_uids[checked.centre]),
        slice_index=int(checked.centre), pixel_spacing_mm=checked.spacing_mm,
        vertebrae=[VertebraResult("L1")], flags=list(checked.flags),
        warnings=list(checked.warnings),
        patient={"name": str(ds.get("PatientName", "")), "id": str(ds.get("PatientID", ""))},
        source_slice_file=str(volume.files[checked.centre]))
    csv_path, json_path = out_dir / "r.csv", out_dir / "r.json"
    try:
        write_outputs(result, csv=csv_path, json=json_path)
        back = load_json(json_path)
        rows = read_csv_rows(csv_path)
    except Exception:  # noqa: BLE001 - an output that cannot be written or read is lost
        return True
    return back.flags != result.flags or not rows or \
        not all(f in rows[0]["flags"] for f in checked.flags)


def _worker(folder: str):
    return run_case(folder)


def run_many(n: int, seed: int, timeout: float, workers: int, keep: str | None = None,
             verbose: bool = False) -> dict:
    """``n`` seeded cases, each in a worker process under ``timeout`` seconds; the counts."""
    import multiprocessing as mp
    import time
    from collections import Counter

    root = Path(keep or tempfile.mkdtemp(prefix="svfuzz-"))
    t0 = time.perf_counter()
    base = write_base(root / "base", seed)
    t_base = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        cases.append(make_case(base, root / "cases" / f"{i:05d}", rng, i))
    t_make = time.perf_counter() - t0 - t_base
    counts: Counter = Counter()
    checks: Counter = Counter()
    examples: dict[str, list[str]] = {}
    ctx = mp.get_context("fork")
    pool = ctx.Pool(workers)
    pending = [(c, pool.apply_async(_worker, (c.folder,))) for c in cases]
    for c, job in pending:
        try:
            out = job.get(timeout=timeout)
        except mp.TimeoutError:
            counts["hang"] += 1
            examples.setdefault("hang", []).append(f"{c.index} {c.detail}")
            pool.terminate()  # the hung worker goes; the rest are re-queued
            pool = ctx.Pool(workers)
            rest = pending[pending.index((c, job)) + 1:]
            pending[pending.index((c, job)) + 1:] = [(r, pool.apply_async(_worker, (r.folder,)))
                                                     for r, _ in rest]
            continue
        counts[out.status] += 1
        for name in ("traceback", "mm_unknown_spacing", "lost_output", "multiline_refusal"):
            if getattr(out, name):
                checks[name] += 1
                examples.setdefault(name, []).append(f"{c.index} {c.detail}: {out.stderr[:200]}")
        if out.status == "uncaught":
            examples.setdefault("uncaught", []).append(f"{c.index} {c.detail}: {out.message}")
        if verbose:
            print(c.index, c.kind, c.detail, out.status, out.flags, out.message[:100])
    pool.terminate()
    elapsed = time.perf_counter() - t0
    if keep is None:
        shutil.rmtree(root, ignore_errors=True)
    kinds = Counter(c.kind for c in cases)
    return {"n": n, "seed": seed, "counts": counts, "checks": checks, "kinds": kinds,
            "examples": examples, "seconds": elapsed, "base_s": t_base, "make_s": t_make}
