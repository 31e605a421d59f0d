"""Issue 16, input half: each bad-input case that once gave a hang, a guess or a traceback.

Cases (numbers of the issue): 1 FIFO hang, 2 unknown pixel size, 3 wrong slice analysed
(truncated / unreadable / other matrix centre file, corrupted SeriesInstanceUID), 4 8-bit and
Rows/Columns swapped, 5 one bad T1 file with a corrupt VR, 6 12-bit JPEG Extended.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from spineviewer.core.dicom import checks, reading
from spineviewer.core.dicom.index import scan_folder
from spineviewer.core.dicom.select import choose_series
from spineviewer.core.dicom.volume import load_series
from spineviewer.core.errors import NoPixelSpacing, NoSagittalT2Series, UnreadableSeries
from spineviewer.core.results import INPUT_FLAG_NAMES, StudyResult, VertebraResult

ROOT = Path(__file__).resolve().parents[3]


def smooth_pixels(i, spec):
    """Smooth structured stored values (as MR anatomy is), different per slice."""
    rng = np.random.default_rng(100 + i)
    img = ndimage.gaussian_filter(rng.normal(size=(spec.rows, spec.cols)), 3.0)
    img = (img - img.min()) / max(np.ptp(img), 1e-9)
    return (200 + 3000 * img).astype(np.uint16)


def prepared(folder):
    index = scan_folder(folder)
    volume = load_series(choose_series(index).series)
    return index, volume, checks.check_input(volume)


def t2_series(factory, folder, **kw):
    spec = factory.SeriesSpec(description="t2_tse_sag", pixels=smooth_pixels, **kw)
    return spec, factory.write_series(folder, spec)


def test_input_flags_match_results_contract():
    assert tuple(checks.INPUT_FLAGS) == INPUT_FLAG_NAMES


# -- 1. a named pipe in the study folder -------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_fifo_in_study_folder_is_skipped_with_a_reason_not_a_hang(tmp_path, factory):
    t2_series(factory, tmp_path / "study")
    os.mkfifo(tmp_path / "study" / "pipe")
    code = ("import sys; from spineviewer.core.dicom.index import scan_folder; "
            "ix = scan_folder(sys.argv[1]); print(ix.skipped)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "study")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "special file: named pipe (FIFO)" in proc.stdout
    assert reading.special_file_reason(tmp_path / "study" / "pipe") == \
        "special file: named pipe (FIFO)"


# -- 2. unknown pixel size ----------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, "0\\0", "-0.6\\-0.6", "nan\\0.6", "0.6\\nan", "9\\9",
                                   "0.001\\0.001", "abc"])
def test_no_usable_pixel_spacing_is_refused(tmp_path, factory, value):
    _, paths = t2_series(factory, tmp_path / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        if value is None:
            del ds.PixelSpacing
        else:
            ds.PixelSpacing = [7.25, 7.25]  # then its bytes replaced by the broken value
        ds.save_as(p, enforce_file_format=True)
        if value is not None:
            raw = value.encode() + b" " * (len(value) % 2)
            data = p.read_bytes().replace(b"DS\x0a\x007.25\\7.25 ",
                                          b"DS" + len(raw).to_bytes(2, "little") + raw)
            p.write_bytes(data)
    with pytest.raises(NoPixelSpacing, match="no usable pixel spacing"):
        prepared(tmp_path / "s")


def test_no_pixel_spacing_cli_is_one_line_exit_2(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.PixelSpacing
        ds.save_as(p, enforce_file_format=True)
    proc = subprocess.run([sys.executable, "-m", "spineviewer.cli", "analyze", str(tmp_path / "s"),
                           "-q", "--csv", str(tmp_path / "o.csv")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "pixel spacing" in proc.stderr and not (tmp_path / "o.csv").exists()


# -- 3. the wrong slice analysed without a word -------------------------------------------------
def test_truncated_centre_slice_is_refused(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    data = paths[3].read_bytes()  # the centre of 7
    paths[3].write_bytes(data[: len(data) - 1000])
    with pytest.raises(UnreadableSeries, match="centre slice"):
        prepared(tmp_path / "s")


def test_centre_slice_without_pixel_data_is_refused(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    ds = pydicom.dcmread(paths[3])
    del ds.PixelData
    ds.save_as(paths[3], enforce_file_format=True)
    with pytest.raises(UnreadableSeries, match="centre slice"):
        prepared(tmp_path / "s")


def test_centre_slice_of_another_matrix_is_refused(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    ds = pydicom.dcmread(paths[3])
    ds.Rows, ds.Columns = 32, 48
    ds.PixelData = np.zeros((32, 48), np.uint16).tobytes()
    ds.save_as(paths[3], enforce_file_format=True)
    with pytest.raises(UnreadableSeries, match="centre slice"):
        prepared(tmp_path / "s")


def test_unreadable_edge_slice_is_flagged_and_named(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    paths[1].write_bytes(paths[1].read_bytes()[:600])  # a gap off the centre
    _, volume, checked = prepared(tmp_path / "s")
    assert "slice_missing" in checked.flags
    assert any(w.startswith(checks.MISSING_SLICE) for w in checked.warnings)
    # the analysed slice is still the series' centre (position 0 of the grid)
    assert volume.files[checked.centre] == str(paths[3])


def test_missing_edge_slices_are_named_by_instance_number(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.ImagesInAcquisition = 7
        ds.save_as(p, enforce_file_format=True)
    paths[6].unlink()
    paths[0].write_bytes(b"")  # the first one empty too: positions 1..5 of 0..6 remain
    _, volume, checked = prepared(tmp_path / "s")
    assert volume.files[checked.centre] == str(paths[3])
    assert "slice_missing" in checked.flags
    assert any("instance number(s) 1, 7" in w for w in checked.warnings), checked.warnings


def test_missing_slice_is_named_in_csv_json_and_report(tmp_path):
    from spineviewer.io.report_text import summary_lines

    r = StudyResult("1.2", "1.2.3", "1.2.3.4", 3, (0.6, 0.6),
                    vertebrae=[VertebraResult("L1", flags=["needs_review"])],
                    flags=["slice_missing"],
                    warnings=[f"{checks.MISSING_SLICE}no slice at position 4.0 mm"])
    assert r.csv_rows()[0]["flags"] == "needs_review;slice_missing"
    assert "slice_missing" in StudyResult.from_json(r.to_json()).flags
    text = "\n".join(summary_lines(r))
    assert checks.INPUT_FLAGS["slice_missing"] in text and "position 4.0 mm" in text


def test_one_file_with_corrupted_series_uid(tmp_path, factory):
    """It was a 1-slice 'series' reported as an L4 crush fracture: now the main series loses
    its centre slice and is refused; the lone file, if chosen, is flagged few_slices."""
    _, paths = t2_series(factory, tmp_path / "s")
    ds = pydicom.dcmread(paths[3])
    ds.SeriesInstanceUID = "1.2.3.999"
    ds.save_as(paths[3], enforce_file_format=True)
    index = scan_folder(tmp_path / "s")
    assert len(index.series) == 2
    for series in index.series:
        volume = load_series(series)
        if series.n_slices == 1:
            assert "few_slices" in checks.check_input(volume).flags
        else:
            with pytest.raises(UnreadableSeries, match="centre slice"):
                checks.check_input(volume)


# -- 4. garbage in, plausible results out ------------------------------------------------------
def test_8bit_series_is_flagged(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.PixelData = (ds.pixel_array >> 4).astype(np.uint8).tobytes()
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.save_as(p, enforce_file_format=True)
    _, _, checked = prepared(tmp_path / "s")
    assert "eight_bit" in checked.flags


def test_monochrome1_is_flagged(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.save_as(p, enforce_file_format=True)
    assert "not_monochrome2" in prepared(tmp_path / "s")[2].flags


def test_rows_and_columns_swapped_is_refused(tmp_path, factory):
    _, paths = t2_series(factory, tmp_path / "s")
    assert prepared(tmp_path / "s")[2].min_adjacent_correlation > 0.9
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.Rows, ds.Columns = ds.Columns, ds.Rows  # same bytes, wrong row length
        ds.save_as(p, enforce_file_format=True)
    with pytest.raises(UnreadableSeries, match="do not line up"):
        prepared(tmp_path / "s")


def test_mixed_orientation_is_refused_or_flagged(tmp_path, factory):
    spec, paths = t2_series(factory, tmp_path / "s")
    ds = pydicom.dcmread(paths[5])
    ds.ImageOrientationPatient = [0, 0.996, 0.087, 0, 0.087, -0.996]
    ds.save_as(paths[5], enforce_file_format=True)
    index = scan_folder(tmp_path / "s")
    with pytest.raises(NoSagittalT2Series, match="unknown plane"):  # automatic choice: refused
        choose_series(index)
    volume = load_series(choose_series(index, series_uid=spec.series_uid).series)  # the user's
    assert "mixed_geometry" in checks.check_input(volume).flags


# -- 5. one bad file anywhere aborted the study -------------------------------------------------
def test_one_t1_file_with_corrupt_vr_is_skipped(tmp_path, factory):
    specs = factory.typical_study()
    specs[0].pixels = smooth_pixels
    files = factory.write_study(tmp_path / "st", specs)
    bad = files[specs[1].series_uid][2]
    data = bytearray(bad.read_bytes())
    at = data.index(b"UI", 200)  # an explicit VR in the dataset (after the meta header)
    data[at:at + 2] = b"ZZ"
    bad.write_bytes(bytes(data))
    index, volume, _checked = prepared(tmp_path / "st")
    assert volume.series.series_description == "t2_tse_sag"
    assert any(f == str(bad) and "unreadable DICOM" in why for f, why in index.skipped)


# -- 6. compressed transfer syntaxes -------------------------------------------------------------
@pytest.mark.parametrize("syntax", ["jpeg_lossless", "jpeg_lossless_sv1", "jpeg_extended_12bit",
                                    "deflated", "no_preamble", "rle", "jpeg_ls_lossless",
                                    "jpeg2000_lossless"])
def test_transfer_syntaxes_decode_without_stderr(tmp_path, factory, syntax):
    from spineviewer.synth import codecs

    t2_series(factory, tmp_path / "src")
    codecs.transcode_study(tmp_path / "src", tmp_path / "dst", syntax)
    code = ("import sys\nfrom spineviewer.core.dicom.index import scan_folder\n"
            "from spineviewer.core.dicom.select import choose_series\n"
            "from spineviewer.core.dicom.volume import load_series\n"
            "from spineviewer.core.dicom.checks import check_input\n"
            "v = load_series(choose_series(scan_folder(sys.argv[1])).series)\n"
            "c = check_input(v)\nimport numpy as np\n"
            "np.save(sys.argv[2], v.pixels[c.centre]); print(len(v.skipped), c.flags)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dst"),
                           str(tmp_path / "c.npy")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    _, ref, _ = prepared(tmp_path / "src")
    got = np.load(tmp_path / "c.npy")
    tol = 0 if syntax in codecs.LOSSLESS else 8  # 12-bit JPEG Extended is lossy
    assert np.abs(got - ref.pixels[3]).max() <= tol
    assert proc.stdout.startswith("0 ")
    assert ("lossy_compression" in proc.stdout) == (syntax not in codecs.LOSSLESS)


def test_12bit_jpeg_with_a_wrong_vr_does_not_abort_the_process(tmp_path, factory):
    """GDCM aborted the whole process (uncaught C++ exception) reading such a header (found by
    the fuzz run); it now decodes from a clean copy of the pixel module."""
    from spineviewer.synth import codecs

    t2_series(factory, tmp_path / "src", slope=1.0, intercept=0.0)
    codecs.transcode_study(tmp_path / "src", tmp_path / "dst", "jpeg_extended_12bit")
    for p in (tmp_path / "dst").iterdir():
        data = p.read_bytes()
        assert b"\x28\x00\x53\x10DS" in data  # RescaleSlope, VR DS
        p.write_bytes(data.replace(b"\x28\x00\x53\x10DS", b"\x28\x00\x53\x10FD"))
    code = ("import sys\nfrom spineviewer.core.dicom.volume import load_series\n"
            "from spineviewer.core.dicom.index import scan_folder\n"
            "v = load_series(scan_folder(sys.argv[1]).series[0]); print(v.n_slices)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dst")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode in (0, 1), proc.returncode  # never killed by SIGABRT
    assert "Traceback" not in proc.stderr or "UnreadableSeries" in proc.stderr


def test_jpeg_without_samples_per_pixel_neither_hangs_nor_aborts(tmp_path, factory):
    """Found by the fuzz run: GDCM given SamplesPerPixel 0 never returned."""
    from spineviewer.synth import codecs

    t2_series(factory, tmp_path / "src")
    codecs.transcode_study(tmp_path / "src", tmp_path / "dst", "jpeg_extended_12bit")
    for p in (tmp_path / "dst").iterdir():
        ds = pydicom.dcmread(p)
        del ds.SamplesPerPixel
        ds.save_as(p, enforce_file_format=False)
    code = ("import sys\nfrom spineviewer.core.dicom.volume import load_series\n"
            "from spineviewer.core.dicom.index import scan_folder\n"
            "v = load_series(scan_folder(sys.argv[1]).series[0]); print(v.n_slices)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dst")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.strip() == "7" and proc.stderr == ""
