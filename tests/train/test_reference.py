"""Reference-table derivation: trimming, body extraction from SPIDER-style masks, ratio table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spineviewer.train import reference as R
from spineviewer.train.reference import BodyRatios, extract_bodies, ratio_table, trimmed_stats


def test_trimming_removes_outliers_until_stable():
    rng = np.random.default_rng(0)
    x = rng.normal(0.93, 0.05, 400)
    x_out = np.r_[x, [0.40, 0.45, 0.50, 1.60]]
    mean, sd, n, it = trimmed_stats(x_out)
    assert 390 <= n <= 400  # the four outliers (and at most a few tail values) dropped
    assert mean == pytest.approx(0.93, abs=0.01)
    assert sd == pytest.approx(0.05, abs=0.006)
    assert it >= 2
    # untrimmed statistics would be far off: the test above is not trivially met
    assert np.std(x_out, ddof=1) > 0.065


def test_trimming_iterates_to_a_fixed_point():
    x = np.r_[np.linspace(-1, 1, 50), 3.2, 5.0, 40.0]
    mean, sd, n, _ = trimmed_stats(x)
    kept = x[np.abs(x - mean) <= 3 * sd]
    assert kept.size == n
    assert kept.mean() == pytest.approx(mean) and kept.std(ddof=1) == pytest.approx(sd)
    assert 40.0 not in kept


def test_trimming_edge_cases():
    assert trimmed_stats([])[2] == 0
    assert trimmed_stats([1.0, 1.0, 1.0])[:3] == (1.0, 0.0, 3)
    assert trimmed_stats([1.0, np.nan, 3.0])[2] == 2


def _spider_mask(n=6, flip=False, cut_top=False, debris=True):
    """SPIDER-style mask: vertebrae (body + posterior arch) 1, discs 2, canal 3."""
    m = np.zeros((640, 400), np.uint8)
    m[20:40, 80:180] = 2  # disc above the top body: it is completely annotated
    for i in range(n):
        r0 = 40 + i * 90
        m[r0:r0 + 70, 80:180] = 1  # body, anterior at the left
        m[r0 + 10:r0 + 60, 220:300] = 1  # posterior elements behind the canal
        m[r0 + 70:r0 + 90, 80:180] = 2
    m[20:620, 190:215] = 3
    if debris:
        m[300, 100] = 3  # stray canal pixel inside a body must not cut it
    if cut_top:
        m[:60] = 0
        m[:60, 80:180] = 1  # body running off row 0
    return m[:, ::-1].copy() if flip else m


@pytest.mark.parametrize("flip", [False, True])
def test_extract_bodies_drops_posterior_elements(flip):
    m = _spider_mask(flip=flip)
    bodies = extract_bodies(m)
    assert len(bodies) == 6 and all(c for _, c in bodies)
    for i, (b, _) in enumerate(bodies):
        cols = np.nonzero(b.any(axis=0))[0]
        rows = np.nonzero(b.any(axis=1))[0]
        assert (cols.min(), cols.max()) == ((80, 179) if not flip else (220, 319))
        assert (rows.min(), rows.max()) == (40 + i * 90, 40 + i * 90 + 69)


def test_body_without_disc_above_is_incomplete():
    m = _spider_mask(n=6)
    m[20:40] = 0
    complete = [c for _, c in extract_bodies(m)]
    assert complete == [False, True, True, True, True, True]


def test_cut_body_is_incomplete_and_names_come_from_the_bottom():
    m = _spider_mask(n=6, cut_top=True)
    bodies = extract_bodies(m)
    assert bodies[0][1] is False and all(c for _, c in bodies[1:])

    def fake_measure(mask, anterior_left):
        rows = np.nonzero(mask.any(axis=1))[0]
        return float(np.ptp(rows) + 1), 70.0, 63.0, None

    out = R.slice_ratios(m, "1", "x.png", measure_fn=fake_measure)
    assert [b.level for b in out] == ["L5", "L4", "L3", "L2", "L1"]
    assert out[0].AH == 70.0 and out[0].MH == 63.0


def test_fallback_corners_on_a_rectangle():
    m = np.zeros((100, 100), bool)
    m[20:60, 30:80] = True
    c = R.fallback_corners(m)
    assert c["AS"] == (20.0, 30.0) and c["AI"] == (59.0, 30.0)
    assert c["PS"] == (20.0, 79.0) and c["PI"] == (59.0, 79.0)


def _br(slice_file, level, ph, ah=None, mh=None):
    return BodyRatios("1", slice_file, level, ah if ah is not None else 0.9 * ph, ph,
                      mh if mh is not None else 0.95 * ph, None)


def test_ratio_table_neighbour_ratios():
    bodies = [_br("a", "L3", 30.0), _br("a", "L4", 32.0), _br("a", "L5", 28.0),
              _br("b", "L3", 30.0), _br("b", "L5", 28.0)]  # L4 missing on slice b
    t = ratio_table(bodies)
    assert t["L4"]["crush"]["mean"] == pytest.approx(32 / 29, abs=1e-4)
    assert t["L4"]["crush"]["n"] == 1
    assert t["L5"]["crush_above"]["n"] == 1  # slice b has no L4 above L5
    assert t["L5"]["crush_above"]["mean"] == pytest.approx(28 / 32, abs=1e-4)
    assert t["L3"]["crush_below"]["mean"] == pytest.approx(30 / 32, abs=1e-4)
    assert "crush" not in t["L3"]  # L2 never measured
    assert t["L3"]["wedge"]["mean"] == pytest.approx(0.9) and t["L3"]["wedge"]["n"] == 2


def test_shipped_table_has_provenance():
    import json
    from pathlib import Path

    d = json.loads((Path(R.__file__).parents[2] / "assets" / "reference_ratios.json").read_text())
    assert "SPIDER" in d["source"] or d["provisional"]
    assert set(d["levels"]) >= {"T12", "L1", "L2", "L3", "L4", "L5"}


def test_derive_from_a_tiny_dataset(tmp_path):
    from PIL import Image

    (tmp_path / "masks").mkdir()
    rows = []
    for i, (case, rank, split) in enumerate([("1", 0, "train"), ("2", 0, "train"),
                                              ("3", 0, "val"), ("1", 3, "train")]):
        name = f"spider{i:03d}_s050.png"
        Image.fromarray(_spider_mask(n=6)).save(tmp_path / "masks" / name)
        rows.append(f"{name},{case},50,{rank},{split},640,400")
    (tmp_path / "manifest.csv").write_text(
        "file,case,slice,central_rank,split,rows,cols\n" + "\n".join(rows) + "\n")
    used = R.read_manifest(tmp_path, "train", (-1, 0, 1))
    assert [r["case"] for r in used] == ["1", "2"]

    def fake_measure(mask, anterior_left):
        return 63.0, 70.0, 66.5, 0.95

    bodies = R.collect(tmp_path, used, measure_fn=fake_measure)
    assert len(bodies) == 12
    doc = R.derive(tmp_path, bodies=bodies)
    assert doc["levels"]["L3"]["wedge"]["mean"] == pytest.approx(0.9)
    assert doc["levels"]["L3"]["wedge"]["n"] == 2
    assert doc["levels"]["L3"]["crush"]["mean"] == pytest.approx(1.0)
    assert "van der Graaf" in doc["source"] and doc["recipe"]["n_bodies"] == 12
    # a body with a poor corner fit (overlap < 0.85) is left out
    poor = [dataclasses.replace(bodies[0], overlap=0.7), *bodies[1:]]
    doc = R.derive(tmp_path, bodies=poor)
    assert doc["recipe"]["n_bodies_used"] == 11
    assert doc["levels"][poor[0].level]["wedge"]["n"] == 1
    csv_path = tmp_path / "bodies.csv"
    R.write_bodies_csv(bodies, csv_path)
    assert R.read_bodies_csv(csv_path) == bodies


def test_robust_start_unmasks_common_deformities():
    rng = np.random.default_rng(3)
    healthy = rng.normal(0.95, 0.03, 60)
    fractured = rng.normal(0.72, 0.06, 15)  # 20% prevalence, as in an osteoporotic cohort
    x = np.concatenate([healthy, fractured])
    _, sd_p, n_p, _ = trimmed_stats(x, robust_start=False)
    mean_r, sd_r, n_r, _ = trimmed_stats(x)
    assert sd_p > 0.08 and n_p == x.size  # classical trimming is masked: keeps everything
    assert abs(mean_r - 0.95) < 0.015 and 0.02 < sd_r < 0.04
    assert n_r <= 62


def test_canal_that_ends_or_veers_forward_does_not_cut_the_lowest_bodies():
    # SPIDER's canal label often thins out and ends around L5; its last rows can lie far
    # anterior to the vertebral wall. Holding that border below the canal's end cut L5 away.
    m = _spider_mask(n=6, debris=False)
    m[400:, 190:215] = 0          # canal ends at row 400 ...
    m[385:400, 190:215] = 0
    m[385:400, 120:140] = 3       # ... after veering forward into the body's column range
    wall = R.posterior_wall(m)
    assert np.all(wall[380:] > 175)  # the discs' posterior margins (col 179) take over
    bodies = extract_bodies(m)
    assert len(bodies) == 6 and all(c for _, c in bodies)
    for i, (b, _) in enumerate(bodies):
        cols = np.nonzero(b.any(axis=0))[0]
        assert (cols.min(), cols.max()) == (80, 179), i


def test_posterior_wall_uses_canal_where_it_agrees_with_the_discs():
    m = _spider_mask(n=6, debris=False)
    wall = R.posterior_wall(m)
    assert np.all(wall[30:600] == 190)    # canal front, within tolerance of the disc line
