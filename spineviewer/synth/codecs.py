"""Re-encode DICOM files into other transfer syntaxes (for tests and the fuzz benchmark).

GDCM (python-gdcm) encodes the JPEG family, JPEG-LS, JPEG 2000 and RLE; pydicom writes
Deflated Explicit VR and preamble-less (ACR-NEMA style: no preamble, no ``DICM``, no meta
header, implicit VR little endian) files. ``transcode_study`` copies a whole study folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.filebase import DicomBytesIO

#: Transfer syntax name -> (UID, GDCM TransferSyntax attribute, or None for pydicom-written).
SYNTAXES = {
    "explicit": ("1.2.840.10008.1.2.1", None),
    "implicit": ("1.2.840.10008.1.2", None),
    "deflated": ("1.2.840.10008.1.2.1.99", None),
    "no_preamble": ("", None),
    "jpeg_lossless": ("1.2.840.10008.1.2.4.57", "JPEGLosslessProcess14"),
    "jpeg_lossless_sv1": ("1.2.840.10008.1.2.4.70", "JPEGLosslessProcess14_1"),
    "jpeg_extended_12bit": ("1.2.840.10008.1.2.4.51", "JPEGExtendedProcess2_4"),
    "jpeg_baseline_8bit": ("1.2.840.10008.1.2.4.50", "JPEGBaselineProcess1"),
    "jpeg2000_lossless": ("1.2.840.10008.1.2.4.90", "JPEG2000Lossless"),
    "jpeg2000": ("1.2.840.10008.1.2.4.91", "JPEG2000"),
    "jpeg_ls_lossless": ("1.2.840.10008.1.2.4.80", "JPEGLSLossless"),
    "jpeg_ls_near_lossless": ("1.2.840.10008.1.2.4.81", "JPEGLSNearLossless"),
    "rle": ("1.2.840.10008.1.2.5", "RLELossless"),
}
#: Syntaxes that reproduce the stored values exactly.
LOSSLESS = ("explicit", "implicit", "deflated", "no_preamble", "jpeg_lossless",
            "jpeg_lossless_sv1", "jpeg2000_lossless", "jpeg_ls_lossless", "rle")


def transcode(src: str | Path, dst: str | Path, syntax: str) -> Path:
    """Write ``src`` (an uncompressed DICOM file) to ``dst`` in ``syntax`` (a ``SYNTAXES`` key).

    JPEG Baseline holds 8 bits: the pixels are scaled to 0..255 first (BitsStored 8, so the
    result is an 8-bit, lossy image as a PACS's "8-bit JPEG" export is).
    """
    if syntax not in SYNTAXES:
        raise ValueError(f"unknown transfer syntax {syntax!r}; one of {sorted(SYNTAXES)}")
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    uid, gdcm_name = SYNTAXES[syntax]
    ds = pydicom.dcmread(src)
    if syntax == "explicit" and str(ds.file_meta.TransferSyntaxUID) == uid:
        shutil.copyfile(src, dst)
        return dst
    if syntax == "no_preamble":
        return _write_bare(ds, dst)
    if gdcm_name is None:
        ds.file_meta.TransferSyntaxUID = uid
        ds.save_as(dst, enforce_file_format=True)
        return dst
    if syntax == "jpeg_baseline_8bit":
        tmp = dst.with_name(dst.name + ".8bit")
        _to_8bit(ds).save_as(tmp, enforce_file_format=True)
        try:
            return _gdcm_change(tmp, dst, gdcm_name)
        finally:
            tmp.unlink(missing_ok=True)
    return _gdcm_change(src, dst, gdcm_name)


def transcode_study(src_dir: str | Path, dst_dir: str | Path, syntax: str,
                    only: Iterable[str] | None = None) -> list[Path]:
    """Copy every file under ``src_dir`` to ``dst_dir`` (same relative paths), DICOM files
    re-encoded in ``syntax``; ``only`` limits the re-encoding to those relative paths."""
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    keep = None if only is None else set(only)
    out = []
    for f in sorted(p for p in src_dir.rglob("*") if p.is_file()):
        rel = f.relative_to(src_dir)
        target = dst_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if (keep is None or str(rel) in keep) and _is_image(f):
            out.append(transcode(f, target, syntax))
        else:
            shutil.copyfile(f, target)
    return out


def _is_image(path: Path) -> bool:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=False, defer_size=64)
    except Exception:  # noqa: BLE001 - not DICOM: copied as is
        return False
    return "PixelData" in ds and str(ds.get("Modality", "")) not in ("SR", "SEG", "PR")


def _write_bare(ds, dst: Path) -> Path:
    """No preamble, no 'DICM', no meta header: the dataset alone, implicit VR little endian."""
    ds = ds.copy()
    if hasattr(ds, "file_meta"):
        del ds.file_meta
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    pydicom.filewriter.write_dataset(buf, ds)
    dst.write_bytes(buf.getvalue())
    return dst


def _to_8bit(ds):
    arr = ds.pixel_array.astype(np.float64)
    top = max(float(arr.max()), 1.0)
    ds.PixelData = np.rint(arr * 255.0 / top).astype(np.uint8).tobytes()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    if "RescaleSlope" in ds:
        ds.RescaleSlope = f"{float(ds.RescaleSlope) * top / 255.0:.8g}"
    return ds


def _gdcm_change(src: Path, dst: Path, gdcm_name: str) -> Path:
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    if not reader.Read():
        raise ValueError(f"GDCM cannot read {src}")
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, gdcm_name)))
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise ValueError(f"GDCM cannot encode {src} as {gdcm_name}")
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise ValueError(f"GDCM cannot write {dst}")
    return dst

