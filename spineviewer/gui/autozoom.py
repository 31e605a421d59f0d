"""Auto-zoom to the spine: fit the view to the analysed vertebrae (with a margin) when a
result is first shown for a series; key Z switches between the spine and the whole slice."""

from __future__ import annotations

from typing import Any

import numpy as np

#: margin around the vertebrae, as a fraction of their extent (each side)
MARGIN = 0.18


def spine_box(result: Any) -> tuple[float, float, float, float] | None:
    """(row0, col0, row1, col1) around every vertebra's outline and corners, or None."""
    pts = []
    for v in getattr(result, "vertebrae", []) or []:
        pts.extend(np.asarray(v.outline_rc, dtype=float).reshape(-1, 2))
        pts.extend(np.asarray(list(v.corners_rc.values()), dtype=float).reshape(-1, 2))
    if not pts:
        return None
    a = np.asarray(pts)
    return float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 0].max()), float(a[:, 1].max())


class AutoZoom:
    """Zooms ``canvas`` to the spine of its result, once each time a series is shown (a
    correction or a re-analysis keeps the reader's zoom)."""

    def __init__(self, canvas: Any) -> None:
        self.canvas = canvas
        self.zoomed = False  # the view shows the spine box (not the whole slice)
        self._done = False
        canvas.volumeChanged.connect(self._reset)
        canvas.cleared.connect(self._reset)

    def _reset(self) -> None:
        self._done = False
        self.zoomed = False

    def box(self) -> tuple[float, float, float, float] | None:
        """The spine box on the canvas, when its result belongs to the shown series."""
        r = self.canvas.result
        if r is None or self.canvas.pixels is None or r.series_uid != self.canvas.series_uid:
            return None
        return spine_box(r)

    def on_result(self, *_: Any) -> None:
        """After a series or a result is shown: zoom once per shown series."""
        if not self._done and self.zoom_to_spine():
            self._done = True

    def zoom_to_spine(self) -> bool:
        """Fit the view to the spine; False (view unchanged) without a result for this series."""
        box = self.box()
        if box is None:
            return False
        r0, c0, r1, c1 = box
        mr, mc = (r1 - r0) * MARGIN, (c1 - c0) * MARGIN
        rows, cols = self.canvas.pixels.shape[1:]
        r0, r1 = max(r0 - mr, -0.5), min(r1 + mr, rows - 0.5)
        c0, c1 = max(c0 - mc, -0.5), min(c1 + mc, cols - 0.5)
        self.canvas.vb.setRange(xRange=(c0, c1), yRange=(r0, r1), padding=0)
        self.zoomed = True
        return True

    def toggle(self) -> None:
        """Key Z: spine <-> whole slice."""
        if self.zoomed or not self.zoom_to_spine():
            self.canvas.fit()
            self.zoomed = False
