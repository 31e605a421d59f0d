"""8-bit studies (a PACS's 8-bit export): scaled by their own full scale, not by 2500."""

from pathlib import Path

import numpy as np
import pydicom
import pytest

from spineviewer.core.pipeline import analyze_study, prepare_series
from spineviewer.core.preprocess import INTENSITY_SCALE, intensity_scale
from spineviewer.io.report_text import method_lines
from spineviewer.synth.eight_bit import export_study
from spineviewer.synth.params import PhantomParams
from spineviewer.synth.study import write_study

ROOT = Path(__file__).resolve().parents[2]
HAS_MODEL = any((ROOT / "models").glob("*.onnx"))


def test_scale_is_the_full_scale_of_8_bit_data_and_the_papers_otherwise():
    assert intensity_scale(2500.0, 8, 255.0)[0] == 255.0
    assert intensity_scale(2500.0, 8, 510.0)[0] == 510.0  # RescaleSlope 2
    assert intensity_scale(2500.0, 12, 4095.0)[0] == 2500.0
    assert intensity_scale(2500.0, 16, 65535.0)[0] == 2500.0
    assert intensity_scale(2500.0, None, None)[0] == 2500.0  # no BitsStored: the paper's
    assert "8-bit" in intensity_scale(2500.0, 8, 255.0)[1]


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    out = tmp_path_factory.mktemp("eight")
    params = PhantomParams(deformities={"L2": ("wedge", 2)})
    t16 = write_study(out / "s16", 5151, vendor="siemens", params=params, n_slices=7,
                      distractors=False)
    export_study(t16.out_dir, out / "s8")
    return t16, out / "s8" / "dicom"


def test_export_is_8_bit_through_the_window(studies):
    _, d8 = studies
    files = sorted(d8.rglob("*.dcm"))
    assert files
    ds = pydicom.dcmread(files[len(files) // 2])
    assert ds.BitsStored == 8 and ds.BitsAllocated == 8
    a = ds.pixel_array
    assert a.dtype == np.uint8 and a.max() == 255  # the window clips the brightest pixels
    assert "RescaleSlope" not in ds


@pytest.mark.skipif(not HAS_MODEL, reason="no shipped ONNX model in models/")
def test_8_bit_study_gets_the_intensities_the_model_knows_and_the_same_result(studies):
    t16, d8 = studies
    r16 = analyze_study(t16.dicom_dir)
    r8 = analyze_study(d8)
    assert r16.parameters["intensity_scale"] == INTENSITY_SCALE
    assert r8.parameters["intensity_scale"] == 255.0
    assert "eight_bit" in r8.flags
    # the model input of the 8-bit study is in the range the model was trained on (0.3 to 1
    # at the 99th percentile: phantoms / 2500 and SPIDER / 255, with gain); divided by 2500
    # it would be about a tenth of it
    from spineviewer.core.dicom.index import scan_folder
    from spineviewer.core.dicom.select import choose_series
    from spineviewer.core.dicom.volume import load_series
    from spineviewer.core.pipeline import get_model

    model = get_model()
    p99 = []
    for d, scale in ((t16.dicom_dir, r16.parameters["intensity_scale"]),
                     (d8, r8.parameters["intensity_scale"])):
        vol = load_series(choose_series(scan_folder(d)).series)
        x = prepare_series(vol, model, centre_only=True, scale=scale).x
        p99.append(float(np.percentile(x, 99)))
    assert 0.3 <= p99[0] <= 1.0 and 0.3 <= p99[1] <= 1.0, p99
    # the same bodies, named alike, heights alike, the wedge found on both
    got16 = {v.level: v for v in r16.vertebrae if v.AH_mm is not None}
    got8 = {v.level: v for v in r8.vertebrae if v.AH_mm is not None}
    lumbar = [lv for lv in ("L1", "L2", "L3", "L4", "L5") if lv in got16]
    assert len(lumbar) == 5 and all(lv in got8 for lv in lumbar)
    diffs = [abs(got8[lv].AH_mm - got16[lv].AH_mm) for lv in lumbar]
    diffs += [abs(got8[lv].PH_mm - got16[lv].PH_mm) for lv in lumbar]
    # (here about 0.15 mm, at most 0.6; divided by 2500: 0.65 mm, up to 1.3)
    assert np.median(diffs) < 0.4 and max(diffs) < 1.0, diffs
    assert got8["L2"].fracture and got8["L2"].deformity == "wedge"
    assert any("8-bit" in line for line in method_lines(r8))
    assert not any("8-bit" in line for line in method_lines(r16))


def test_a_dim_8_bit_series_is_brought_into_the_range_the_model_was_trained_on():
    from spineviewer.core.preprocess import EIGHT_BIT_P99_MIN, EIGHT_BIT_P99_TARGET

    # as bright as the training images: the full scale, as before
    assert intensity_scale(2500.0, 8, 255.0, 200.0)[0] == 255.0
    assert intensity_scale(2500.0, 8, 255.0, EIGHT_BIT_P99_MIN * 255.0)[0] == 255.0
    # dimmer than any of them: its 99th percentile is read as the training median
    scale, why = intensity_scale(2500.0, 8, 255.0, 90.0)
    assert scale == pytest.approx(90.0 / EIGHT_BIT_P99_TARGET) and "dimmer" in why
    assert intensity_scale(2500.0, 8, 510.0, 200.0)[0] == pytest.approx(200 / EIGHT_BIT_P99_TARGET)
    # deeper data keeps the paper's divisor whatever its percentile
    assert intensity_scale(2500.0, 16, 65535.0, 90.0)[0] == 2500.0


@pytest.mark.skipif(not HAS_MODEL, reason="no shipped ONNX model in models/")
def test_a_dim_8_bit_export_gets_the_result_of_the_full_range_one(studies, tmp_path):
    """An export through a wide window (the brightest pixel at 115 of 255) is analysed as the
    full-range export is: the same bodies, names, calls and heights within 0.5 mm."""
    _, d8 = studies
    dim = tmp_path / "dim"
    for f in sorted(d8.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        a = np.round(ds.pixel_array.astype(float) * 0.45).astype(np.uint8)
        ds.PixelData = a.tobytes()
        out = dim / f.relative_to(d8)
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out)
    r8, rd = analyze_study(d8), analyze_study(dim)
    from spineviewer.core.preprocess import EIGHT_BIT_P99_TARGET

    # its 99th percentile (255 x 0.45 = 115) is read as the training median, not 115 / 255
    assert rd.parameters["intensity_scale"] == pytest.approx(115 / EIGHT_BIT_P99_TARGET)
    assert "dimmer" in rd.parameters["intensity_scale_reason"]
    got8 = {v.level: v for v in r8.vertebrae if v.AH_mm is not None}
    gotd = {v.level: v for v in rd.vertebrae if v.AH_mm is not None}
    assert set(gotd) == set(got8)
    for lv, v in got8.items():
        assert gotd[lv].fracture == v.fracture and gotd[lv].deformity == v.deformity
        assert abs(gotd[lv].AH_mm - v.AH_mm) < 0.5 and abs(gotd[lv].PH_mm - v.PH_mm) < 0.5
