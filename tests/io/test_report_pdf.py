"""The referrer PDF: content (via pdftotext), paper sizes, plain-language summary."""

from __future__ import annotations

import re

import numpy as np
import pytest

import spineviewer
from spineviewer.core.errors import SpineViewerError
from spineviewer.io import report_pdf, report_text
from spineviewer.io.report_figure import render_slice_png

from .conftest import pdf_text


def _media_boxes(pdf: bytes) -> list[tuple[float, float]]:
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    return [(float(w), float(h)) for w, h in boxes]


def test_summary_line_from_reasons(study_result):
    lines = report_text.summary_lines(study_result)
    assert lines[0] == ("Fracture suspected at L1: wedge fracture, Genant grade 2, "
                        "35% anterior height loss")
    assert ("L4: focal endplate notch, possibly a Schmorl node; not called a fracture. "
            "Review advised.") in lines
    assert not any(line.startswith("Needs review") for line in lines)  # L4 said it already
    study_result.vertebra("L2").flags = ["label_uncertain", "needs_review"]
    study_result.vertebra("L2").reasons.append("needs review: labelling (label_uncertain)")
    study_result.vertebra("L4").flags.append("label_uncertain")
    lines = report_text.summary_lines(study_result)
    assert "Needs review (level label uncertain): L2, L4" in lines


def test_a_mild_deformity_says_review_once(study_result):
    """A grade 0 call (mild deformity, needs review) gets its own line asking for review, and
    no second 'Needs review' line; another cause on another body still gets its group."""
    l2 = study_result.vertebra("L2")
    l2.fracture, l2.deformity, l2.genant_grade = True, "crush", 0
    l2.flags = ["mild_deformity", "needs_review"]
    l3 = study_result.vertebra("L3")
    l3.flags = ["endplate_from_mask", "needs_review"]
    l3.reasons.append("needs review: the refinement found no clear cortical edge near the "
                      "mask's edge along the superior endplate (10% of profiles)")
    lines = report_text.summary_lines(study_result)
    assert ("L2: mild deformity (height loss below 20%, below a grade 1 fracture). Review "
            "advised.") in lines
    assert "Needs review (endplate not confirmed by the image): L3" in lines
    assert not any(line.startswith("Needs review") and "L2" in line for line in lines)


def test_summary_without_fracture_and_with_overrides(study_result):
    l1 = study_result.vertebra("L1")
    l1.override = {"fracture": False}
    lines = report_text.summary_lines(study_result)
    # the algorithm did call a fracture: the headline must not say it found none
    assert lines[0] == report_text.NO_FRACTURE_AFTER_REVIEW
    assert ("L1: the algorithm's call (wedge fracture, Genant grade 2) was overruled by a "
            "clinician (no fracture)") in lines
    study_result.vertebra("L2").override = {"fracture": True, "comment": ""}
    assert report_text.summary_lines(study_result)[0] == (
        "Fracture at L2: fracture (type and grade not recorded), set by a clinician "
        "(algorithm: no fracture)")


def test_corrections_list_ai_versus_corrected(study_result):
    fixes = report_text.corrections(study_result)
    assert fixes[0] == "L3: corner AS moved by a clinician"
    assert "L3 AH/PH: 1.00 (algorithm) -> 1.05 (corrected)" in fixes
    assert "L3 AH: 25.5 mm (algorithm) -> 26.7 mm (corrected)" in fixes
    assert any(f.startswith("L5: reader's call no fracture (old healed") for f in fixes)
    assert fixes[-1] == "2 edit(s) in the audit trail (levels L3, L5)"


