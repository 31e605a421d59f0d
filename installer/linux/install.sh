#!/usr/bin/env bash
# Install SpineViewer from this unpacked tarball (see INSTALL.txt).
#   ./install.sh              for this user: ~/.local/opt/spineviewer, ~/.local/bin/spineviewer
#   sudo ./install.sh --system   for all users: /opt/spineviewer, /usr/local/bin/spineviewer
#   ./install.sh --uninstall  (or sudo ./install.sh --system --uninstall)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
system=0
uninstall=0
for arg in "$@"; do
  case "$arg" in
    --system) system=1 ;;
    --uninstall) uninstall=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
if [ "$system" = 1 ]; then
  prefix=/opt/spineviewer; bindir=/usr/local/bin; share=/usr/local/share
else
  prefix="$HOME/.local/opt/spineviewer"; bindir="$HOME/.local/bin"; share="$HOME/.local/share"
fi
apps="$share/applications"
icons="$share/icons/hicolor"

if [ "$uninstall" = 1 ]; then
  rm -rf "$prefix"
  rm -f "$bindir/spineviewer" "$apps/spineviewer.desktop" \
        "$icons/256x256/apps/spineviewer.png" "$icons/scalable/apps/spineviewer.svg"
  echo "SpineViewer removed from $prefix (your settings in ~/.config/SpineViewer are kept)"
  exit 0
fi

[ -x "$here/spineviewer/spineviewer" ] || { echo "install.sh: no app folder beside me" >&2; exit 1; }
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")" "$bindir" "$apps" "$icons/256x256/apps" "$icons/scalable/apps"
cp -a "$here/spineviewer" "$prefix"
ln -sf "$prefix/spineviewer" "$bindir/spineviewer"
cp "$here/share/icon.png" "$icons/256x256/apps/spineviewer.png"
cp "$here/share/icon.svg" "$icons/scalable/apps/spineviewer.svg"
sed -e "s|^Exec=.*|Exec=$prefix/spineviewer gui %f|" "$here/share/spineviewer.desktop" \
  > "$apps/spineviewer.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" || true
echo "SpineViewer installed in $prefix"
echo "  command: $bindir/spineviewer   (try: spineviewer demo --out ~/spineviewer-demo)"
echo "  menu entry: $apps/spineviewer.desktop"
case ":$PATH:" in *":$bindir:"*) ;; *) echo "  note: $bindir is not on your PATH" ;; esac
