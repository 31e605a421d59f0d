"""io.palette: one colour scheme for the viewer, the PDF figure and the DICOM presentation state."""

from __future__ import annotations

from spineviewer.core.results import VertebraResult


def test_app_and_report_share_one_colour_scheme():
    from spineviewer.io import palette
    from spineviewer.io.dicom_pr import PR_LAYERS
    from spineviewer.io.report_figure import COLOUR

    assert COLOUR == {k: c for k, (c, _) in palette.STATUS_COLOURS.items()}
    assert PR_LAYERS["FRACTURE"][1] == (0xFF, 0x5A, 0x1F)
    # the report's height lines use no status colour (they would read as a call)
    assert not {palette.AH_COLOUR, palette.PH_COLOUR} & set(COLOUR.values())
    v = VertebraResult(level="L4", flags=["schmorl_node", "needs_review"])
    assert palette.vertebra_status(v) == "schmorl" and palette.call_status(v) == "schmorl"
