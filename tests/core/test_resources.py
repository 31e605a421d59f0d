"""The shipped data folders are found from a checkout (and, via data-files, from a wheel)."""

from spineviewer.core.resources import data_dir


def test_models_and_assets_are_found():
    assert any(data_dir("models").glob("*.onnx"))
    assert (data_dir("assets") / "reference_ratios.json").is_file()
