"""One colour scheme for the viewer and the report (no Qt): what a colour means is the same
on the screen and on paper.

Colours from the Okabe-Ito palette (readable with red-green colour blindness); they are drawn
on the dark MR image in both places. The report's table rows and summary box use light tints
of the same colours (`TINTS`) so that black text stays readable on paper.
"""

from __future__ import annotations

from typing import Any

#: status -> (colour, legend text)
STATUS_COLOURS = {
    "normal": ("#56B4E9", "no fracture"),
    "fracture": ("#FF5A1F", "fracture"),
    "review": ("#F0E442", "needs review"),
    "schmorl": ("#CC79A7", "Schmorl node"),
}
#: status -> light tint of its colour, for table rows and boxes on white paper
TINTS = {"normal": "#E3F2FB", "fracture": "#FFE1D6", "review": "#FCF8D2", "schmorl": "#F5E4EE"}
SELECTED_COLOUR = "#FFFFFF"
ANALYSED_SLICE_COLOUR = "#E69F00"
DISCLAIMER_COLOUR = "#E69F00"
#: The report figure's height lines: neither is a status colour
AH_COLOUR = "#FFFFFF"  # white
PH_COLOUR = "#009E73"  # bluish green


def colour(status: str) -> str:
    """The hex colour of a status of `STATUS_COLOURS`."""
    return STATUS_COLOURS[status][0]


def call_status(v: Any) -> str:
    """What the overlay colour says: the call (fracture > Schmorl node > no fracture).

    Doubt is not a colour: a "?" beside the level marks "needs review", so that a study-wide
    labelling doubt does not paint every vertebra and hide the one fracture.
    """
    if v.final_fracture:
        return "fracture"
    if "schmorl_node" in v.flags:
        return "schmorl"
    return "normal"


def vertebra_status(v: Any) -> str:
    """Status of a table row: the call, or "review" for a doubtful vertebra without a finding."""
    status = call_status(v)
    if status == "normal" and "needs_review" in v.flags:
        return "review"
    return status