@pytest.mark.parametrize("paper,size", [("A4", (595.28, 841.89)), ("Letter", (612.0, 792.0))])
def test_pdf_content_and_paper(study_result, tmp_path, paper, size):
    pdf = report_pdf.build_report_pdf(study_result, paper=paper)
    assert pdf.startswith(b"%PDF")
    boxes = _media_boxes(pdf)
    assert boxes and all(abs(w - size[0]) < 0.5 and abs(h - size[1]) < 0.5 for w, h in boxes)
    text = pdf_text(pdf, tmp_path)
    for needle in ("Muster, Erika", "PID-4711", "1948-03-12", "2024-01-02",
                   "t2_tse_sag (series 3)", "Fracture suspected at L1: wedge fracture, Genant grade 2,",
                   "unet-test", "ab" * 32, "Eastell", "Genant", "Germann",
                   "L3 AH: 25.5 mm (algorithm) -> 26.7 mm (corrected)",
                   "PROVISIONAL test table"):
        assert needle in text, needle
    assert text.count(spineviewer.DISCLAIMER[:40]) >= 2  # header/footer of every page
    # the table row of L1: AH 16.5, PH 25.5, ratio 0.65, algorithm wedge G2, no reader call
    assert re.search(r"L1 16\.5 25\.5 21\.0 0\.4 0\.9 14\.6 0\.65 0\.82 1\.00 wedge G2 -", text)
    assert re.search(r"L3 26\.7\* 25\.5 ", text)  # the corrected AH is starred


def test_pdf_without_source_image_still_renders(study_result, tmp_path):
    study_result.source_slice_file = str(tmp_path / "missing.dcm")
    text = pdf_text(report_pdf.build_report_pdf(study_result), tmp_path)
    assert "Fracture suspected at L1" in text


def test_unknown_paper_size_refused(study_result):
    with pytest.raises(SpineViewerError, match="paper size"):
        report_pdf.build_report_pdf(study_result, paper="A3")


def test_figure_draws_overlays_on_the_slice(study_result):
    from io import BytesIO

    from matplotlib.image import imread

    png, aspect = render_slice_png(study_result, width_in=2.0, dpi=100)
    img = imread(BytesIO(png))
    assert img.shape[1] == 200 and abs(img.shape[0] / img.shape[1] - aspect) < 0.02
    rgb = img[..., :3]
    # the app's fracture colour (#FF5A1F, io.palette) appears: L1 is outlined and labelled
    vermillion = np.all(np.abs(rgb - np.array([0xFF, 0x5A, 0x1F]) / 255) < 0.08, axis=-1)
    assert vermillion.sum() > 30


def test_many_corrections_flow_onto_a_second_page(study_result, tmp_path):
    for v in study_result.vertebrae:
        v.ai = {name: 1.0 for name in ("AH_mm", "PH_mm", "MH_mm", "SC_mm", "IC_mm", "VA_deg")}
    pdf = report_pdf.build_report_pdf(study_result)
    assert len(report_text.corrections(study_result)) > 30
    assert len(_media_boxes(pdf)) == 2
    text = pdf_text(pdf, tmp_path)
    assert "L5 IC: 1.0 mm (algorithm) -> 0.9 mm (corrected)" in text


def test_method_line_names_the_slice_mode(study_result):
    """The report's method says how slices were chosen, so a per-vertebra result is never
    described as measured on the mid-sagittal slice alone."""
    from spineviewer.io.report_text import method_lines

    study_result.parameters["slice_mode"] = "per-vertebra"
    per = method_lines(study_result)[0]
    assert "each body measured on the slice nearest its own mid-sagittal plane" in per
    study_result.parameters["slice_mode"] = "centre"
    assert "centre slice" in method_lines(study_result)[0]


def test_analysis_records_its_slice_mode_through_the_fracture_stage(tmp_path):
    """slice_mode survives the Genant stage, so the JSON and the report can name it."""
    from spineviewer import cli
    from spineviewer.core.pipeline import analyze_study
    from spineviewer.io.report_text import method_lines
    from spineviewer.synth.study import write_study

    write_study(tmp_path, seed=3, **cli.demo_study_options())
    result = analyze_study(tmp_path, slice_mode="centre")
    assert result.parameters["slice_mode"] == "centre"
    assert "centre slice" in method_lines(result)[0]


def test_report_states_how_levels_are_named(study_result, tmp_path):
    """A lumbar series cannot show the count from C2 or the ribs: the report says the names
    are counted from the sacrum assuming five lumbar vertebrae, so a reader knows that
    transitional anatomy can shift them."""
    lines = report_text.method_lines(study_result)
    naming = [ln for ln in lines if ln.startswith("Level names:")]
    assert len(naming) == 1
    assert "counted upwards from the sacrum" in naming[0]
    assert "4 or 6 lumbar-type vertebrae" in naming[0]
    text = " ".join(pdf_text(report_pdf.build_report_pdf(study_result), tmp_path).split())
    assert "assuming five lumbar vertebrae" in text
