"""Per-vertebra quality control (issue 13, part 3): a doubtful mask gets no confident call."""

from pathlib import Path

import numpy as np
import pytest

from spineviewer.core import qc
from spineviewer.core.pipeline import analyze_study
from spineviewer.core.results import read_csv_rows
from spineviewer.synth.params import PhantomParams
from spineviewer.synth.study import write_study


def _body(shift=0, h=44, w=62):
    m = np.zeros((120, 120), bool)
    m[30 + shift:30 + shift + h, 25:25 + w] = True
    return m


def _track(n=5):
    return {p: _body(shift=p % 2) for p in range(n)}


def test_sound_body_passes_every_check():
    track = _track()
    margin = np.full((120, 120), 0.95, np.float32)
    assert qc.body_checks(track, 2, margin=margin, neighbour_level_areas=[2700, 2800]) == []


def test_a_bite_on_one_slice_only_is_flagged_with_the_check_and_value():
    track = _track()
    bitten = track[2].copy()
    rr, cc = np.mgrid[:120, :120]
    bitten[(rr - 52) ** 2 + (cc - 28) ** 2 < 17 ** 2] = False      # bite from the front wall
    track[2] = bitten
    reasons = qc.body_checks(track, 2)
    assert any("solidity" in r and "below the same body on the neighbouring slices" in r
               for r in reasons), reasons
    # the same body on the next slice, undamaged, passes
    assert qc.body_checks(track, 4) == []


def test_neighbour_dice_and_network_margin():
    track = _track()
    track[2] = _body(h=22)                                          # half the body lost
    reasons = qc.body_checks(track, 2, margin=np.full((120, 120), 0.5, np.float32))
    assert any(r.startswith("mask disagrees with the neighbouring slices: Dice 0.6") for r in
               reasons), reasons
    assert any("softmax margin 0.50 < 0.75" in r for r in reasons), reasons


def test_implausible_aspect_and_area():
    reasons = qc.body_checks({0: _body(h=12, w=70)}, 0, neighbour_level_areas=[2700, 2800])
    assert any("height/depth 0.1" in r for r in reasons), reasons
    assert any("implausible size: area 0.3" in r for r in reasons), reasons


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("qc"), 4343, params=PhantomParams(), n_slices=5,
                       distractors=False)


def _volume_labels(study):
    """Truth labels on every slice: the centre slice's, bodies narrowing off the centre."""
    from scipy import ndimage as ndi

    centre = np.load(Path(study.out_dir) / "truth_labels.npy")
    vol = np.zeros((study.n_slices, *centre.shape), centre.dtype)
    for k in range(study.n_slices):
        d = abs(k - study.slice_index)
        for lab in np.unique(centre[centre > 0]):
            m = centre == lab
            if d:
                m = ndi.binary_erosion(m, iterations=3 * d)
            vol[k][m] = lab
    return vol


def test_a_damaged_mask_on_one_slice_gives_no_confident_call(study, tmp_path):
    vol = _volume_labels(study)
    c = study.slice_index
    l4 = np.argwhere(vol[c] == 5)
    r0, r1 = l4[:, 0].min(), l4[:, 0].max()
    a0 = l4[:, 1].min()
    # the mask leaks into the tissue in front of the body on the centre slice only
    vol[c][r0 + 4:r1 - 4, max(0, a0 - 30):a0 + 2] = 5
    result = analyze_study(study.dicom_dir, masks_override=vol)
    v = result.vertebra("L4")
    assert v.measurement_slice == c
    assert v.deformity == qc.NOT_ASSESSABLE and not v.fracture and v.genant_grade == 0
    assert {"segmentation_uncertain", "needs_review"} <= set(v.flags)
    assert any("Dice" in r for r in v.qc_reasons), v.qc_reasons
    assert v.reasons[0].startswith("not assessable - review: segmentation uncertain - ")
    assert any("would read" in r for r in v.reasons)
    for lv in ("L2", "L3", "L5"):
        u = result.vertebra(lv)
        assert u.deformity != qc.NOT_ASSESSABLE and not u.qc_reasons, (lv, u.qc_reasons)
    out = tmp_path / "r.csv"
    out.write_text(result.to_csv())
    row = {r["level"]: r for r in read_csv_rows(out)}["L4"]
    assert row["deformity"] == "not assessable - review" and row["fracture"] == 0
    assert row["qc_reasons"] and row["measurement_slice"] == c
    # the same series without the damage: L4 is called as usual
    clean = analyze_study(study.dicom_dir, masks_override=_volume_labels(study))
    assert clean.vertebra("L4").deformity != qc.NOT_ASSESSABLE
    assert not clean.vertebra("L4").qc_reasons


def test_solidity_of_a_section_is_computed_once_per_track(monkeypatch):
    # check_all and the most-deformed search check neighbouring positions of one track,
    # which share most of their sections: each section's solidity is computed once.
    rng = np.random.default_rng(3)
    track = {}
    for p in range(6):
        m = np.zeros((80, 80), bool)
        m[20:60, 15 + p:60] = True
        m[rng.integers(20, 60, 5), rng.integers(15, 60, 5)] = False
        track[p] = m
    plain = [qc.body_checks(track, p) for p in (2, 3)]
    calls = []
    real = qc.solidity
    monkeypatch.setattr(qc, "solidity", lambda m: calls.append(1) or real(m))
    cache: dict[int, float] = {}
    cached = [qc.body_checks(track, p, solidities=cache) for p in (2, 3)]
    assert cached == plain
    assert len(calls) == len(cache) == 6  # positions 0..5, each once (not 5 + 5)
