"""Issue 16 case 7 in the window: a bad autosave is reported (banner) and kept, an unsaved
correction is called that (never "not applied"), and a fallback folder is named."""

from __future__ import annotations

import pytest

from tests.gui.conftest import open_and_wait, shown_window


@pytest.fixture
def window(qtbot, masks_analyze, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "userdata"))
    with shown_window(qtbot, masks_analyze) as w:
        yield w


@pytest.mark.parametrize("content", ["null", "[]", '{"schema": 1, "vertebrae": [null]}',
                                     "truncated"])
def test_bad_autosave_is_kept_and_reported_and_the_study_analysed(qtbot, window, lumbar_study,
                                                                  content):
    saved = lumbar_study.path / ".spineviewer" / f"{lumbar_study.t2_uid}.autosave.json"
    saved.parent.mkdir()
    saved.write_text('{"schema": 1, "series_uid": "' if content == "truncated" else content)
    # before the fix: exception in the slot
    result = open_and_wait(qtbot, window, lumbar_study.path, drawn=False)
    assert result.series_uid == lumbar_study.t2_uid and result.edits == []
    kept = list(saved.parent.glob("*.corrupt-*.json"))
    assert len(kept) == 1
    assert window.banner.isVisible() and str(kept[0]) in window.banner.text()


def test_correction_in_force_but_not_saved_says_so(qtbot, window, lumbar_study, tmp_path,
                                                    monkeypatch):
    open_and_wait(qtbot, window, lumbar_study.path, drawn=False)
    (lumbar_study.path / ".spineviewer").write_text("a file: the folder cannot be made")
    (tmp_path / "blocked").write_text("x")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "blocked"))
    window.override_call("L2", True, "reader sees a fracture")
    assert window.session.result.vertebra("L2").final_fracture is True
    text = window.banner.text()
    assert window.banner.isVisible() and "Correction applied but NOT saved" in text
    assert "not applied" not in text


def test_fallback_folder_is_named(qtbot, window, lumbar_study, tmp_path):
    open_and_wait(qtbot, window, lumbar_study.path, drawn=False)
    (lumbar_study.path / ".spineviewer").write_text("a file: the folder cannot be made")
    window.override_call("L2", True)
    where = window.session.last_save.path.parent
    assert str(where).startswith(str(tmp_path / "userdata"))
    assert f"corrections are saved in {where}" in window.banner.text()


def test_export_panel_goes_through_the_one_way_out(qtbot, tmp_path, monkeypatch):
    """The viewer's Export: a FIFO where results.csv goes is refused, and nothing is written."""
    import os

    from spineviewer.gui.export_panel import ExportPanel
    from tests.gui.test_canvas import result as box_result

    out = tmp_path / "out"
    panel = ExportPanel()
    qtbot.addWidget(panel)
    panel.set_result(box_result(), str(out))
    panel.pdf.setChecked(False)
    panel.deidentify.setChecked(True)
    out = panel.out_dir()  # the study's own folder (issue 15): <out>/anon-<hash>/
    out.mkdir(parents=True)
    os.mkfifo(out / f"{out.name}_results.csv")
    monkeypatch.setattr(panel, "confirm_overwrite", lambda paths: True)  # "replace" answered
    with qtbot.waitSignal(panel.exportFailed, timeout=20000) as blocker:
        assert panel.export()
    assert "FIFO" in blocker.args[0] and "never replaced" in blocker.args[0]
    assert sorted(p.name for p in out.iterdir()) == [f"{out.name}_results.csv"]
    panel.shutdown()
