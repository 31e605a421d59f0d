"""Read one DICOM file whatever state it is in: a reason instead of a crash, never a hang.

- Special files (named pipes, sockets, devices) are refused from ``os.stat`` before any
  ``open``: opening a FIFO blocks until a writer appears, which may be never.
- Any parser failure (truncation, a corrupt value representation, a bad length) becomes an
  :class:`UnreadableFile` with a one-line reason; callers skip the file and go on.
- Files without the 128-byte preamble and ``DICM`` marker (ACR-NEMA style) are read with
  ``force=True`` and given the transfer syntax their encoding implies, so pixels decode.
- Pixels are decoded by pydicom's plugins (python-gdcm for the JPEG family); 12-bit JPEG
  Extended, which pydicom's GDCM plugin declines, is decoded by GDCM directly.
- pydicom's own log records (which may carry a traceback) go to one DEBUG line of this module's
  logger, never to stderr; GDCM's C++ warnings are switched off.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    JPEG2000,
    JPEG2000MC,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
)

log = logging.getLogger(__name__)

#: Transfer syntaxes whose compression loses information (pixel values are approximations).
LOSSY_SYNTAXES = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000,
                            JPEG2000MC})
_SPECIAL = ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"),
            (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


class UnreadableFile(Exception):
    """A file that cannot be used; ``str()`` is the one-line reason."""


class _OneLine(logging.Handler):
    """Re-log pydicom's records as one DEBUG line, without the traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage().splitlines()[0] if record.getMessage() else ""
        except Exception:  # noqa: BLE001 - a malformed log call must not break reading
            msg = str(record.msg)
        log.debug("pydicom %s: %s", record.levelname.lower(), msg[:300])


def route_library_logging() -> None:
    """pydicom's logger -> one DEBUG line here (no propagation, so no traceback on stderr);
    GDCM's warnings and errors (printed by C++ to stderr) off. Idempotent."""
    plog = logging.getLogger("pydicom")
    if not any(isinstance(h, _OneLine) for h in plog.handlers):
        for h in list(plog.handlers):
            plog.removeHandler(h)
        plog.addHandler(_OneLine())
    plog.propagate = False
    # pydicom's warnings about invalid values (raised when a value is first used, anywhere)
    # are also logged by pydicom itself (warn_and_log), so they reach the DEBUG line above
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
    try:
        import gdcm

        gdcm.Trace.WarningOff()
        gdcm.Trace.ErrorOff()
        gdcm.Trace.DebugOff()
    except Exception:  # noqa: BLE001, S110 - GDCM absent or without Trace: nothing to silence
        pass


route_library_logging()


@contextmanager
def _quiet():
    """pydicom's warnings about a damaged file become DEBUG lines, not stderr output."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.debug("pydicom warning: %s", str(w.message).splitlines()[0][:300] if str(w.message) else "")


def special_file_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a file (special file, missing, no permission), else None.

    Uses ``os.stat`` only: never opens the path, so a FIFO cannot block.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot access: {exc.strerror or type(exc).__name__}"
    for test, what in _SPECIAL:
        if test(mode):
            return f"special file: {what}"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def read_dataset(path: str | os.PathLike, *, defer_size: int | None = None) -> Dataset:
    """Parse a DICOM file (header only when ``defer_size`` defers the large values).

    Raises
    ------
    UnreadableFile
        Special file, not DICOM, or a parser failure; the message is the reason.
    """
    why = special_file_reason(path)
    if why:
        raise UnreadableFile(why)
    try:
        with _quiet():
            ds = pydicom.dcmread(path, defer_size=defer_size)
    except InvalidDicomError:
        if not looks_like_bare_dicom(path):
            raise UnreadableFile("not DICOM") from None
        ds = _read_forced(path, defer_size)
    except Exception as exc:  # noqa: BLE001 - any parser failure means "not usable"
        raise UnreadableFile(f"unreadable DICOM: {_reason(exc)}") from None
    return ds


def _read_forced(path, defer_size) -> Dataset:
    """A file without preamble and meta header: read it, then name its transfer syntax."""
    try:
        with _quiet():
            ds = pydicom.dcmread(path, defer_size=defer_size, force=True)
    except Exception as exc:  # noqa: BLE001
        raise UnreadableFile(f"unreadable DICOM: {_reason(exc)}") from None
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit in (True, None) else
                                  ExplicitVRLittleEndian if little in (True, None) else
                                  ExplicitVRBigEndian)
    return ds


def looks_like_bare_dicom(path: str | os.PathLike) -> bool:
    """True when the file starts with a little-endian group 0008 element, as preamble-less
    (ACR-NEMA style) DICOM files do."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return len(head) == 4 and head[:2] == b"\x08\x00"


def transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "") if meta is not None else "")


def decode_pixels(ds: Dataset, path: str | os.PathLike) -> np.ndarray:
    """Stored pixel values of ``ds`` (read from ``path``): pydicom's decoders, then GDCM.

    Raises
    ------
    UnreadableFile
        No decoder can read the pixel data; the message says why.
    """
    check_pixel_module(ds)
    try:
        with _quiet(), _c_stderr_to_log():
            return ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a reason
        first = _reason(exc)
    ts = transfer_syntax(ds)
    if ts and pydicom.uid.UID(ts).is_compressed:
        try:
            with _quiet():
                return _gdcm_pixels(path, ds)
        except Exception as exc:  # noqa: BLE001
            log.debug("GDCM could not decode %s either: %s", path, _reason(exc))
    raise UnreadableFile(f"pixel data cannot be decoded: {first}")


