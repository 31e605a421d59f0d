"""Per-level healthy ratio statistics (the reference table the Genant rules compare with).

The shipped table is ``assets/reference_ratios.json`` (derived from SPIDER by
``core.reference``); a site points ``SPINEVIEWER_REFERENCE_TABLE`` at its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spineviewer.core.errors import SpineViewerError
from spineviewer.core.resources import data_dir

#: SD below the level's healthy mean at which a ratio is a deformity (Eastell 1991).
THRESHOLD_SD = 3.0
DEFAULT_TABLE = data_dir("assets") / "reference_ratios.json"
#: A site replaces the shipped table with its own by pointing this variable at a JSON file.
TABLE_ENV = "SPINEVIEWER_REFERENCE_TABLE"
_LEVEL_ORDER = [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 7)] + ["S1"]


@dataclass(frozen=True)
class RatioStats:
    """Healthy mean, SD and count of one ratio at one level."""

    mean: float
    sd: float
    n: int = 0

    @property
    def threshold(self) -> float:
        return self.mean - THRESHOLD_SD * self.sd


@dataclass(frozen=True)
class ReferenceTable:
    """Per-level healthy ratio statistics with their provenance.

    ``levels[level][ratio]`` is a `RatioStats`, ratio one of wedge, biconcavity, crush,
    crush_above (PH / PH of the body above), crush_below (PH / PH of the body below).
    """

    levels: dict[str, dict[str, RatioStats]]
    source: str = ""
    provisional: bool = False
    path: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold_sd(self) -> float:
        return float(self.meta.get("threshold_sd", THRESHOLD_SD))

    def to_dict(self) -> dict[str, Any]:
        """The table as JSON-ready data (levels, source, provisional, path)."""
        return {"source": self.source, "provisional": self.provisional, "path": self.path,
                "threshold_sd": THRESHOLD_SD,
                "levels": {lv: {r: {"mean": s.mean, "sd": s.sd, "n": s.n} for r, s in per.items()}
                           for lv, per in self.levels.items()}}

    def stats(self, level: str, ratio: str) -> tuple[RatioStats | None, str]:
        """Stats for ``ratio`` at ``level``, falling back to the nearest tabulated level.

        Returns
        -------
        (stats or None, note): the note says which level was used when it is not ``level``.
        """
        if level in self.levels and ratio in self.levels[level]:
            return self.levels[level][ratio], ""
        if level not in _LEVEL_ORDER:
            return None, f"no reference for level {level}"
        i = _LEVEL_ORDER.index(level)
        have = [lv for lv in self.levels if lv in _LEVEL_ORDER and ratio in self.levels[lv]]
        if not have:
            return None, f"no reference for {ratio} ratio"
        near = min(have, key=lambda lv: (abs(_LEVEL_ORDER.index(lv) - i), lv))
        return self.levels[near][ratio], f"no reference for {level}; {near} reference used"


def load_reference_table(path: str | Path | None = None) -> ReferenceTable:
    """Read the per-level reference ratios (default ``assets/reference_ratios.json``).

    Parameters
    ----------
    path : str or Path, optional
        JSON with ``{"levels": {"L1": {"wedge": {"mean", "sd", "n"}, ...}}, "source": ...}``;
        default ``$SPINEVIEWER_REFERENCE_TABLE`` or the shipped table.

    Returns
    -------
    ReferenceTable
    """
    p = Path(path) if path is not None else Path(os.environ.get(TABLE_ENV) or DEFAULT_TABLE)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SpineViewerError(f"reference table {p} is unreadable: {e}") from e
    if not isinstance(d, dict) or not isinstance(d.get("levels"), dict):
        raise SpineViewerError(f"reference table {p} has no 'levels' section")
    levels = {
        lv: {r: RatioStats(float(s["mean"]), float(s["sd"]), int(s.get("n", 0)))
             for r, s in per.items() if isinstance(s, dict) and "mean" in s}
        for lv, per in d["levels"].items()
    }
    return ReferenceTable(levels=levels, source=str(d.get("source", "")),
                          provisional=bool(d.get("provisional", False)), path=str(p),
                          meta={k: v for k, v in d.items() if k != "levels"})
