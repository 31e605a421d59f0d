"""Send outputs to a PACS with pynetdicom: C-ECHO and C-STORE with one-line errors.

Before any association every file is read; one unreadable file stops the send before
anything leaves the machine. Connection refused, an unknown host, no answer within the
timeout and a rejected association each raise `PacsError` with a message naming the cause;
per-file C-STORE results come back as `StoreStatus` records.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from spineviewer.core.errors import SpineViewerError

logger = logging.getLogger(__name__)

DEFAULT_CALLING_AET = "SPINEVIEWER"
VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
#: C-STORE warning statuses (PS3.4 B.2.3): stored, with coercion or elements discarded.
WARNING_STATUSES = {0x0001, 0xB000, 0xB006, 0xB007}


class PacsError(SpineViewerError):
    """The PACS could not be reached, refused us, or a file to send is unreadable."""


@dataclass(frozen=True)
class StoreStatus:
    """Result of one C-STORE: ``ok`` is True for success and warning statuses."""

    path: Path
    sop_instance_uid: str
    status: int | None
    ok: bool
    message: str


def _check_aet(aet: str, what: str) -> str:
    aet = str(aet).strip()
    if not aet or len(aet) > 16 or "\\" in aet or not aet.isprintable():
        raise PacsError(f"{what} AE title {aet!r} is invalid (1 to 16 printable characters)")
    return aet


def _probe(host: str, port: int, timeout: float) -> None:
    """Open and close a TCP connection to tell refused / unknown host / timeout apart."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except socket.gaierror as exc:
        raise PacsError(f"unknown PACS host {host!r}: {exc.strerror or exc}") from exc
    except ConnectionRefusedError as exc:
        raise PacsError(f"no DICOM service at {host}:{port} (connection refused)") from exc
    except TimeoutError as exc:
        raise PacsError(f"{host}:{port} did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise PacsError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc


def _application_entity(calling_aet: str, timeout: float):
    from pynetdicom import AE

    ae = AE(ae_title=_check_aet(calling_aet, "calling"))
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


@contextlib.contextmanager
def _quiet_pynetdicom() -> Iterator[None]:
    """Silence pynetdicom's own error lines: our `PacsError` says it in one line.

    Left alone when this module logs at DEBUG, to keep pynetdicom's detail for debugging.
    """
    net = logging.getLogger("pynetdicom")
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    old = net.level
    net.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        net.setLevel(old)


def _associate(ae, host: str, port: int, aet: str, timeout: float):
    """Associate or raise `PacsError` saying why not."""
    aet = _check_aet(aet, "called")
    _probe(host, port, timeout)
    t0 = time.monotonic()
    with _quiet_pynetdicom():
        assoc = ae.associate(host, int(port), ae_title=aet)
    if assoc.is_established:
        return assoc
    where = f"{aet}@{host}:{port}"
    if assoc.is_rejected:
        rsp = getattr(assoc.acceptor, "primitive", None)
        reason = getattr(rsp, "reason_str", "") if rsp is not None else ""
        raise PacsError(f"{where} rejected the association"
                        + (f": {reason}" if reason else "")
                        + " (check the called and calling AE titles in the PACS configuration)")
    if time.monotonic() - t0 >= timeout * 0.9:
        raise PacsError(f"{where} did not answer the association request within {timeout:g} s")
    raise PacsError(f"{where} aborted the association (no accepted presentation context or "
                    "the PACS closed the connection)")


def echo(host: str, port: int, aet: str, calling_aet: str = DEFAULT_CALLING_AET,
         timeout: float = 10.0) -> float:
    """C-ECHO (verification) against a PACS.

    Parameters
    ----------
    host, port : str, int
        Address of the PACS's DICOM service.
    aet : str
        The PACS's (called) AE title.
    calling_aet : str
        Our AE title, as configured in the PACS.
    timeout : float
        Seconds for the connection, the association and the answer.

    Returns
    -------
    float
        Round-trip time in seconds.

    Raises
    ------
    PacsError
        Unreachable, refused, rejected, or a non-success status.
    """
    ae = _application_entity(calling_aet, timeout)
    ae.add_requested_context(VERIFICATION_SOP_CLASS)
    t0 = time.monotonic()
    assoc = _associate(ae, host, port, aet, timeout)
    try:
        with _quiet_pynetdicom():
            status = assoc.send_c_echo()
    finally:
        _close(assoc)
    code = int(status.Status) if status and "Status" in status else None
    if code != 0x0000:
        raise PacsError(f"C-ECHO to {aet}@{host}:{port} failed "
                        + (f"(status 0x{code:04X})" if code is not None else "(no answer)"))
    return time.monotonic() - t0


def _close(assoc) -> None:
    if assoc.is_established:
        assoc.release()
    else:
        assoc.abort()


def read_for_sending(paths: Iterable[str | Path]) -> list[tuple[Path, Dataset]]:
    """Read and verify every file completely; raise `PacsError` naming the first bad one.

    Each file must be complete (`dicom_integrity.verify_file`: no truncated SEG or SR).
    Nothing is sent when any file fails: a study must not arrive half.
    """
    from spineviewer.io.dicom_integrity import IncompleteDicom, verify_file

    out = []
    for p in map(Path, paths):
        try:
            verify_file(p)
        except IncompleteDicom as exc:
            raise PacsError(f"not sending anything: {exc}") from None
        try:
            ds = dcmread(p)
            ds.SOPClassUID, ds.SOPInstanceUID  # noqa: B018 - must be present
            _ = ds.file_meta.TransferSyntaxUID
        except Exception as exc:  # any reason a file cannot be sent
            raise PacsError(f"not sending anything: {p} is not a readable DICOM file "
                            f"({type(exc).__name__}: {exc})") from exc
        out.append((p, ds))
    if not out:
        raise PacsError("no DICOM files to send")
    return out


def _add_contexts(ae, items: list[tuple[Path, Dataset]]) -> None:
    seen: set[tuple[str, str]] = set()
    for _, ds in items:
        key = (str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
        if key in seen:
            continue
        seen.add(key)
        syntaxes = list(dict.fromkeys([key[1], ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
        ae.add_requested_context(key[0], syntaxes)
    if len(ae.requested_contexts) > 128:
        raise PacsError("too many different SOP classes / transfer syntaxes in one send")


def _store_one(assoc, path: Path, ds: Dataset) -> StoreStatus:
    uid = str(ds.SOPInstanceUID)
    if not assoc.is_established:
        return StoreStatus(path, uid, None, False, "not sent: the association was lost")
    try:
        status = assoc.send_c_store(ds)
    except ValueError as exc:  # no accepted presentation context for this SOP class
        return StoreStatus(path, uid, None, False, f"PACS does not accept this object: {exc}")
    if not status or "Status" not in status:
        return StoreStatus(path, uid, None, False, "no answer (timeout or connection lost)")
    code = int(status.Status)
    if code == 0x0000:
        return StoreStatus(path, uid, code, True, "stored")
    if code in WARNING_STATUSES:
        return StoreStatus(path, uid, code, True, f"stored with warning 0x{code:04X}")
    comment = str(status.get("ErrorComment", "")).strip()
    return StoreStatus(path, uid, code, False, f"refused with status 0x{code:04X}"
                       + (f": {comment}" if comment else ""))


def send(paths: Iterable[str | Path], host: str, port: int, aet: str,
         calling_aet: str = DEFAULT_CALLING_AET, timeout: float = 30.0) -> list[StoreStatus]:
    """C-STORE ``paths`` to a PACS in one association.

    Parameters
    ----------
    paths : iterable of path
        DICOM files; all are read before connecting (`read_for_sending`).
    host, port, aet, calling_aet, timeout
        As in `echo`.

    Returns
    -------
    list of StoreStatus
        One per file, in order.

    Raises
    ------
    PacsError
        A file is unreadable (nothing sent), or the PACS is unreachable or rejects us.
    """
    items = read_for_sending(paths)
    ae = _application_entity(calling_aet, timeout)
    _add_contexts(ae, items)
    assoc = _associate(ae, host, port, aet, timeout)
    results = []
    try:
        with _quiet_pynetdicom():
            for path, ds in items:
                results.append(_store_one(assoc, path, ds))
                logger.info("C-STORE %s: %s", path.name, results[-1].message)
    finally:
        _close(assoc)
    return results
