#!/usr/bin/env bash
# Build the frozen one-folder app dist/spineviewer/ (and, on Linux, a tarball with an install
# script) with PyInstaller. Run from a fresh clone inside a virtual environment:
#
#   python3 -m venv .venv && . .venv/bin/activate && bash installer/build.sh
#
# Without an active venv the script makes one in build/venv. It installs PyInstaller and this
# checkout (pip install -e .), builds from installer/spineviewer.spec, checks the result
# (installer/check_excludes.py) and prints the folder's size.
#   --compare-excludes   first build once without the excludes and report both sizes
#   --no-tarball         skip the Linux tarball
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
compare=0
tarball=1
for arg in "$@"; do
  case "$arg" in
    --compare-excludes) compare=1 ;;
    --no-tarball) tarball=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ ! -x build/venv/bin/python ]; then
    echo "== no active virtual environment: creating build/venv"
    python3 -m venv build/venv
  fi
  # shellcheck disable=SC1091
  . build/venv/bin/activate
fi
PY=python
echo "== installing PyInstaller and SpineViewer into $VIRTUAL_ENV"
$PY -m pip install -q --upgrade pip
$PY -m pip install -q "pyinstaller>=6.3" -e .
VERSION=$($PY -c "import spineviewer; print(spineviewer.__version__)")

size_of() {  # MiB and file count of a folder
  $PY - "$1" <<'PYEOF'
import sys
from pathlib import Path
files = [p for p in Path(sys.argv[1]).rglob("*") if p.is_file() and not p.is_symlink()]
print(f"{sum(p.stat().st_size for p in files) / 2**20:.1f} MiB in {len(files)} files")
PYEOF
}

pyi() {  # pyinstaller into dist folder $1, work folder $2
  $PY -m PyInstaller --noconfirm --clean --log-level WARN \
      --distpath "$1" --workpath "$2" installer/spineviewer.spec
}

before=""
if [ "$compare" = 1 ]; then
  echo "== build without excludes (for comparison)"
  rm -rf build/noexcludes
  SPINEVIEWER_NO_EXCLUDES=1 pyi build/noexcludes/dist build/noexcludes/work
  before=$(size_of build/noexcludes/dist/spineviewer)
  echo "   without excludes: $before"
  rm -rf build/noexcludes
fi

echo "== PyInstaller build (installer/spineviewer.spec)"
start=$(date +%s)
rm -rf dist/spineviewer
pyi dist build/pyinstaller
elapsed=$(( $(date +%s) - start ))
after=$(size_of dist/spineviewer)

echo "== checking the build"
$PY installer/check_excludes.py dist/spineviewer

archive=""
if [ "$tarball" = 1 ] && [ "$(uname -s)" = Linux ]; then
  arch=$(uname -m)
  name="spineviewer-$VERSION"
  stage="build/tarball/$name"
  archive="dist/$name-linux-$arch.tar.gz"
  echo "== tarball $archive"
  rm -rf build/tarball "$archive"
  mkdir -p "$stage/share"
  cp -a dist/spineviewer "$stage/spineviewer"
  cp installer/linux/install.sh installer/linux/INSTALL.txt "$stage/"
  chmod +x "$stage/install.sh"
  cp assets/spineviewer.desktop assets/icon.png assets/icon.svg "$stage/share/"
  tar -C build/tarball -czf "$archive" "$name"
  rm -rf build/tarball
fi

echo
echo "SpineViewer $VERSION built in ${elapsed} s: dist/spineviewer/ ($after)"
[ -n "$before" ] && echo "  without the excludes it was $before"
[ -n "$archive" ] && echo "  tarball: $archive ($(du -m "$archive" | cut -f1) MiB)"
echo "  smoke test: bash installer/smoke.sh"
