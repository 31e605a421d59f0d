"""Is a DICOM file complete? Checked by `send` before any association (no half objects in PACS).

pydicom reads most truncated files without complaint (a cut SEG is a SEG with fewer bytes of
pixel data, a cut SR an SR with fewer content items). `verify_file` therefore checks:

1. the byte structure: preamble and file meta, then every element, sequence and item of the
   data set (explicit or implicit VR, little or big endian, deflated): each defined length
   fits in the file, each undefined-length sequence, item and encapsulated pixel data ends
   with its delimiter, and nothing is left half at the end;
2. the content, read with pydicom: SOP Class and Instance UIDs agree with the file meta, the
   study and series UIDs are present, native pixel data has the length Rows x Columns x
   frames x samples x bits, an encapsulated document has its stated length (a PDF ends with
   ``%%EOF``);
3. the last attributes the IOD requires are present for the objects SpineViewer writes (SEG,
   SR, presentation state, Encapsulated PDF) and for any image storage object (Rows, Columns,
   pixel data): a file cut exactly between two top-level elements is otherwise well-formed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from spineviewer.core.errors import SpineViewerError

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
             b"UV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
#: SOP classes -> attributes of which at least one must be present in each group (the last
#: ones the IOD requires, so that a cut between top-level elements is seen).
_REQUIRED = {
    "1.2.840.10008.5.1.4.1.1.66.4": (("SegmentSequence",), ("SharedFunctionalGroupsSequence",),
                                     ("PerFrameFunctionalGroupsSequence",), ("PixelData",)),
    "1.2.840.10008.5.1.4.1.1.11.1": (("ReferencedSeriesSequence",), ("ContentLabel",),
                                     ("ContentCreatorName",),
                                     ("PresentationLUTShape", "PresentationLUTSequence")),
    "1.2.840.10008.5.1.4.1.1.104.1": (("MIMETypeOfEncapsulatedDocument",),
                                      ("EncapsulatedDocument",),
                                      ("EncapsulatedDocumentLength",)),
}
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_SR_REQUIRED = (("ValueType",), ("ConceptNameCodeSequence",), ("CompletionFlag",),
                ("VerificationFlag",), ("ContentSequence",))


class IncompleteDicom(SpineViewerError):
    """A DICOM file is truncated, malformed or lacks what its object type requires."""


class _Cut(Exception):
    pass


def verify_bytes(data: bytes, name: str = "file") -> None:
    """Raise `IncompleteDicom` (one line, naming ``name``) unless ``data`` is a complete file."""
    try:
        meta_end, ts = _check_meta(data)
        body = data[meta_end:]
        if ts in DEFLATED:
            try:
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                body = inflater.decompress(body)
                if not inflater.eof:
                    raise _Cut("the deflated data set ends early")
            except zlib.error as exc:
                raise _Cut(f"the deflated data set is damaged ({exc})") from None
        _walk(body, 0, len(body), explicit=ts != IMPLICIT_LE, little=ts != EXPLICIT_BE,
              top=True)
    except _Cut as exc:
        raise IncompleteDicom(f"{name} is truncated or damaged: {exc}") from None
    _check_content(data, name)


def verify_file(path: str | Path) -> None:
    """`verify_bytes` on a file's content; an unreadable file raises `IncompleteDicom` too."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise IncompleteDicom(f"{p} cannot be read: {exc.strerror or exc}") from None
    verify_bytes(data, str(p))


def _check_meta(data: bytes) -> tuple[int, str]:
    if len(data) < 132 or data[128:132] != b"DICM":
        raise _Cut("no DICOM preamble (the file is shorter than 132 bytes or not DICOM Part 10)")
    pos, ts, group_end = 132, None, None
    while pos < len(data):
        if pos + 8 > len(data):
            raise _Cut("the file meta information ends early")
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                raise _Cut("the file meta information ends early")
            length, head = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, head = struct.unpack_from("<H", data, pos + 6)[0], 8
        if pos + head + length > len(data):
            raise _Cut("the file meta information ends early")
        value = data[pos + head:pos + head + length]
        if elem == 0x0000 and length == 4:
            group_end = pos + head + length + struct.unpack("<I", value)[0]
        if elem == 0x0010:
            ts = value.rstrip(b"\x00 ").decode("ascii", "replace")
        pos += head + length
    if ts is None:
        raise _Cut("no Transfer Syntax UID in the file meta information")
    if group_end is not None and group_end != pos:
        raise _Cut("the file meta information length does not match its content")
    return pos, ts


def _walk(buf: bytes, pos: int, end: int, *, explicit: bool, little: bool,
          top: bool = False) -> int:
    """Walk the elements in ``buf[pos:end]``; return where an item delimiter was met (or end)."""
    bo = "<" if little else ">"
    while pos < end:
        if pos + 8 > end:
            raise _Cut(f"an element header is cut at byte {pos}")
        group, elem = struct.unpack_from(bo + "HH", buf, pos)
        tag = (group << 16) | elem
        if tag in (_ITEM_END, _SEQ_END):
            if top:
                raise _Cut(f"a stray delimiter at byte {pos}")
            return pos
        if explicit:
            vr = buf[pos + 4:pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    raise _Cut(f"an element header is cut at byte {pos}")
                length = struct.unpack_from(bo + "I", buf, pos + 8)[0]
                pos += 12
            else:
                length = struct.unpack_from(bo + "H", buf, pos + 6)[0]
                pos += 8
        else:
            vr = _implicit_vr(tag)
            length = struct.unpack_from(bo + "I", buf, pos + 4)[0]
            pos += 8
        if length == _UNDEFINED:
            if vr == b"SQ" or vr == b"UN" or not explicit:
                pos = _sequence(buf, pos, end, explicit=explicit and vr != b"UN",
                                little=little, fragments=tag == _PIXEL_DATA)
            elif tag == _PIXEL_DATA:
                pos = _sequence(buf, pos, end, explicit=explicit, little=little, fragments=True)
            else:
                raise _Cut(f"element ({group:04X},{elem:04X}) has an undefined length")
            continue
        if pos + length > end:
            raise _Cut(f"element ({group:04X},{elem:04X}) needs {length} bytes, "
                       f"{end - pos} left")
        if vr == b"SQ":
            _items(buf, pos, pos + length, explicit=explicit, little=little)
        pos += length
    return pos


def _implicit_vr(tag: int) -> bytes:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag).encode("ascii")[:2]
    except (KeyError, ValueError):
        return b"UN"