#: Largest image matrix (rows x columns x frames) decoded; larger is taken as a broken header.
MAX_PIXELS = 4096 * 4096 * 4


def check_pixel_module(ds: Dataset) -> None:
    """Refuse, before any decoder runs, an Image Pixel module an MR magnitude image cannot
    have (some decoders loop or allocate without bound on such values).

    Raises
    ------
    UnreadableFile
    """
    def num(keyword, default=None):
        try:
            value = ds.get(keyword, default)
            return int(value) if value not in (None, "") else default
        except Exception:  # noqa: BLE001 - a malformed value is a broken header
            raise UnreadableFile(f"broken pixel header: {keyword} is not a number") from None

    samples = num("SamplesPerPixel", 1)
    if samples != 1:
        raise UnreadableFile(f"not a greyscale image (SamplesPerPixel {samples})")
    rows, cols, frames = num("Rows", 0), num("Columns", 0), num("NumberOfFrames", 1) or 1
    allocated, stored = num("BitsAllocated", 0), num("BitsStored", None)
    if rows <= 0 or cols <= 0 or frames <= 0 or rows * cols * frames > MAX_PIXELS:
        raise UnreadableFile(f"broken pixel header: {rows} x {cols} pixels, {frames} frame(s)")
    if allocated not in (8, 16, 32):
        raise UnreadableFile(f"broken pixel header: BitsAllocated {allocated}")
    if stored is not None and not 1 <= stored <= allocated:
        raise UnreadableFile(f"broken pixel header: BitsStored {stored} of {allocated}")


_GDCM_TYPES = {"UINT8": np.uint8, "INT8": np.int8, "UINT16": np.uint16, "INT16": np.int16,
               "UINT32": np.uint32, "INT32": np.int32}


def _gdcm_pixels(path, ds: Dataset) -> np.ndarray:
    """Decode with GDCM itself (it decodes 8/12/16-bit JPEG, which pydicom's plugin limits).

    GDCM reads a clean copy holding only the pixel module, written by pydicom: GDCM aborts
    the whole process (an uncaught C++ exception) on some damaged headers, e.g. a wrong VR.
    """
    import tempfile

    import gdcm

    clean = Dataset()
    clean.file_meta = FileMetaDataset()
    clean.file_meta.TransferSyntaxUID = transfer_syntax(ds)
    clean.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    clean.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    clean.SOPClassUID, clean.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.4", "1.2.3.4"
    clean.SamplesPerPixel = 1  # `check_pixel_module` admits greyscale only
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation"):
        value = ds.get(keyword)
        setattr(clean, keyword, int(value) if value not in (None, "") else None)
    clean.BitsStored = clean.BitsStored or clean.BitsAllocated
    clean.HighBit = clean.HighBit if clean.HighBit is not None else clean.BitsStored - 1
    clean.PixelRepresentation = clean.PixelRepresentation or 0
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        clean.NumberOfFrames = frames
    clean.PhotometricInterpretation = "MONOCHROME2"
    clean.PixelData = ds.PixelData
    clean["PixelData"].VR = "OB"
    with tempfile.TemporaryDirectory() as tmp:
        copy = f"{tmp}/pixels.dcm"
        clean.save_as(copy, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(copy)
        with _c_stderr_to_log():
            ok = reader.Read()
        if not ok:
            raise ValueError("GDCM cannot read the file")
        image = reader.GetImage()
        fmt = image.GetPixelFormat()
        dtype = _GDCM_TYPES.get(fmt.GetScalarTypeAsString())
        if dtype is None:
            raise ValueError(f"pixel type {fmt.GetScalarTypeAsString()}")
        dims = [image.GetDimension(i) for i in range(image.GetNumberOfDimensions())]
        with _c_stderr_to_log():
            buffer = image.GetBuffer()
    cols, rows = dims[0], dims[1]
    frames = dims[2] if len(dims) > 2 else 1
    if rows != clean.Rows or cols != clean.Columns:
        raise ValueError("GDCM image size differs from the header")
    if not isinstance(buffer, str):
        raise ValueError("GDCM returned no pixel buffer")  # noqa: TRY004 - callers catch ValueError
    data = np.frombuffer(buffer.encode("utf-8", "surrogateescape"), dtype=dtype)
    if data.size != rows * cols * frames:
        raise ValueError("GDCM buffer size differs from the image size")
    shape = (rows, cols) if frames == 1 else (frames, rows, cols)
    return data.reshape(shape).copy()


_STDERR_LOCK = threading.Lock()


@contextmanager
def _c_stderr_to_log():
    """What C libraries (OpenJPEG, libjpeg, GDCM) print on file descriptor 2 while decoding
    goes to one DEBUG line instead of the user's terminal."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to protect
            yield
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(2000).decode("utf-8", "replace").strip()
            if text:
                log.debug("decoder said: %s", " | ".join(text.splitlines()[:3])[:300])


def is_lossy(ds: Dataset) -> bool:
    """True when the pixels went through lossy compression (transfer syntax or the header's
    LossyImageCompression = 01)."""
    if transfer_syntax(ds) in LOSSY_SYNTAXES:
        return True
    try:
        return str(ds.get("LossyImageCompression", "") or "").strip() == "01"
    except Exception:  # noqa: BLE001
        return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__
