"""A fast seeded subset of the DICOM fuzz run (the full run: benchmarks/fuzz_dicom.py)."""

from __future__ import annotations

import numpy as np
import pytest

from spineviewer.synth import fuzz


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return fuzz.write_base(tmp_path_factory.mktemp("fuzzbase"), seed=16)


def test_seeded_fuzz_subset_has_no_crash_hang_guess_or_lost_output(tmp_path):
    r = fuzz.run_many(24, seed=16, timeout=120, workers=2, keep=str(tmp_path / "run"))
    counts, checks = r["counts"], r["checks"]
    assert sum(counts.values()) == 24
    assert counts["uncaught"] == 0 and counts["hang"] == 0, r["examples"]
    assert sum(checks.values()) == 0, r["examples"]
    assert counts["refused"] > 0 and counts["ok"] + counts["flagged"] > 0


def test_cases_are_reproducible_from_the_seed(base, tmp_path):
    a = [fuzz.make_case(base, tmp_path / f"a{i}", np.random.default_rng([5, i]), i)
         for i in range(6)]
    b = [fuzz.make_case(base, tmp_path / f"b{i}", np.random.default_rng([5, i]), i)
         for i in range(6)]
    assert [(c.kind, c.detail.replace("/b", "/a")) for c in a] == \
        [(c.kind, c.detail.replace("/b", "/a")) for c in b]


@pytest.mark.parametrize("kind", list(fuzz.KINDS))
def test_every_mutation_kind_ends_in_a_known_outcome(base, tmp_path, kind):
    case = fuzz.make_case(base, tmp_path / "c", np.random.default_rng(3), kind=kind)
    out = fuzz.run_case(case.folder)
    assert out.status in ("ok", "flagged", "refused"), (case.detail, out.message)
    assert not (out.traceback or out.mm_unknown_spacing or out.lost_output), out


def test_a_study_without_spacing_is_refused_not_measured(base, tmp_path):
    import pydicom

    case = fuzz.make_case(base, tmp_path / "c", np.random.default_rng(0), kind="delete")
    for p in (tmp_path / "c" / "SE0003").iterdir():
        ds = pydicom.dcmread(p)
        del ds.PixelSpacing
        ds.save_as(p, enforce_file_format=True)
    out = fuzz.run_case(case.folder)
    assert out.status == "refused" and "pixel spacing" in out.message
