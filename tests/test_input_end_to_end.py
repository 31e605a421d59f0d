"""JPEG Lossless (Process 14 and SV1), Deflated and preamble-less studies give the same result
as the uncompressed study (issue 16): same slice, same millimetres, same calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from spineviewer.core.pipeline import analyze_study
from spineviewer.synth import codecs
from spineviewer.synth.study import write_study

ROOT = Path(__file__).resolve().parents[1]
#: Fields that name where the files were or how long it took, not what was found.
_WHERE = ("source_path", "source_slice_file", "timings_s", "warnings")


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    if not list((ROOT / "models").glob("*.onnx")):
        pytest.skip("no shipped ONNX model in models/")
    tmp = tmp_path_factory.mktemp("codec_e2e")
    write_study(tmp / "plain", seed=1616, n_slices=7, distractors=False)
    return tmp


def _comparable(result) -> dict:
    d = result.to_dict()
    for key in _WHERE:
        d.pop(key, None)
    return d


@pytest.fixture(scope="module")
def reference(studies):
    return _comparable(analyze_study(studies / "plain" / "dicom"))


@pytest.mark.slow
@pytest.mark.parametrize("syntax", ["jpeg_lossless", "jpeg_lossless_sv1", "deflated",
                                    "no_preamble"])
def test_compressed_study_result_equals_uncompressed(studies, reference, syntax):
    out = studies / syntax
    if not out.exists():
        codecs.transcode_study(studies / "plain" / "dicom", out, syntax)
    got = _comparable(analyze_study(out))
    assert reference["vertebrae"], "the reference study measured no vertebra"
    assert got == reference
