"""The `spineviewer` command: gui (default), analyze, batch, demo, synth, evaluate, send.

User-caused errors exit with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spineviewer import DISCLAIMER, __version__
from spineviewer.core.errors import SpineViewerError

EXIT_BAD_INPUT = 2
DEMO_SEED = 20240607


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _COMMANDS and argv[0] not in ("-h", "--help", "--version"):
        argv = ["gui", *argv]
    if argv[0] in _DELEGATED:  # they own their argument parsing (and --help)
        return _run_guarded(lambda: _delegate(argv[0])(argparse.Namespace(rest=argv[1:])), False)
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "debug", False):
        logging.basicConfig(level=logging.DEBUG)
    else:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return _run_guarded(lambda: args.func(args), getattr(args, "debug", False))


def _run_guarded(fn, debug: bool) -> int:
    """Run a command; user errors become one line and exit status 2."""
    try:
        return int(fn() or 0)
    except SpineViewerError as exc:
        print(f"spineviewer: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("spineviewer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"spineviewer: internal error: {type(exc).__name__}: {exc} "
              "(run with --debug for details)", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spineviewer",
        description=f"SpineViewer {__version__}: lumbar vertebral morphometry and fracture "
                    f"detection on sagittal T2 MRI. {DISCLAIMER}")
    p.add_argument("--version", action=_VersionAction,
                   help="show the program's and the shipped model's versions and exit")
    sub = p.add_subparsers(dest="command")

    a = sub.add_parser("analyze", help="analyse a DICOM study folder or file")
    a.add_argument("path")
    a.add_argument("--series", help="SeriesInstanceUID to analyse instead of the automatic choice")
    a.add_argument("--force-series", action="store_true",
                   help="analyse --series even when it is not a sagittal T2 (every output "
                        "then carries a warning)")
    a.add_argument("--slice-mode", choices=("per-vertebra", "centre"), default="per-vertebra",
                   help="per-vertebra (default): segment every slice and measure each body on "
                        "the slice nearest its own mid-sagittal plane; centre: the paper's "
                        "centre slice only")
    _output_options(a)
    a.set_defaults(func=_cmd_analyze)

    d = sub.add_parser("demo", help="generate a phantom demo study and analyse it")
    d.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    d.add_argument("--seed", type=int, default=DEMO_SEED)
    _runtime_options(d)
    d.set_defaults(func=_cmd_demo)

    from spineviewer.batch.cli import add_parser as add_batch_parser

    add_batch_parser(sub)

    for name, helptext in (("gui", "open the desktop viewer (default; gui --help for options)"),
                           ("synth", "write synthetic phantom DICOM studies"),
                           ("evaluate", "agreement statistics: reference CSV vs results CSV"),
                           ("send", "send DICOM files to a PACS (C-ECHO / C-STORE)")):
        s = sub.add_parser(name, help=helptext, add_help=False)
        s.add_argument("rest", nargs=argparse.REMAINDER)
        s.set_defaults(func=_delegate(name))
    return p


_DELEGATED = ("gui", "synth", "evaluate", "send")
_COMMANDS = ("analyze", "batch", "demo", *_DELEGATED)


def version_text() -> str:
    """``spineviewer <version> (model <name> <version>)``, the model's from its shipped card."""
    try:
        from spineviewer.core.segment import default_model_path, read_card

        card = read_card(default_model_path())
        model = f"model {card.get('name', '?')} {card.get('version', '?')}"
    except SpineViewerError as exc:
        model = f"no model: {exc}"
    return f"spineviewer {__version__} ({model})"


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked (reading the model card needs numpy)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def _runtime_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the network (slices run side by side, one per "
                        "thread; default: the cores)")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--csv", help="write the per-vertebra CSV here")
    p.add_argument("--json", help="write the full JSON result here")
    p.add_argument("--pdf", help="write the PDF report here")
    p.add_argument("--dicom-out", help="write DICOM SEG, SR and encapsulated PDF into this folder")
    p.add_argument("--deidentify", action="store_true",
                   help="de-identify the CSV, JSON and PDF (refused with --dicom-out)")
    p.add_argument("--pseudonym-key-file",
                   help="key (>= 16 bytes) for --deidentify's UID pseudonyms; default "
                        "$SPINEVIEWER_PSEUDONYM_KEY, else a random key for this export")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files (never folders or special files)")
    _runtime_options(p)


def _progress_printer(quiet: bool):
    if quiet:
        return None

    def show(stage: str, fraction: float) -> None:
        print(f"[{fraction * 100:5.1f}%] {stage}", file=sys.stderr, flush=True)

    return show


