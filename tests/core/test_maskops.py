"""core.maskops: the bounding-box forms return exactly what numpy/scipy return."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from spineviewer.core import maskops


def _masks():
    rng = np.random.default_rng(0)
    out = [np.zeros((40, 30), bool), np.ones((40, 30), bool)]
    for _ in range(30):
        m = ndi.binary_opening(rng.random((40, 30)) < rng.uniform(0.3, 0.8))
        out.append(m)
    ring = np.zeros((40, 30), bool)          # holes, one touching the image border
    ring[5:20, 5:20] = True
    ring[8:12, 8:12] = False
    ring[0:10, 25:30] = True
    ring[2:5, 27:30] = False
    out.append(ring)
    out.append(np.pad(np.ones((3, 3), bool), ((0, 37), (27, 0))))  # corner block
    return out


@pytest.mark.parametrize("i", range(34))
def test_same_as_numpy_and_scipy(i):
    m = _masks()[i]
    got = maskops.argwhere(m)
    want = np.argwhere(m)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)
    assert np.array_equal(maskops.fill_holes(m), ndi.binary_fill_holes(m))
    lab, n = ndi.label(m)
    got_lab, got_n = maskops.label(m)
    assert got_n == n and got_lab.dtype == lab.dtype and np.array_equal(got_lab, lab)
    assert np.array_equal(maskops.component_areas(lab, n),
                          ndi.sum(m, lab, np.arange(1, n + 1)))


@pytest.mark.parametrize("i", range(34))
@pytest.mark.parametrize("iterations", [1, 3])
def test_dilate_and_centres_same_as_scipy(i, iterations):
    m = _masks()[i]
    assert np.array_equal(maskops.dilate(m, iterations=iterations),
                          ndi.binary_dilation(m, iterations=iterations))
    lab, n = ndi.label(m)
    if n:
        idx = np.arange(1, n + 1)
        got = np.array(maskops.centres_of_mass(m, lab, idx))
        want = np.array(ndi.center_of_mass(m, lab, idx))
        assert got.tobytes() == want.tobytes()        # bit for bit
