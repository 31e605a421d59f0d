"""Run a command without the root's permission override, so that a read-only folder is one."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def run_unprivileged(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` without CAP_DAC_OVERRIDE (as root: via setpriv), text output."""
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a read-only folder is writable")
        cmd = [setpriv, "--inh-caps=-all", "--bounding-set=-all", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                          **kwargs)
