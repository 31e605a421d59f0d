"""Auto-zoom to the spine: fit the view to the analysed vertebrae (with a margin) when a
result is first shown for a series; key Z switches between the spine and the whole slice."""

from __future__ import annotations

from typing import Any

import numpy as np

#: margins around the vertebrae, as fractions of their extent: room for the level labels on
#: the anterior side, for the canal (retropulsion) on the posterior side
MARGIN_ROWS, MARGIN_ANTERIOR, MARGIN_POSTERIOR = 0.04, 0.25, 0.45
#: screen room (logical pixels) for the level labels and for the corner boxes above and below
LABEL_ROOM_PX, TOP_ROOM_PX, BOTTOM_ROOM_PX = 190, 26, 58


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


def anterior_is_left(result: Any) -> bool:
    """True when the anterior corners lie at lower columns than the posterior ones."""
    d = [np.mean([v.corners_rc[k][1] for k in ("PS", "PI")])
         - np.mean([v.corners_rc[k][1] for k in ("AS", "AI")])
         for v in getattr(result, "vertebrae", []) or []
         if all(k in v.corners_rc for k in ("AS", "AI", "PS", "PI"))]
    return not d or float(np.median(d)) >= 0


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
        """Fit the view to the spine; False (view unchanged) without a result for this series.

        Besides the margins (fractions of the spine's extent) the view keeps room in screen
        pixels for the level labels (anterior) and the corner boxes (top, bottom).
        """
        box = self.box()
        if box is None:
            return False
        r0, c0, r1, c1 = box
        width, height = c1 - c0, r1 - r0
        front, back = MARGIN_ANTERIOR * width, MARGIN_POSTERIOR * width
        w_px = max(float(self.canvas.vb.width()), 1.0)
        h_px = max(float(self.canvas.vb.height()), 1.0)
        scale = min(w_px / (width + front + back), h_px / height)  # screen px per image px
        for _ in range(3):  # the pixel room depends on the zoom it produces
            ant = front + LABEL_ROOM_PX / scale
            top = height * MARGIN_ROWS + TOP_ROOM_PX / scale
            bottom = height * MARGIN_ROWS + BOTTOM_ROOM_PX / scale
            scale = min(w_px / (width + ant + back), h_px / (height + top + bottom))
        left, right = (ant, back) if anterior_is_left(self.canvas.result) else (back, ant)
        self.canvas.vb.setRange(xRange=(c0 - left, c1 + right), yRange=(r0 - top, r1 + bottom),
                                padding=0)
        self.zoomed = True
        return True

    def toggle(self) -> None:
        """Key Z: spine <-> whole slice."""
        if self.zoomed or not self.zoom_to_spine():
            self.canvas.fit()
            self.zoomed = False
