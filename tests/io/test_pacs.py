"""PACS send against an in-process pynetdicom SCP on 127.0.0.1 (Orthanc: test_orthanc.py)."""

from __future__ import annotations

import socket
import time

import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from spineviewer.io import export, pacs, send_cli

SCP_AET = "TESTPACS"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakePacs:
    """A storage SCP that records what it got and answers with a chosen status."""

    def __init__(self, store_status: int = 0x0000, require_called_aet: bool = True):
        self.received: list = []
        self.connections = 0
        self.associations = 0
        self.store_status = store_status
        self.port = _free_port()
        ae = AE(ae_title=SCP_AET)
        ae.require_called_aet = require_called_aet
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda e: 0x0000),
                    (evt.EVT_CONN_OPEN, self._on_open), (evt.EVT_ESTABLISHED, self._on_assoc)]
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=handlers)

    def _on_open(self, event) -> None:
        self.connections += 1

    def _on_assoc(self, event) -> None:
        self.associations += 1

    def _on_store(self, event) -> int:
        if self.store_status == 0x0000:
            ds = event.dataset
            ds.file_meta = event.file_meta
            self.received.append(ds)
        return self.store_status

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def fake_pacs():
    p = FakePacs()
    yield p
    p.stop()


@pytest.fixture
def dicom_files(study_result, tmp_path):
    paths = export.export_all(study_result, tmp_path / "out", dicom=True)
    return [p for p in paths if p.suffix == ".dcm"]


def test_echo(fake_pacs):
    rtt = pacs.echo("127.0.0.1", fake_pacs.port, SCP_AET, timeout=5)
    assert 0 < rtt < 5


def test_send_stores_every_file(fake_pacs, dicom_files):
    results = pacs.send(dicom_files, "127.0.0.1", fake_pacs.port, SCP_AET, timeout=10)
    assert [r.ok for r in results] == [True] * 4
    assert all(r.status == 0 and r.message == "stored" for r in results)
    got = {str(ds.SOPInstanceUID) for ds in fake_pacs.received}
    assert got == {r.sop_instance_uid for r in results}
    assert {ds.Modality for ds in fake_pacs.received} == {"SEG", "SR", "PR", "DOC"}
    assert fake_pacs.associations == 1  # one association for all files


def test_wrong_called_aet_is_rejected_clearly(fake_pacs):
    with pytest.raises(pacs.PacsError, match=r"WRONGAET@127\.0\.0\.1:\d+ rejected the "
                                             r"association: Called AE title not recognised"):
        pacs.echo("127.0.0.1", fake_pacs.port, "WRONGAET", timeout=5)


def test_closed_port_fails_fast():
    port = _free_port()
    t0 = time.monotonic()
    with pytest.raises(pacs.PacsError, match="connection refused"):
        pacs.echo("127.0.0.1", port, SCP_AET, timeout=3)
    assert time.monotonic() - t0 < 2.0


def test_silent_peer_times_out(dicom_files):
    with socket.socket() as srv:  # accepts TCP connections but never speaks DICOM
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(pacs.PacsError, match=r"did not answer the association request "
                                                 r"within 1 s"):
            pacs.send(dicom_files, "127.0.0.1", port, SCP_AET, timeout=1.0)
        assert time.monotonic() - t0 < 5.0


def test_unreadable_file_sends_nothing(fake_pacs, dicom_files, tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(dicom_files[0].read_bytes()[:300])  # truncated
    with pytest.raises(pacs.PacsError, match=r"not sending anything: .*broken\.dcm"):
        pacs.send([*dicom_files, bad], "127.0.0.1", fake_pacs.port, SCP_AET, timeout=5)
    assert fake_pacs.connections == 0 and fake_pacs.received == []


def test_refused_store_is_reported_per_file(dicom_files, capsys):
    refusing = FakePacs(store_status=0xA700)
    try:
        results = pacs.send(dicom_files[:2], "127.0.0.1", refusing.port, SCP_AET, timeout=5)
        assert [(r.ok, r.status) for r in results] == [(False, 0xA700), (False, 0xA700)]
        assert results[0].message.startswith("refused with status 0xA700")
        code = send_cli.main(["send", str(dicom_files[0].parent), "--host", "127.0.0.1",
                              "--port", str(refusing.port), "--aet", SCP_AET, "--timeout", "5"])
        assert code == 1
        assert "refused with status 0xA700" in capsys.readouterr().err
    finally:
        refusing.stop()


def test_cli_send_and_echo(fake_pacs, dicom_files, capsys):
    folder = dicom_files[0].parent.parent  # holds report.pdf and results.csv too: skipped
    code = send_cli.main(["send", str(folder), "--host", "127.0.0.1", "--port",
                          str(fake_pacs.port), "--aet", SCP_AET, "--echo", "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "C-ECHO TESTPACS@127.0.0.1" in err and "sent 4 of 4 file(s)" in err
    assert len(fake_pacs.received) == 4


def test_cli_errors_are_one_line(tmp_path, capsys):
    code = send_cli.main([str(tmp_path / "nothing"), "--host", "127.0.0.1", "--port", "9",
                          "--aet", "X"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "does not exist" in err
    (tmp_path / "notes.txt").write_text("no dicom here")
    assert send_cli.main([str(tmp_path), "--host", "h", "--port", "9", "--aet", "X"]) == 2
    assert "no DICOM files" in capsys.readouterr().err
    # neither DIR nor --echo: a usage error, one line, exit 2
    assert send_cli.main(["--host", "h", "--port", "9", "--aet", "X"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_truncated_seg_is_refused_before_association(fake_pacs, dicom_files, capsys):
    """Issue 16 case 10: a SEG cut inside its pixel data was sent ("sent 4 of 4")."""
    seg = next(p for p in dicom_files if p.name == "vertebrae_seg.dcm")
    data = seg.read_bytes()
    seg.write_bytes(data[:-40])  # pydicom still reads this as a SEG
    code = send_cli.main(["send", str(seg.parent), "--host", "127.0.0.1", "--port",
                          str(fake_pacs.port), "--aet", SCP_AET, "--timeout", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "vertebrae_seg.dcm" in err[0] and "not sending anything" in err[0]
    assert fake_pacs.connections == 0 and fake_pacs.received == []
