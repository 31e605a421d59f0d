"""Draw the app icon: ``assets/icon.svg`` (source), ``icon.png`` (256 px, Linux .desktop),
``icon.ico`` (Windows) and ``icon.icns`` (macOS).

    QT_QPA_PLATFORM=offscreen python installer/make_icon.py

Five lumbar bodies on a lordotic curve, the second one wedge-shaped (a fracture) in the
colour-blind-safe orange the viewer uses for flags.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
BODY, FRACTURE, DISC, BACKGROUND = "#d9dde3", "#E69F00", "#56B4E9", "#1f2a36"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512)


def svg() -> str:
    """The icon as SVG text (256 x 256 user units)."""
    shapes = [f'<rect x="8" y="8" width="240" height="240" rx="44" fill="{BACKGROUND}"/>']
    offsets = (10, 2, -4, -4, 4)  # anterior shift per level: lumbar lordosis
    top = 30
    for i, dx in enumerate(offsets):
        x, h, w = 78 + dx, 30, 100
        if i == 1:  # anterior wedge: the front edge (left) is lower than the back
            pts = f"{x},{top + 13} {x + w},{top} {x + w},{top + h} {x},{top + h}"
            shapes.append(f'<polygon points="{pts}" fill="{FRACTURE}" stroke="{FRACTURE}" '
                          'stroke-width="6" stroke-linejoin="round"/>')
        else:
            shapes.append(f'<rect x="{x}" y="{top}" width="{w}" height="{h}" rx="7" '
                          f'fill="{BODY}"/>')
        if i < len(offsets) - 1:
            shapes.append(f'<rect x="{x + 12}" y="{top + h + 4}" width="{w - 24}" height="6" '
                          f'rx="3" fill="{DISC}"/>')
        top += h + 14
    body = "\n  ".join(shapes)
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" '
            f'viewBox="0 0 256 256">\n  {body}\n</svg>\n')


def render_png(svg_text: str, size: int) -> bytes:
    """The SVG rendered at ``size`` px by Qt's SVG renderer, as PNG bytes."""
    from PySide6 import QtCore, QtGui, QtSvg

    _ = QtGui.QGuiApplication.instance() or QtGui.QGuiApplication(sys.argv[:1])
    renderer = QtSvg.QSvgRenderer(QtCore.QByteArray(svg_text.encode()))
    image = QtGui.QImage(size, size, QtGui.QImage.Format.Format_ARGB32)
    image.fill(QtCore.Qt.GlobalColor.transparent)
    painter = QtGui.QPainter(image)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data())


def main() -> int:
    from PIL import Image

    ASSETS.mkdir(exist_ok=True)
    text = svg()
    (ASSETS / "icon.svg").write_text(text, encoding="utf-8")
    big = Image.open(io.BytesIO(render_png(text, 512))).convert("RGBA")
    big.resize((256, 256), Image.LANCZOS).save(ASSETS / "icon.png", optimize=True)
    big.save(ASSETS / "icon.ico", sizes=[(s, s) for s in ICO_SIZES])
    big.save(ASSETS / "icon.icns", sizes=[(s, s) for s in ICNS_SIZES])
    for name in ("icon.svg", "icon.png", "icon.ico", "icon.icns"):
        print(f"wrote {ASSETS / name} ({(ASSETS / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
