"""benchmarks/validate.py keeps test cohorts honest: a test seed is used once, never one that
development has looked at."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def validate(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("validate_bench",
                                                  ROOT / "benchmarks" / "validate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    seeds = tmp_path / "seeds.json"
    shutil.copy(ROOT / "docs" / "seeds.json", seeds)
    monkeypatch.setattr(mod, "SEEDS_FILE", seeds)
    return mod


def test_registry_lists_the_development_seeds(validate):
    used = validate.used_seeds(validate.load_seeds())
    assert {913577, 606060, 616161, 777124} <= used
    assert 913577 + 100000 in used                      # its site population too


def test_a_test_seed_is_used_once(validate):
    validate.register_seed(424242, "test", "release x")
    with pytest.raises(ValueError, match="never used"):
        validate.register_seed(424242, "test", "again")
    with pytest.raises(ValueError, match="never used"):
        validate.register_seed(913577, "test", "a development seed")
    validate.register_seed(777124, "development", "again")           # development may repeat
    reg = json.loads(validate.SEEDS_FILE.read_text())
    assert sum(e["seed"] == 777124 for e in reg["seeds"]) == 1


def test_cli_refuses_a_used_test_seed_before_generating_anything(validate, tmp_path, capsys):
    rc = validate.main(["--purpose", "test", "--seed", "913577", "--n", "1",
                        "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "never used" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_development_run_refuses_a_test_seed(validate, tmp_path, capsys):
    validate.register_seed(515151, "test", "release y")
    rc = validate.main(["--seed", "515151", "--n", "1", "--out", str(tmp_path / "out")])
    assert rc == 2 and "test seed" in capsys.readouterr().err
