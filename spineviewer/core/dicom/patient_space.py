"""Pixel <-> patient coordinates of a series (DICOM LPS millimetres), for linking views.

A pixel (row r, column c) of slice k lies at::

    ImagePositionPatient[k] + c * PixelSpacing[1] * row_cosines + r * PixelSpacing[0] * col_cosines

where ``row_cosines`` (the first three ImageOrientationPatient values) is the direction in
which the column index grows along a row, and ``col_cosines`` the direction in which the row
index grows (DICOM PS3.3 C.7.6.2.1.1). Patient axes: +x left, +y posterior, +z head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Patient-axis letters of the + and - direction of x, y, z (LPS); H/F for head/foot.
AXIS_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))


@dataclass(frozen=True)
class SeriesGeometry:
    """Where the slices of one series lie in patient space."""

    row_cosines: np.ndarray  # (3,) unit vector: + column direction
    col_cosines: np.ndarray  # (3,) unit vector: + row direction
    positions: np.ndarray  # (n, 3) ImagePositionPatient of each slice
    spacing_mm: tuple[float, float]  # (row, col) spacing

    @classmethod
    def from_volume(cls, volume: Any) -> SeriesGeometry | None:
        """Geometry of a ``core.dicom.volume.Volume``; None without orientation or positions."""
        iop = getattr(volume, "image_orientation", None)
        pos = np.asarray(getattr(volume, "image_positions", np.zeros((0, 3))), dtype=float)
        if iop is None or pos.ndim != 2 or pos.shape[1] != 3 or not len(pos):
            return None
        if not np.isfinite(pos).all():
            return None
        v = np.asarray(iop, dtype=float)
        row, col = v[:3], v[3:]
        if np.linalg.norm(np.cross(row, col)) < 1e-6:
            return None
        sp = tuple(float(s) for s in volume.pixel_spacing_mm)
        return cls(row / np.linalg.norm(row), col / np.linalg.norm(col), pos, (sp[0], sp[1]))

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal (row cosines x column cosines)."""
        n = np.cross(self.row_cosines, self.col_cosines)
        return n / np.linalg.norm(n)

    def to_patient(self, index: int, r: float, c: float) -> np.ndarray:
        """Patient position (LPS mm) of (row, col) on slice ``index``."""
        return (self.positions[int(index)] + c * self.spacing_mm[1] * self.row_cosines
                + r * self.spacing_mm[0] * self.col_cosines)

    def slice_distances(self, point: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of ``point`` from each slice plane."""
        return (np.asarray(point, dtype=float) - self.positions) @ self.normal

    def nearest_slice(self, point: np.ndarray) -> tuple[int, float]:
        """(index, |distance| mm) of the slice whose plane is closest to ``point``."""
        d = np.abs(self.slice_distances(point))
        k = int(np.argmin(d))
        return k, float(d[k])

    def to_pixel(self, point: np.ndarray, index: int | None = None) -> tuple[int, float, float]:
        """(slice index, row, col) of ``point`` projected onto slice ``index`` (default: the
        nearest slice); row and col are fractional and may lie outside the image."""
        k = self.nearest_slice(point)[0] if index is None else int(index)
        rel = np.asarray(point, dtype=float) - self.positions[k]
        return (k, float(rel @ self.col_cosines / self.spacing_mm[0]),
                float(rel @ self.row_cosines / self.spacing_mm[1]))


def direction_letters(vector: Any, min_share: float = 0.25) -> str:
    """Patient-direction letters of a vector, strongest first, e.g. (0, 0.2, -1) -> "F"
    and (0, 0.6, -0.8) -> "FP"; components below ``min_share`` of the length are left out."""
    v = np.asarray(vector, dtype=float)
    norm = float(np.linalg.norm(v))
    if norm == 0 or not np.isfinite(norm):
        return ""
    v = v / norm
    order = np.argsort(-np.abs(v))
    return "".join(AXIS_LETTERS[i][0 if v[i] > 0 else 1] for i in order if abs(v[i]) >= min_share)


def edge_letters(iop: Any) -> dict[str, str] | None:
    """Letters for the four image edges from ImageOrientationPatient: ``{"left", "right",
    "top", "bottom"}`` (screen sides of an image shown row 0 at the top, column 0 at the
    left), or None without a usable orientation."""
    if iop is None:
        return None
    v = np.asarray(tuple(iop), dtype=float)
    if v.shape != (6,) or not np.isfinite(v).all():
        return None
    row, col = v[:3], v[3:]
    if np.linalg.norm(row) == 0 or np.linalg.norm(col) == 0:
        return None
    return {"right": direction_letters(row), "left": direction_letters(-row),
            "bottom": direction_letters(col), "top": direction_letters(-col)}
