"""End-to-end pipeline on generated phantom studies (ground-truth masks and ONNX)."""

from pathlib import Path

import numpy as np
import pytest

from spineviewer.core import errors
from spineviewer.core.pipeline import STAGES, analyze_study, remeasure
from spineviewer.synth.params import PhantomParams
from spineviewer.synth.study import write_study

ROOT = Path(__file__).resolve().parents[2]
HAS_MODEL = any((ROOT / "models").glob("*.onnx"))


@pytest.fixture(scope="module")
def wedge_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("wedge")
    params = PhantomParams(deformities={"L1": ("wedge", 2)}, schmorl_levels=("L3",))
    return write_study(out, 4242, vendor="philips", params=params, n_slices=9)


def test_truth_masks_measure_within_tolerance(wedge_study):
    labels = np.load(Path(wedge_study.out_dir) / "truth_labels.npy")
    seen = []
    result = analyze_study(wedge_study.dicom_dir, masks_override=labels,
                           progress=lambda s, f: seen.append((s, f)))
    assert [s for s, _ in seen] == [*STAGES, "done"]
    assert [f for _, f in seen] == sorted(f for _, f in seen)
    assert result.study_uid == wedge_study.study_uid
    assert result.series_uid == wedge_study.t2_series_uid
    assert result.sop_instance_uid == wedge_study.sop_instance_uid
    got = {v.level: v for v in result.vertebrae}
    for t in wedge_study.vertebrae:
        v = got[t.level]
        assert v.AH_mm == pytest.approx(t.AH_mm, abs=0.5), t.level
        assert v.PH_mm == pytest.approx(t.PH_mm, abs=0.5), t.level
        assert v.VA_deg == pytest.approx(t.VA_deg, abs=1.0), t.level
        # corners are reported in source-slice pixels
        for name, (r, c) in t.corners_rc.items():
            assert np.hypot(*(np.subtract(v.corners_rc[name], (r, c)))) < 2.0, (t.level, name)
    assert got["L1"].fracture and got["L1"].deformity == "wedge"
    assert got["L1"].genant_grade == 2
    assert not any(got[lv].fracture for lv in ("L2", "L4", "L5"))
    assert not got["L3"].fracture and "schmorl_node" in got["L3"].flags
    assert any("wedge" in r for r in got["L1"].reasons)


def test_remeasure_follows_a_moved_corner(wedge_study):
    labels = np.load(Path(wedge_study.out_dir) / "truth_labels.npy")
    result = analyze_study(wedge_study.dicom_dir, masks_override=labels)
    v = result.vertebra("L3")
    ah0 = v.AH_mm
    r, c = v.corners_rc["AS"]
    v.corners_rc["AS"] = (r - 5.0, c)  # 5 px upwards: AH grows by about 5 px * spacing
    remeasure(result)
    assert v.AH_mm - ah0 == pytest.approx(5.0 * result.pixel_spacing_mm[0], abs=0.5)


def test_endplate_fold_asks_for_review_with_its_size_and_survives_a_remeasure(wedge_study):
    """Healthy phantom outlines do not fold; a vertebra whose mask outline folds back along an
    endplate (``endplate_fold``) needs review, says by how much, and keeps its call."""
    labels = np.load(Path(wedge_study.out_dir) / "truth_labels.npy")
    result = analyze_study(wedge_study.dicom_dir, masks_override=labels)
    measured = [v for v in result.vertebrae if len(v.corners_rc) == 4]
    assert len(measured) >= 5
    for v in measured:
        assert v.endplate_fold_mm is not None and v.endplate_fold_mm < 1.0, v.level
        assert "endplate_fold" not in v.flags
    v = result.vertebra("L1")
    fracture, grade = v.fracture, v.genant_grade
    v.endplate_fold_mm = 4.2
    v.flags.append("endplate_fold")
    remeasure(result)
    assert "endplate_fold" in v.flags and "needs_review" in v.flags
    assert any("folds back 4.2 mm" in r for r in v.reasons)
    assert (v.fracture, v.genant_grade) == (fracture, grade)
    assert "endplate_fold" not in result.vertebra("L2").flags


def test_a_call_on_an_endplate_the_image_did_not_confirm_asks_for_review(wedge_study):
    """A fracture call whose body kept the mask's endplate (``endplate_from_mask``: no clear
    cortical edge in the image there, as at a Modic change) needs review and says which
    endplate; a body without a call does not, nor a call on reader-corrected corners."""
    from spineviewer.io.report_text import summary_lines

    labels = np.load(Path(wedge_study.out_dir) / "truth_labels.npy")
    result = analyze_study(wedge_study.dicom_dir, masks_override=labels)
    l1, l2 = result.vertebra("L1"), result.vertebra("L2")
    assert l1.fracture and not l2.fracture
    assert "needs_review" not in l1.flags and set(l1.endplate_edge) == {"superior", "inferior"}
    call = (l1.fracture, l1.deformity, l1.genant_grade)
    for v in (l1, l2):
        v.flags.append("endplate_from_mask")
        v.endplate_edge = {"superior": 0.12, "inferior": 0.9}
    remeasure(result)
    assert "needs_review" in l1.flags and (l1.fracture, l1.deformity, l1.genant_grade) == call
    assert any("no clear cortical edge near the mask's edge along the superior endplate (12% of "
               "profiles), so" in r
               for r in l1.reasons)
    assert "needs_review" not in l2.flags
    assert "Needs review (endplate not confirmed by the image): L1" in summary_lines(result)
    l1.ai = {"fracture": l1.fracture}  # the reader has corrected this vertebra
    remeasure(result)
    assert not any("no clear cortical edge" in r for r in l1.reasons)


