"""The shipped data folders are found from a checkout (and, via data-files, from a wheel)."""

from spineviewer.core.resources import data_dir


def test_models_and_assets_are_found():
    assert any(data_dir("models").glob("*.onnx"))
    assert (data_dir("assets") / "reference_ratios.json").is_file()


def test_frozen_app_uses_its_bundle_folder(tmp_path, monkeypatch):
    """In the PyInstaller app the data folders lie under sys._MEIPASS (installer/bundle.py)."""
    import sys

    (tmp_path / "models").mkdir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert data_dir("models") == tmp_path / "models"
    # a folder the bundle lacks falls back to the other locations, never to a missing path
    assert (data_dir("assets") / "reference_ratios.json").is_file()


def test_unfrozen_ignores_a_stray_meipass(tmp_path, monkeypatch):
    import sys

    (tmp_path / "models").mkdir()
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert data_dir("models") != tmp_path / "models"
