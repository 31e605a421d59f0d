"""GUI test setup: offscreen Qt, private settings/autosave folders, and a small lumbar study.

The study is written with ``tests/dicom_factory.py``: a sagittal T2 series whose centre slice
shows six vertebral bodies (T12..L5, L1 wedge-fractured) above a sacrum, plus a sagittal T1 and
an axial T2 distractor. ``study_labels`` is the matching label map on the source slice
(1..6 = T12..L5, 7 = sacrum) for ``analyze_study(masks_override=...)``, which runs the real
pipeline with the network bypassed.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_PRIVATE = tempfile.mkdtemp(prefix="spineviewer-guitest-")
# QSettings (recent folders) and fallback autosaves must not touch the user's own folders.
os.environ["XDG_CONFIG_HOME"] = os.path.join(_PRIVATE, "config")
os.environ["XDG_DATA_HOME"] = os.path.join(_PRIVATE, "data")

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests import dicom_factory as df

ROWS, COLS = 300, 160
SPACING_MM = (0.8, 0.8)
BODY_H_PX, DISC_PX, TOP_PX = 32, 10, 14
LEFT_PX, WIDTH_PX = 40, 50
LEVELS = ("T12", "L1", "L2", "L3", "L4", "L5")
WEDGE_LEVEL = "L1"


def _label_map() -> np.ndarray:
    """Bodies as boxes stacked along the rows (anterior = low col); L1 anteriorly wedged."""
    labels = np.zeros((ROWS, COLS), np.uint8)
    rr, cc = np.mgrid[0:ROWS, 0:COLS]
    top = TOP_PX
    for i, level in enumerate(LEVELS, start=1):
        height, width = (BODY_H_PX, WIDTH_PX) if level != "T12" else (BODY_H_PX - 4, WIDTH_PX - 10)
        bottom = np.full(COLS, top + height)
        if level == WEDGE_LEVEL:  # anterior height ~55% of posterior
            frac = np.clip((cc[0] - LEFT_PX) / WIDTH_PX, 0, 1)
            bottom = top + BODY_H_PX * (0.55 + 0.45 * frac)
        inside = (cc >= LEFT_PX) & (cc < LEFT_PX + width) & (rr >= top) & (rr < bottom[None, :])
        labels[inside] = i
        top += height + DISC_PX
    sac = (cc >= LEFT_PX + 5) & (cc < LEFT_PX + WIDTH_PX + 5) & (rr >= top) & (rr < top + 30)
    labels[sac] = 7
    return labels


@dataclass
class LumbarStudy:
    path: Path
    t2_uid: str
    labels: np.ndarray


def write_lumbar_study(folder: Path) -> LumbarStudy:
    labels = _label_map()
    bright = np.where(labels > 0, 900, 250).astype(np.uint16)

    def pixels(i: int, spec: df.SeriesSpec) -> np.ndarray:
        return (bright + 10 * i).astype(np.uint16)

    specs = df.typical_study()
    t2 = specs[0]
    t2.rows, t2.cols, t2.pixel_spacing_mm, t2.pixels = ROWS, COLS, SPACING_MM, pixels
    t2.n_slices = 5
    specs[1].n_slices = 3
    df.write_study(folder, specs)
    return LumbarStudy(folder, t2.series_uid, labels)


@pytest.fixture(scope="session")
def lumbar_study_template(tmp_path_factory) -> LumbarStudy:
    return write_lumbar_study(tmp_path_factory.mktemp("lumbar"))


@pytest.fixture
def lumbar_study(tmp_path, lumbar_study_template) -> LumbarStudy:
    """A private copy per test (autosaves land beside the study)."""
    import shutil

    dst = tmp_path / "study"
    shutil.copytree(lumbar_study_template.path, dst)
    return LumbarStudy(dst, lumbar_study_template.t2_uid, lumbar_study_template.labels)


@pytest.fixture
def masks_analyze(lumbar_study):
    """``analyze_study`` with the study's label map instead of the network."""
    from spineviewer.core.pipeline import analyze_study

    def analyze(path, **kw):
        return analyze_study(path, masks_override=lumbar_study.labels, **kw)

    return analyze


ANALYSIS_TIMEOUT_MS = 60000


@contextmanager
def shown_window(qtbot, analyze, *, size: tuple[int, int] | None = None, **kwargs):
    """A shown ``MainWindow(analyze=analyze, **kwargs)``, shut down on leaving (its jobs
    stopped); ``size`` resizes it before it is shown."""
    from spineviewer.gui.main_window import MainWindow

    w = MainWindow(analyze=analyze, **kwargs)
    qtbot.addWidget(w)
    if size is not None:
        w.resize(*size)
    w.show()
    try:
        yield w
    finally:
        w.shutdown()


def open_and_wait(qtbot, w, path, *, drawn: bool = True):
    """Open ``path`` in window ``w``, wait for its result (and, with ``drawn``, for the canvas
    to show the analysed slice); returns the result."""
    with qtbot.waitSignal(w.resultsShown, timeout=ANALYSIS_TIMEOUT_MS) as blocker:
        w.open_folder(path)
    if drawn:
        qtbot.waitUntil(lambda: w.canvas.analysed_here(), timeout=10000)
    return blocker.args[0]