def test_cancel_stops_between_stages(wedge_study):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(errors.Cancelled):
        analyze_study(wedge_study.dicom_dir, cancel=cancel,
                      masks_override=np.load(Path(wedge_study.out_dir) / "truth_labels.npy"))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(errors.NoDicomFound):
        analyze_study(tmp_path / "nope")


@pytest.mark.skipif(not HAS_MODEL, reason="no shipped ONNX model in models/")
def test_onnx_end_to_end_finds_five_lumbar_bodies(wedge_study):
    result = analyze_study(wedge_study.dicom_dir, threads=2)
    levels = [v.level for v in result.vertebrae]
    for lv in ("L1", "L2", "L3", "L4", "L5"):
        assert lv in levels
    assert result.model["sha256"] and result.model["provider"]
    got = {v.level: v for v in result.vertebrae}
    truth = {t.level: t for t in wedge_study.vertebrae}
    errs = [abs(got[lv].AH_mm - truth[lv].AH_mm) for lv in ("L2", "L3", "L4", "L5")
            if got[lv].AH_mm is not None]
    assert len(errs) == 4 and max(errs) < 2.5


def test_an_index_and_volume_already_read_give_the_same_result(wedge_study, monkeypatch):
    # The viewer hands its browser's index and its canvas's volume to the analysis (the folder
    # is walked and the series read once); the result must not change, and a volume of
    # another series must not be used.
    from spineviewer.core.dicom import index as index_mod
    from spineviewer.core.dicom import volume as volume_mod
    from spineviewer.core.dicom.select import choose_series

    labels = np.load(Path(wedge_study.out_dir) / "truth_labels.npy")
    plain = analyze_study(wedge_study.dicom_dir, masks_override=labels)
    index = index_mod.scan_folder(wedge_study.dicom_dir)
    volume = volume_mod.load_series(choose_series(index).series)
    other = next(s for s in index.series if s.series_uid != volume.series.series_uid)
    loads = []
    real_load = volume_mod.load_series

    def counting_load(info):
        loads.append(info.series_uid)
        return real_load(info)

    def no_scan(*a, **k):
        raise AssertionError("the folder was walked again")

    monkeypatch.setattr(index_mod, "scan_folder", no_scan)
    monkeypatch.setattr(volume_mod, "load_series", counting_load)
    reused = analyze_study(wedge_study.dicom_dir, masks_override=labels, index=index,
                           volume=volume)
    assert loads == []
    def without_timings(r):
        return {k: v for k, v in r.to_dict().items() if k != "timings_s"}

    assert without_timings(reused) == without_timings(plain)
    # a volume of another series is not taken for the chosen one
    wrong = real_load(other)
    analyze_study(wedge_study.dicom_dir, masks_override=labels, index=index, volume=wrong)
    assert loads == [volume.series.series_uid]


def test_modules_imported_while_the_network_runs_exist():
    import importlib

    from spineviewer.core.pipeline import LATER_STAGE_MODULES

    for name in LATER_STAGE_MODULES:     # a typo would silently lose the overlap
        assert importlib.import_module(name).__name__ == name


def test_modules_imported_in_the_background_have_no_module_level_import_cycle():
    """Two threads importing modules that import each other at module level can deadlock on
    Python's import locks; `pipeline._import_later_stages` relies on there being no cycle."""
    import ast
    import importlib.util

    from spineviewer.core.pipeline import LATER_STAGE_MODULES

    def top_level_imports(name):
        src = importlib.util.find_spec(name).origin
        tree = ast.parse(Path(src).read_text(encoding="utf-8"))
        out = set()
        for node in tree.body:          # module level only: imports in functions are fine
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        def is_module(m):
            try:
                return importlib.util.find_spec(m) is not None
            except ModuleNotFoundError:     # "module.attribute" of a plain module
                return False

        return {m for m in out if m.startswith("spineviewer.") and is_module(m)}

    graph, todo = {}, list(LATER_STAGE_MODULES)
    while todo:
        m = todo.pop()
        if m not in graph:
            graph[m] = top_level_imports(m)
            todo.extend(graph[m])
    state = {}

    def visit(m, path):
        if state.get(m) == "open":
            raise AssertionError("import cycle: " + " -> ".join(path + [m]))
        if state.get(m) == "done":
            return
        state[m] = "open"
        for n in graph[m]:
            visit(n, path + [m])
        state[m] = "done"

    for m in graph:
        visit(m, [])
    assert len(graph) > len(LATER_STAGE_MODULES)   # it followed their imports
