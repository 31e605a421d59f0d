"""DEVELOPMENT figures: where SPIDER's annotators put a body's endplate edge on the image.

For every annotated body on each SPIDER patient's centre slice (model grid, 0.6 mm), intensity
profiles are read across the superior and inferior endplates along normals of the endplate
chord (as ``core.endplates`` reads them), in three zones of the chord: anterior rim (6-20 %),
middle (35-65 %) and posterior rim (80-94 %). On each profile the darkest point of the
endplate's dark line is found within 3 mm outside to 1.5 mm inside the annotated edge, and
the half-way crossings between it and the brightest point within 2.5 mm on either side: the
marrow-side flank and the disc-side flank. Printed: medians (and quartiles) of their distance
from the annotated edge in mm, positive inside the annotation.

It answers which edge convention the real-MRI reference (issue 14: heights against the
annotated masks) uses, against the phantoms' (the outer margin of the cortical rim). Usage::

    python benchmarks/dev_spider_edges.py --spider ../shared/data/spider_t2space
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

X = np.arange(-4.0, 4.0001, 0.1)        # mm along the profile, positive inside the annotation
ZONES = {"anterior rim": (0.06, 0.2), "middle": (0.35, 0.65), "posterior rim": (0.8, 0.94)}


def flanks(prof: np.ndarray, marrow: float) -> tuple[float, float, float] | None:
    """(dip, disc-side flank, marrow-side flank) in mm, or None without a clear dark line."""
    k0, k1 = np.searchsorted(X, -3.0), np.searchsorted(X, 1.5)
    m = k0 + int(np.argmin(prof[k0:k1]))
    w = 25
    out_max, in_max = prof[max(0, m - w):m + 1].max(), prof[m:m + w + 1].max()
    if in_max - prof[m] < 0.12 * marrow:
        return None

    def cross(step: int, ref: float) -> float:
        half, j = 0.5 * (ref + prof[m]), m
        while 0 < j < len(prof) - 1 and prof[j] < half:
            j += step
        return float(X[j])

    return float(X[m]), cross(-1, out_max), cross(1, in_max)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spider", required=True)
    args = ap.parse_args(argv)
    from dev_every_slice import patient_series
    from scipy import ndimage

    from spineviewer.core.corners import find_corners
    from spineviewer.core.endplates import _chord_frame, _line_hit, _marrow_level, _sample
    from spineviewer.core.morphometry import split_endplates, to_mm
    from spineviewer.train.evaluate import gt_levels

    sp = np.array([0.6, 0.6])
    for split in ("val", "train"):
        found: dict[str, list] = {z: [] for z in ZONES}
        for img, tgt, _, centre in patient_series(args.spider, split).values():
            image = img[centre]
            gt, _ = gt_levels(tgt[centre])
            for _, mask in gt:
                try:
                    cr = find_corners(mask, spacing_mm=(0.6, 0.6))
                    _, c, outline = to_mm(cr.corners_rc, np.asarray(cr.outline_rc, float),
                                          (0.6, 0.6), min_points=8)
                except (ValueError, RuntimeError):
                    continue
                sup, inf = split_endplates(c, outline[:-1])
                marrow = _marrow_level(image, sp, c)
                for (ka, kp), path, other in ((("AS", "PS"), sup, 0.5 * (c["AI"] + c["PI"])),
                                              (("AI", "PI"), inf, 0.5 * (c["AS"] + c["PS"]))):
                    a, p = c[ka], c[kp]
                    t_hat, n_out = _chord_frame(a, p, other)
                    length = float(np.linalg.norm(p - a))
                    for zone, (f0, f1) in ZONES.items():
                        for f in np.linspace(f0, f1, 5):
                            q = a + f * length * t_hat
                            s_b = _line_hit(q, n_out, path)
                            if s_b is None:
                                continue
                            pts = (q + s_b * n_out)[None, :] - X[:, None] * n_out[None, :]
                            prof = ndimage.gaussian_filter1d(_sample(image, pts, sp), 2.5)
                            r = flanks(prof, marrow)
                            if r is not None:
                                found[zone].append(r)
        print(f"\nSPIDER {split} centre slices (DEVELOPMENT figures): the dark endplate line "
              "against the annotated edge, mm, positive inside the annotation "
              "(median, quartiles)")
        for zone, rows in found.items():
            a = np.array(rows)
            cells = [f"{name} {np.median(a[:, i]):+.2f} ({np.percentile(a[:, i], 25):+.2f} to "
                     f"{np.percentile(a[:, i], 75):+.2f})"
                     for i, name in enumerate(("darkest", "disc-side flank", "marrow-side flank"))]
            print(f"  {zone:14s} n {len(a):4d}: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