def _item_header(buf: bytes, pos: int, end: int, bo: str) -> tuple[int, int]:
    if pos + 8 > end:
        raise _Cut(f"a sequence item is cut at byte {pos}")
    group, elem, length = struct.unpack_from(bo + "HHI", buf, pos)
    return (group << 16) | elem, length


def _items(buf: bytes, pos: int, end: int, *, explicit: bool, little: bool) -> None:
    """Items of a defined-length sequence, exactly filling ``buf[pos:end]``."""
    bo = "<" if little else ">"
    while pos < end:
        tag, length = _item_header(buf, pos, end, bo)
        if tag != _ITEM:
            raise _Cut(f"a sequence holds something other than items at byte {pos}")
        pos = _item_body(buf, pos + 8, end, length, explicit=explicit, little=little)


def _item_body(buf: bytes, pos: int, end: int, length: int, *, explicit: bool,
               little: bool) -> int:
    bo = "<" if little else ">"
    if length == _UNDEFINED:
        pos = _walk(buf, pos, end, explicit=explicit, little=little)
        tag, _ = _item_header(buf, pos, end, bo)
        if tag != _ITEM_END:
            raise _Cut(f"an item has no end delimiter (byte {pos})")
        return pos + 8
    if pos + length > end:
        raise _Cut(f"an item needs {length} bytes, {end - pos} left")
    if _walk(buf, pos, pos + length, explicit=explicit, little=little) != pos + length:
        raise _Cut(f"an item holds a delimiter before its end (byte {pos})")
    return pos + length


def _sequence(buf: bytes, pos: int, end: int, *, explicit: bool, little: bool,
              fragments: bool) -> int:
    """Items of an undefined-length sequence (or pixel data fragments) up to the delimiter."""
    bo = "<" if little else ">"
    while True:
        tag, length = _item_header(buf, pos, end, bo)
        if tag == _SEQ_END:
            return pos + 8
        if tag != _ITEM:
            raise _Cut(f"a sequence has no end delimiter (byte {pos})")
        if fragments:
            if length == _UNDEFINED or pos + 8 + length > end:
                raise _Cut(f"a pixel data fragment is cut at byte {pos}")
            pos += 8 + length
        else:
            pos = _item_body(buf, pos + 8, end, length, explicit=explicit, little=little)


def _check_content(data: bytes, name: str) -> None:
    import io

    from pydicom import dcmread

    try:
        ds = dcmread(io.BytesIO(data))
        for _ in ds.iterall():
            pass
    except Exception as exc:  # noqa: BLE001 - any parse failure is a damaged file
        raise IncompleteDicom(f"{name} cannot be parsed: {type(exc).__name__}: {exc}") from None
    meta = ds.file_meta
    for kw in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not str(ds.get(kw, "") or "").strip():
            raise IncompleteDicom(f"{name} has no {kw}")
    if str(meta.get("MediaStorageSOPInstanceUID", "")) != str(ds.SOPInstanceUID):
        raise IncompleteDicom(f"{name}: the SOP Instance UID differs from the file meta's")
    sop = str(ds.SOPClassUID)
    groups = _REQUIRED.get(sop) or (_SR_REQUIRED if sop.startswith(_SR_PREFIX) else ())
    if not groups and ("Image Storage" in _uid_name(sop) or "Rows" in ds):
        groups = (("Rows",), ("Columns",), ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    for group in groups:
        if not any(kw in ds for kw in group):
            raise IncompleteDicom(f"{name} lacks {' or '.join(group)} (cut short?)")
    if "PixelData" in ds and not meta.TransferSyntaxUID.is_compressed:
        _check_native_pixels(ds, name)
    if "EncapsulatedDocument" in ds:
        _check_document(ds, name)


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID

    return str(UID(uid).name)


def _check_native_pixels(ds, name: str) -> None:
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = (int(ds.Rows) * int(ds.Columns) * frames * int(ds.get("SamplesPerPixel", 1))
                * int(ds.BitsAllocated))
    except (AttributeError, TypeError, ValueError):
        raise IncompleteDicom(f"{name} has pixel data without a valid image size") from None
    expected = (bits + 7) // 8
    if len(ds.PixelData) < expected:
        raise IncompleteDicom(f"{name} has {len(ds.PixelData)} bytes of pixel data, "
                              f"{expected} expected")


def _check_document(ds, name: str) -> None:
    doc = bytes(ds.EncapsulatedDocument)
    stated = ds.get("EncapsulatedDocumentLength")
    if stated is not None:
        if len(doc) < int(stated) or len(doc) > int(stated) + 1:
            raise IncompleteDicom(f"{name} holds {len(doc)} document bytes, {int(stated)} "
                                  "stated")
        doc = doc[:int(stated)]
    is_pdf = "pdf" in str(ds.get("MIMETypeOfEncapsulatedDocument", "")).lower()
    if is_pdf and (not doc.startswith(b"%PDF") or b"%%EOF" not in doc[-1024:]):
        raise IncompleteDicom(f"{name} holds an incomplete PDF document")
