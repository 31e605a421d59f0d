"""``spineviewer send DIR --host H --port P --aet A [--calling-aet X] [--echo]``.

Sends every DICOM file under DIR (files that start with the DICM preamble or end in
``.dcm``; other files such as report.pdf or results.csv are skipped) in one association.
``--echo`` checks the PACS with C-ECHO first; without DIR it only echoes.
Exit status: 0 all stored, 1 some files refused, 2 bad input or PACS unreachable/rejecting.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from spineviewer import argtypes
from spineviewer.core.errors import SpineViewerError
from spineviewer.io import pacs


def _is_dicom_candidate(path: Path) -> bool:
    if path.name.startswith(".") or path.name.upper() == "DICOMDIR":
        return False
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return True  # let read_for_sending report it
    return len(head) == 132 and head[128:132] == b"DICM"


def find_dicom_files(folder: str | Path) -> list[Path]:
    """DICOM files under ``folder`` (recursive, sorted); raise when there is none."""
    root = Path(folder)
    if not root.exists():
        raise SpineViewerError(f"{root} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    found = [p for p in files if _is_dicom_candidate(p)]
    if not found:
        raise SpineViewerError(f"no DICOM files in {root}")
    return found


def build_parser() -> argparse.ArgumentParser:
    p = argtypes.OneLineParser(prog="spineviewer send",
                                description="Send DICOM outputs to a PACS (C-STORE).")
    p.add_argument("dir", nargs="?", help="folder (or file) with the DICOM objects to send")
    p.add_argument("--host", required=True, help="PACS host name or address")
    p.add_argument("--port", required=True, type=argtypes.port, help="PACS DICOM port (1-65535)")
    p.add_argument("--aet", required=True, help="the PACS's (called) AE title")
    p.add_argument("--calling-aet", default=pacs.DEFAULT_CALLING_AET,
                   help="our AE title (default %(default)s)")
    p.add_argument("--echo", action="store_true", help="C-ECHO first (alone when no DIR)")
    p.add_argument("--timeout", type=argtypes.timeout, default=30.0,
                   help="seconds, finite and > 0 (default %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the send command; returns the exit status (0 ok, 1 some refused, 2 error)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["send"]:
        args_list = args_list[1:]
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
        if args.dir is None and not args.echo:
            parser.error("give a folder to send, or --echo")
    except SystemExit as exc:  # --help (0) or a usage error (2, one line already printed)
        return int(exc.code or 0)

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr)

    try:
        if args.echo:
            rtt = pacs.echo(args.host, args.port, args.aet, args.calling_aet, args.timeout)
            say(f"C-ECHO {args.aet}@{args.host}:{args.port}: ok ({1000 * rtt:.0f} ms)")
        if args.dir is None:
            return 0
        files = find_dicom_files(args.dir)
        results = pacs.send(files, args.host, args.port, args.aet, args.calling_aet,
                            args.timeout)
    except SpineViewerError as exc:
        print(f"spineviewer send: error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        line = f"{r.path}: {r.message}"
        print(line, file=sys.stderr) if not r.ok else say(line)
    failed = sum(not r.ok for r in results)
    say(f"sent {len(results) - failed} of {len(results)} file(s) to {args.aet}@{args.host}:"
        f"{args.port}")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
