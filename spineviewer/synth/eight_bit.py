"""8-bit copies of phantom studies, as a PACS's or viewer's "8-bit export" makes them.

Real studies from other hospitals often arrive as 8-bit images: each slice rendered through
its display window (WindowCenter / WindowWidth) to 0..255, values above the window clipped,
stored with BitsStored 8 and no rescale. ``export_study`` writes such a copy of a phantom
study (truth files copied alongside), so that the app's handling of 8-bit data is tested on
studies whose truth is known.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom

from spineviewer.core.dicom.volume import full_scale_value

#: Truth files of a phantom study copied next to its 8-bit DICOM files.
TRUTH_FILES = ("truth.json", "truth_labels.npy", "truth_classes.npy")


def to_eight_bit(ds: pydicom.Dataset) -> pydicom.Dataset:
    """``ds`` rendered through its window to 0..255 (8 bits, no rescale), in place.

    Without a window, the slice's own range (minimum to maximum) is used.
    """
    stored = ds.pixel_array
    real = stored.astype(np.float64)
    slope = full_scale_value(1, ds)
    zero = full_scale_value(0, ds)
    if slope is not None and zero is not None:
        real = real * (slope - zero) + zero
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is not None and width is not None:
        centre = float(centre[0] if isinstance(centre, pydicom.multival.MultiValue) else centre)
        width = max(float(width[0] if isinstance(width, pydicom.multival.MultiValue)
                          else width), 1.0)
        lo, hi = centre - width / 2.0, centre + width / 2.0
    else:
        lo, hi = float(real.min()), float(max(real.max(), real.min() + 1.0))
    out = np.clip(np.rint((real - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType",
                    "SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.WindowCenter, ds.WindowWidth = "128", "256"
    ds.PixelData = out.tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    return ds


def export_study(src: str | Path, dst: str | Path) -> Path:
    """Write an 8-bit copy of the phantom study folder ``src`` (its ``dicom/`` tree and truth
    files) to ``dst``; returns ``dst``."""
    src, dst = Path(src), Path(dst)
    for f in sorted(p for p in (src / "dicom").rglob("*") if p.is_file()):
        out = dst / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        ds = pydicom.dcmread(f, force=True)
        if "PixelData" in ds:
            to_eight_bit(ds).save_as(out, enforce_file_format=True)
        else:  # DICOMDIR and the like: as they are
            shutil.copyfile(f, out)
    for name in TRUTH_FILES:
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    return dst
