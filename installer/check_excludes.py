"""Check a built app folder: nothing excluded slipped in, everything needed is there.

    python installer/check_excludes.py dist/spineviewer

Exits 1 and lists the offending paths when PyTorch, test folders or an unused Qt module
(WebEngine, 3D, Multimedia, Quick/QML) is in the build, or when the model, its card, the
reference table, highdicom's data, the offscreen/xcb Qt platform plug-ins or ONNX Runtime's
library is missing. Prints the folder's size and its largest parts.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bundle


def folder_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path``, symbolic links not followed."""
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files), len(files)


def problems(app: Path) -> list[str]:
    internal = app / "_internal" if (app / "_internal").is_dir() else app
    rel = ["/" + p.relative_to(app).as_posix() for p in app.rglob("*")]
    out = [f"excluded but present: {r}" for r in rel
           if any(bad in r for bad in bundle.FORBIDDEN_IN_BUILD)]
    for pattern in bundle.REQUIRED_IN_BUILD:
        if not any(internal.glob(pattern)):
            out.append(f"required but missing: _internal/{pattern}")
    return out


def largest_parts(app: Path, n: int = 8) -> list[tuple[str, int]]:
    internal = app / "_internal" if (app / "_internal").is_dir() else app
    sizes: Counter[str] = Counter()
    for p in internal.rglob("*"):
        if p.is_file() and not p.is_symlink():
            sizes[p.relative_to(internal).parts[0]] += p.stat().st_size
    return sizes.most_common(n)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    app = Path(args[0] if args else bundle.ROOT / "dist" / bundle.APP_NAME)
    if not (app / bundle.APP_NAME).is_file() and not (app / f"{bundle.APP_NAME}.exe").is_file():
        print(f"check_excludes: no built app in {app}", file=sys.stderr)
        return 1
    size, count = folder_size(app)
    print(f"{app}: {size / 2**20:.1f} MiB in {count} files")
    for name, part in largest_parts(app):
        print(f"  {part / 2**20:7.1f} MiB  {name}")
    found = problems(app)
    for line in found:
        print(f"check_excludes: {line}", file=sys.stderr)
    if found:
        return 1
    print("check_excludes: no PyTorch, tests or unused Qt modules; model, card, reference "
          "table, highdicom data, Qt offscreen/xcb plug-ins and ONNX Runtime present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
