"""Send to a real Orthanc PACS, isolated in a private network namespace.

Debian's Orthanc 1.10 cannot bind to loopback only, so `orthanc_inner.py` runs in a
subprocess under ``unshare -n`` (root) or ``unshare -rn`` (user namespaces), with ``lo``
up and no other interface: nothing outside can reach the server. Needs the Debian packages
orthanc, util-linux (unshare) and iproute2 (ip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INNER = Path(__file__).with_name("orthanc_inner.py")


def _unshare_prefix() -> list[str] | None:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for flags in (["-n"], ["-r", "-n"]):
        probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=30,
                               check=False)
        if probe.returncode == 0:
            return [unshare, *flags]
    return None


def test_orthanc_end_to_end_in_private_netns():
    orthanc = shutil.which("Orthanc") or ("/usr/sbin/Orthanc"
                                          if Path("/usr/sbin/Orthanc").exists() else None)
    if orthanc is None:
        pytest.skip("Orthanc not installed (Debian package orthanc)")
    ip = shutil.which("ip") or ("/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else None)
    if ip is None:
        pytest.skip("ip not installed (Debian package iproute2)")
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("cannot create a private network namespace (unshare -n / -rn failed)")
    env = dict(os.environ, SPINEVIEWER_IN_NETNS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    script = (f'"{ip}" link set lo up && exec "{sys.executable}" -m pytest -q '
              f'-p no:cacheprovider -o addopts="" "{INNER}"')
    cmd = [*prefix, "sh", "-c", script]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "5 passed" in out, out[-4000:]
