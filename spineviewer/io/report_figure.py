"""The report's key image: the analysed slice with body outlines, level labels and AH/PH lines.

Drawn with matplotlib's object API (no pyplot state), so it is safe off the GUI thread.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from spineviewer.core.results import StudyResult, VertebraResult
from spineviewer.io.palette import (
    AH_COLOUR,
    PH_COLOUR,
    STATUS_COLOURS,
    vertebra_status,
)

logger = logging.getLogger(__name__)

#: Colours by status: the viewer's (`io.palette`), so screen and paper agree.
COLOUR = {status: hex_ for status, (hex_, _) in STATUS_COLOURS.items()}
MARGIN_MM = 15.0


def load_slice_pixels(path: str | Path) -> np.ndarray | None:
    """The source slice as float32 (Modality LUT applied), or None when unreadable."""
    if not path or not Path(path).is_file():
        return None
    try:
        from pydicom import dcmread
        from pydicom.pixels import apply_modality_lut

        ds = dcmread(path)
        arr = np.asarray(apply_modality_lut(ds.pixel_array, ds), np.float32)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: draw without the image
        logger.warning("source slice not readable for the report: %s", exc)
        return None
    return arr if arr.ndim == 2 else None


def _crop_box(result: StudyResult, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    pts = [p for v in result.vertebrae for p in (v.outline_rc or list(v.corners_rc.values()))]
    if not pts:
        return 0, shape[0], 0, shape[1]
    arr = np.asarray(pts, float)
    mr = MARGIN_MM / result.pixel_spacing_mm[0]
    mc = MARGIN_MM / result.pixel_spacing_mm[1]
    r0 = int(max(0, np.floor(arr[:, 0].min() - mr)))
    r1 = int(min(shape[0], np.ceil(arr[:, 0].max() + mr)))
    c0 = int(max(0, np.floor(arr[:, 1].min() - 1.5 * mc)))  # room for labels
    c1 = int(min(shape[1], np.ceil(arr[:, 1].max() + mc)))
    return r0, r1, c0, c1


def _fit_aspect(box: tuple[int, int, int, int], shape: tuple[int, ...], sr: float, sc: float,
                lo: float = 0.6, hi: float = 1.45) -> tuple[int, int, int, int]:
    """Widen (or heighten) the crop so its physical height/width lies in [lo, hi]."""
    r0, r1, c0, c1 = box
    aspect = ((r1 - r0) * sr) / max((c1 - c0) * sc, 1e-6)
    if aspect > hi:
        extra = ((r1 - r0) * sr / (hi * sc) - (c1 - c0)) / 2.0
        c0, c1 = int(max(0, np.floor(c0 - extra))), int(min(shape[1], np.ceil(c1 + extra)))
    elif aspect < lo:
        extra = ((c1 - c0) * sc * lo / sr - (r1 - r0)) / 2.0
        r0, r1 = int(max(0, np.floor(r0 - extra))), int(min(shape[0], np.ceil(r1 + extra)))
    return r0, r1, c0, c1


def _anterior_sign(v: VertebraResult) -> float:
    """+1 when anterior is towards larger columns, -1 otherwise."""
    c = v.corners_rc
    if all(k in c for k in ("AS", "AI", "PS", "PI")):
        ant = (c["AS"][1] + c["AI"][1]) / 2.0
        post = (c["PS"][1] + c["PI"][1]) / 2.0
        return 1.0 if ant > post else -1.0
    return -1.0


def _draw_vertebra(ax, v: VertebraResult, label_offset_px: float) -> None:
    from matplotlib.patches import Polygon

    colour = COLOUR[vertebra_status(v)]
    if len(v.outline_rc) >= 3:
        xy = np.asarray(v.outline_rc, float)[:, ::-1]
        ax.add_patch(Polygon(xy, closed=True, facecolor=colour, alpha=0.22, edgecolor="none"))
        ax.add_patch(Polygon(xy, closed=True, fill=False, edgecolor=colour, linewidth=1.4))
    c = v.corners_rc
    for a, b, col in (("AS", "AI", AH_COLOUR), ("PS", "PI", PH_COLOUR)):
        if a in c and b in c:
            ax.plot([c[a][1], c[b][1]], [c[a][0], c[b][0]], color=col, linewidth=1.6,
                    solid_capstyle="round")
    if c:
        pts = np.asarray(list(c.values()), float)
        ax.plot(pts[:, 1], pts[:, 0], "o", ms=2.5, color="white", mec="black", mew=0.4)
    anchor = (np.asarray([c["AS"], c["AI"]], float).mean(axis=0) if "AS" in c and "AI" in c
              else np.asarray(v.outline_rc or [(0.0, 0.0)], float).mean(axis=0))
    x = anchor[1] + _anterior_sign(v) * label_offset_px
    text = v.level + ("  FX" if v.final_fracture else "")
    ax.text(x, anchor[0], text, color="white" if v.final_fracture else "black",
            fontsize=8.5, fontweight="bold", ha="center", va="center",
            bbox={"boxstyle": "round,pad=0.2", "fc": colour if v.final_fracture else "white",
                  "ec": colour, "lw": 1.0, "alpha": 0.95})


def render_slice_png(result: StudyResult, image: np.ndarray | None = None, *,
                     width_in: float = 3.4, dpi: int = 200) -> tuple[bytes, float]:
    """PNG of the analysed slice (cropped to the column) with the overlays.

    Parameters
    ----------
    result : StudyResult
    image : ndarray, optional
        The source slice; read from ``result.source_slice_file`` when None.
    width_in : float
        Figure width in inches; the height follows the crop's physical aspect.
    dpi : int

    Returns
    -------
    (png bytes, height / width aspect of the figure)
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if image is None:
        image = load_slice_pixels(result.source_slice_file)
    shape = tuple(image.shape) if image is not None else tuple(result.image_shape)
    if not shape or min(shape) <= 0:
        shape = (512, 512)
    r0, r1, c0, c1 = _crop_box(result, shape)
    sr, sc = result.pixel_spacing_mm
    aspect = ((r1 - r0) * sr) / max((c1 - c0) * sc, 1e-6)
    aspect = float(np.clip(aspect, 0.6, 1.45))
    fig = Figure(figsize=(width_in, width_in * aspect), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    if image is not None:
        crop = image[r0:r1, c0:c1]
        lo, hi = np.percentile(crop, [1.0, 99.5]) if crop.size else (0.0, 1.0)
        ax.imshow(image, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6),
                  aspect=sr / sc, interpolation="bilinear")
    else:
        ax.set_facecolor("#303030")
        ax.text((c0 + c1) / 2, r0 + 3, "source image not available", color="white",
                ha="center", va="top", fontsize=7)
    offset = 9.0 / sc  # labels ~9 mm in front of the anterior wall
    for v in result.vertebrae:
        _draw_vertebra(ax, v, offset)
    ax.set_xlim(c0 - 0.5, c1 - 0.5)
    ax.set_ylim(r1 - 0.5, r0 - 0.5)
    ax.set_axis_off()
    handles = [Line2D([], [], color=AH_COLOUR, lw=2, label="AH"),
               Line2D([], [], color=PH_COLOUR, lw=2, label="PH")]
    ax.legend(handles=handles, loc="lower right", fontsize=6.5, framealpha=0.8,
              handlelength=1.2, borderpad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="black")
    return buf.getvalue(), width_in * aspect / width_in
