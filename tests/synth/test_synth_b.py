"""Renderer B (spineviewer.synth_b): the same anatomy and truth as renderer A, drawn otherwise."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from spineviewer.synth.anatomy import build_anatomy
from spineviewer.synth.params import random_params
from spineviewer.synth.study import load_truth, write_study
from spineviewer.synth_b import draw_look, render_b
from spineviewer.synth_b.render import FILLS


def _centre_pixels(truth) -> np.ndarray:
    for f in sorted(truth.dicom_dir.rglob("*")):
        if f.is_file():
            ds = pydicom.dcmread(f)
            if ds.SOPInstanceUID == truth.sop_instance_uid:
                return ds.pixel_array.astype(float)
    raise AssertionError("centre slice not found")


def test_same_seed_same_truth_other_image(tmp_path):
    a = write_study(tmp_path / "a", 4242, n_slices=3, distractors=False)
    b = write_study(tmp_path / "b", 4242, n_slices=3, distractors=False, render="b")
    ja, jb = (json.loads((tmp_path / k / "truth.json").read_text()) for k in "ab")
    assert ja["vertebrae"] == jb["vertebrae"]
    assert np.array_equal(np.load(tmp_path / "a" / "truth_labels.npy"),
                          np.load(tmp_path / "b" / "truth_labels.npy"))
    assert (a.renderer, b.renderer) == ("a", "b")
    assert load_truth(tmp_path / "b").look["rim_mm"] == b.look["rim_mm"]
    ia, ib = _centre_pixels(a), _centre_pixels(b)
    assert ia.shape == ib.shape
    assert np.corrcoef(ia.ravel(), ib.ravel())[0, 1] < 0.95


def test_bad_renderer_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="render"):
        write_study(tmp_path, 1, render="c")


def test_looks_cover_the_promised_range():
    rng = np.random.default_rng(0)
    params = random_params(rng)
    anat = build_anatomy(rng, params)
    looks = [draw_look(np.random.default_rng(i), anat) for i in range(60)]
    rims = [lk.rim_mm for lk in looks]
    assert 0.5 <= min(rims) < 0.8 and 1.7 < max(rims) <= 2.0
    assert {f for lk in looks for f in lk.fills.values()} == set(FILLS)
    assert any(lk.stir for lk in looks) and not all(lk.stir for lk in looks)
    assert {lk.marrow for lk in looks} == {"normal", "fatty", "oedema"}
    assert {m[0] for lk in looks for m in lk.modic.values()} == {1, 2, 3}


def test_depression_fill_and_rim_are_drawn_where_asked():
    rng = np.random.default_rng(3)
    params = random_params(rng)
    params.deformities = {"L3": ("biconcave", 3)}
    params.noise_sd, params.intensity_scale = 0.0, 1.0
    anat = build_anatomy(rng, params)
    look = draw_look(np.random.default_rng(1), anat)
    look.stir, look.marrow, look.texture_amp, look.rim_mm = False, "normal", 0.0, 1.5
    body = next(b for b in anat.bodies if b.level == "L3")
    c = body.corners
    top = 0.5 * (c["AS"] + c["PS"])                     # chord middle: inside the depression
    down = (0.5 * (c["AI"] + c["PI"]) - top) / np.linalg.norm(0.5 * (c["AI"] + c["PI"]) - top)
    sp = np.asarray(params.spacing_mm)

    def at(img, p_mm):
        r, col = np.round(p_mm / sp).astype(int)
        return float(img[r, col])

    values = {}
    for fill in FILLS:
        look.fills["L3"] = fill
        img, _ = render_b(anat, params, np.random.default_rng(0), look=look)
        values[fill] = at(img, top + 1.0 * down)
    assert values["disc_bright"] > 1.5 * values["marrow"] > 2.0 * values["disc_dark"]