def _cmd_analyze(args) -> int:
    from spineviewer.core.pipeline import analyze_study

    path = Path(args.path)
    _output_plan(args)  # refuse bad output paths (and keys) before the (slow) analysis
    result = analyze_study(path, series_uid=args.series, force_series=args.force_series,
                           provider=args.provider,
                           threads=args.threads, progress=_progress_printer(args.quiet),
                           slice_mode=args.slice_mode)
    _write_outputs(result, args)
    if not (args.csv or args.json or args.pdf or args.dicom_out):
        print(format_summary(result))
    return 0


def _output_plan(args) -> dict:
    from spineviewer.io.deidentify import Pseudonymizer
    from spineviewer.io.export import plan_outputs

    if args.deidentify and args.pseudonym_key_file:
        Pseudonymizer.from_key_file(args.pseudonym_key_file)  # unreadable or short: refused

    return plan_outputs(pdf=args.pdf, csv=args.csv, json=args.json, dicom_dir=args.dicom_out,
                        deidentify=args.deidentify, overwrite=args.force)


def _write_outputs(result, args) -> list[Path]:
    """All requested outputs through `io.export` (all or nothing)."""
    from spineviewer.io.deidentify import Pseudonymizer
    from spineviewer.io.export import write_outputs

    key = None
    if args.deidentify:
        key = Pseudonymizer.for_export(getattr(args, "pseudonym_key_file", None))
    written = write_outputs(result, pdf=args.pdf, csv=args.csv, json=args.json,
                            dicom_dir=args.dicom_out, deidentify=args.deidentify,
                            overwrite=args.force, pseudonymizer=key)
    if key is not None and key.random and not getattr(args, "quiet", False):
        print(f"spineviewer: note: {key.note()} (give --pseudonym-key-file or "
              f"$SPINEVIEWER_PSEUDONYM_KEY for pseudonyms that join)", file=sys.stderr)
    return written


def format_summary(result) -> str:
    """A plain-text table of the result, for the terminal."""
    from spineviewer.core import calls
    from spineviewer.io.report_text import unsuitable_series_line

    warning = unsuitable_series_line(result)
    lines = ([warning] if warning else []) + [(f"Series: {result.series_choice.get('description', '')} "
              f"({result.series_choice.get('reason', '')})"),
             (f"Slice {result.slice_index + 1} (numbered from 1, as in the viewer and the PDF), "
              f"model {result.model.get('name', '')}"),
             (f"{'level':<6}{'AH':>7}{'PH':>7}{'MH':>7}{'SC':>6}{'IC':>6}{'VA':>7}  "
              f"{'call':<22}flags")]
    for v in result.vertebrae:
        def f(x, w, d=1):
            return f"{x:>{w}.{d}f}" if x is not None else f"{'-':>{w}}"
        call = calls.short(v.fracture, v.deformity, v.genant_grade)
        if calls.has_override(v):
            call += f" / reader: {calls.reader_short(v)}"
        lines.append(f"{v.level:<6}{f(v.AH_mm, 7)}{f(v.PH_mm, 7)}{f(v.MH_mm, 7)}"
                     f"{f(v.SC_mm, 6)}{f(v.IC_mm, 6)}{f(v.VA_deg, 7)}  {call:<22}"
                     f"{';'.join(v.flags)}")
    for w in result.flags:
        lines.append(f"study flag: {w}")
    lines.append(DISCLAIMER)
    return "\n".join(lines)


def _cmd_demo(args) -> int:
    from spineviewer.core.pipeline import analyze_study
    from spineviewer.synth.study import write_study

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"writing demo phantom study to {out / 'study'}")
    write_study(out / "study", args.seed, **demo_study_options())
    result = analyze_study(out / "study" / "dicom", provider=args.provider, threads=args.threads,
                           progress=_progress_printer(args.quiet))
    ns = argparse.Namespace(csv=str(out / "results.csv"), json=str(out / "results.json"),
                            pdf=str(out / "report.pdf"), dicom_out=str(out / "dicom_outputs"),
                            deidentify=False, force=True)
    written = _write_outputs(result, ns)
    print(format_summary(result))
    for p in written:
        say(f"wrote {p}")
    return 0


def demo_study_options() -> dict:
    """The demo case: acute grade-2 wedge fracture at L1 (oedema on the STIR series), Schmorl
    node at L3, osteophyte at L4."""
    from spineviewer.synth.phantom import PhantomParams

    params = PhantomParams(deformities={"L1": ("wedge", 2)}, schmorl_levels=("L3",),
                           osteophyte_levels=("L4",), acute_levels=("L1",))
    return {"vendor": "siemens", "field_strength_T": 3.0, "params": params, "stir": True}


def _delegate(name: str):
    def run(args) -> int:
        if name == "gui":
            from spineviewer.gui.app import main as sub_main
        elif name == "synth":
            from spineviewer.synth.study import main as sub_main
        elif name == "evaluate":
            from spineviewer.evaluate_cli import main as sub_main
        else:
            from spineviewer.io.send_cli import main as sub_main
        return int(sub_main(args.rest) or 0)

    return run


if __name__ == "__main__":
    sys.exit(main())
