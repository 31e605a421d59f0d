"""The demo study for screenshots and the GUI benchmark (phantom written by ``synth``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def model_available() -> bool:
    """True when a segmentation model can be found (``models/*.onnx`` or $SPINEVIEWER_MODEL)."""
    try:
        from spineviewer.core.segment import default_model_path

        return default_model_path().is_file()
    except Exception:  # noqa: BLE001 - no model, any reason
        return False


def prepare_demo(out_dir: str | Path) -> tuple[Path, Callable[..., Any] | None, str]:
    """Write the demo phantom study (as ``spineviewer demo``) into ``out_dir``.

    Returns
    -------
    (dicom folder, analyze, note)
        ``analyze`` is None when the real model runs; without a model it is
        ``analyze_study`` with the phantom's ground-truth masks (segmentation bypassed) and
        ``note`` says so.
    """
    import numpy as np

    from spineviewer.cli import DEMO_SEED, demo_study_options
    from spineviewer.synth.study import write_study

    study = Path(out_dir) / "study"
    if not (study / "dicom").is_dir():
        write_study(study, DEMO_SEED, **demo_study_options())
    if model_available():
        return study / "dicom", None, "segmentation by the shipped ONNX model"
    labels = np.load(study / "truth_labels.npy")
    from spineviewer.core.pipeline import analyze_study

    def analyze(path: Any, **kw: Any) -> Any:
        return analyze_study(path, masks_override=labels, **kw)

    logger.warning("no ONNX model found: the demo uses the phantom's ground-truth masks")
    note = "no model installed: ground-truth masks (segmentation bypassed)"
    return study / "dicom", analyze, note
