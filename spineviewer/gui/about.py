"""About box: version, the model card in brief, providers available, and the disclaimer."""

from __future__ import annotations

import html
import json
from typing import Any

from PySide6 import QtCore, QtWidgets

import spineviewer
from spineviewer.core.resources import data_dir

MODELS_DIR = data_dir("models")


def model_card(model_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card (``models/<name>.json``) of the model in use, or of the shipped model."""
    cards = sorted(MODELS_DIR.glob("*.json")) if MODELS_DIR.is_dir() else []
    name = (model_info or {}).get("name", "")
    for path in cards:
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not name or card.get("name") == name or path.stem == name:
            return card
    return {}


def _metrics_lines(card: dict[str, Any]) -> list[str]:
    metrics = card.get("metrics", {})
    lines = []
    for key, value in list(metrics.items())[:6] if isinstance(metrics, dict) else []:
        if isinstance(value, (int, float)):
            lines.append(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
        elif isinstance(value, dict):
            inner = ", ".join(f"{k} {v:.3f}" for k, v in value.items()
                              if isinstance(v, float))[:120]
            if inner:
                lines.append(f"{key}: {inner}")
    return lines


def providers() -> list[str]:
    """ONNX Runtime execution providers available here."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def about_html(model_info: dict[str, Any] | None = None) -> str:
    """The About text (HTML)."""
    e = html.escape
    card = model_card(model_info)
    info = model_info or {}
    parts = [f"<h2>SpineViewer {e(spineviewer.__version__)}</h2>",
             "<p>Lumbar vertebral morphometry and fracture detection on sagittal T2 MRI.</p>",
             f"<p style='color:#E69F00'><b>{e(spineviewer.DISCLAIMER)}</b></p>",
             "<h3>Model</h3>"]
    name = info.get("name") or card.get("name") or "no model installed"
    parts.append(f"<p><b>{e(str(name))}</b> {e(str(card.get('version', info.get('version', ''))))}"
                 "<br>")
    sha = info.get("sha256") or card.get("sha256", "")
    if sha:
        parts.append(f"sha256 {e(sha[:16])}\u2026<br>")
    if info.get("provider"):
        parts.append(f"running on {e(str(info['provider']))}<br>")
    data = card.get("data") or card.get("training_data")
    if data:
        parts.append(f"Data: {e(str(data))[:300]}<br>")
    for line in _metrics_lines(card):
        parts.append(f"{e(line)}<br>")
    parts.append("</p>")
    parts.append(f"<p>ONNX Runtime providers: {e(', '.join(providers()) or 'none')}</p>")
    parts.append("<p>Method after the reference paper (sagittal T2, U-Net segmentation, "
                 "corner detection, Genant quantitative morphometry with the 3 SD rule). "
                 "Real training data: SPIDER lumbar MRI (CC BY 4.0).</p>")
    return "".join(parts)


def show_about(parent: QtWidgets.QWidget | None, model_info: dict[str, Any] | None) -> None:
    """Show the About box (modal)."""
    box = QtWidgets.QMessageBox(parent)
    box.setWindowTitle("About SpineViewer")
    box.setTextFormat(QtCore.Qt.TextFormat.RichText)
    box.setText(about_html(model_info))
    box.exec()
