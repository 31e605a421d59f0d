"""Pixel <-> patient coordinates (core.dicom.patient_space)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from spineviewer.core.dicom.patient_space import SeriesGeometry, direction_letters, edge_letters

SAG = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows run head -> foot, columns anterior -> posterior


def _volume(iop=SAG, spacing=(0.6, 0.6), n=5, gap=3.3, x0=2.0):
    pos = np.array([[x0 - (k - n // 2) * gap, -130.0, 130.0] for k in range(n)])
    return SimpleNamespace(image_orientation=iop, image_positions=pos, pixel_spacing_mm=spacing)


def test_pixel_to_patient_follows_the_dicom_equation():
    g = SeriesGeometry.from_volume(_volume(spacing=(0.5, 0.8)))
    p = g.to_patient(2, r=10, c=20)
    # +c moves posterior (+y) by 0.8 mm per column; +r moves foot-wards (-z) by 0.5 mm per row
    np.testing.assert_allclose(p, [2.0, -130.0 + 16.0, 130.0 - 5.0])


def test_round_trip_and_nearest_slice():
    g = SeriesGeometry.from_volume(_volume())
    p = g.to_patient(3, 100.25, 40.5)
    k, r, c = g.to_pixel(p)
    assert (k, r, c) == (3, pytest.approx(100.25), pytest.approx(40.5))
    assert g.nearest_slice(p + g.normal * 1.0) == (3, pytest.approx(1.0))


def test_same_point_in_a_series_with_other_pixels():
    t2 = SeriesGeometry.from_volume(_volume(spacing=(0.6, 0.6), n=15))
    stir = SeriesGeometry.from_volume(_volume(spacing=(0.8, 0.8), n=11))
    k, r, c = stir.to_pixel(t2.to_patient(7, 300, 120))
    assert k == 5 and r == pytest.approx(225) and c == pytest.approx(90)


def test_missing_geometry_gives_none():
    assert SeriesGeometry.from_volume(_volume(iop=None)) is None
    v = _volume()
    v.image_positions[1] = np.nan
    assert SeriesGeometry.from_volume(v) is None
    assert SeriesGeometry.from_volume(_volume(iop=(1, 0, 0, 1, 0, 0))) is None


def test_edge_letters():
    assert edge_letters(SAG) == {"right": "P", "left": "A", "bottom": "F", "top": "H"}
    axial = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert edge_letters(axial) == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    assert edge_letters(None) is None
    assert direction_letters((0, 0.6, -0.8)) == "FP"
    assert direction_letters((0, 0.1, -1)) == "F"
