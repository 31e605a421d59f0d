"""Fixtures for the DICOM tests: small studies written with pydicom into tmp_path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    from tests import dicom_factory
except ImportError:  # plain `pytest` without the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests import dicom_factory


@pytest.fixture
def factory():
    """The ``tests.dicom_factory`` module (SeriesSpec, write_series, write_study, ...)."""
    return dicom_factory


@pytest.fixture
def typical_study(tmp_path):
    """Sagittal T2 (Siemens), sagittal T1 (GE) and axial T2 (Philips) in one study."""
    specs = dicom_factory.typical_study()
    specs[1].vendor, specs[2].vendor = "GE", "PHILIPS"
    files = dicom_factory.write_study(tmp_path / "study", specs)
    return tmp_path / "study", specs, files
