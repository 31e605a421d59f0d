"""DEVELOPMENT figures: the whole app, as a user runs it, on real 8-bit sagittal T2 studies.

Each SPIDER patient's slices (8-bit PNGs, real MRI) are written as an 8-bit DICOM series (MR,
sagittal, TE 100 ms / TR 3000 ms, 0.65 mm pixels assumed: SPIDER gives no spacing, as the
training evaluation assumes) and analysed by ``analyze_study``, exactly as the app does with
a folder it is given: whole field of view, its own series choice, intensity scaling,
labelling, corners and calls. Other SPIDER figures (the model card, dev_every_slice) feed the
model-grid images directly and shift the lumbosacral junction into view; this one does not.

Printed, against the annotated masks (names from the lowest labelled disc, as
``train.evaluate.gt_levels``; transitional anatomy not adjudicated):
- L1-L5 found (a reported body outline overlapping the annotated body, IoU >= 0.3, on the
  body's measurement slice) and named right;
- misnamed vertebrae without a review flag (``needs_review`` or ``label_uncertain``);
- body Dice T12-L5 (reported outline against the annotated body, on the measurement slice);
- the share of L1-L5 called "no fracture" (SPIDER has no fracture labels; most bodies are not
  fractured, so every fracture call is a candidate false positive, listed for review).

``--perturb`` alters every image before it is written, as other scanners and exports do:
``gamma0.6`` / ``gamma1.6`` (brighter / darker mid-tones), ``dim`` (an export whose brightest
pixel is about 115 of 255), ``noise`` (Rician, sigma 5% of full scale), ``blur`` (Gaussian,
sigma 1 pixel: a coarser acquisition interpolated to the same grid). It asks how the app
degrades on such data; nothing was tuned on it.

SPIDER `val` was used to choose rules and the held-out train patients to choose checkpoints:
these are development figures whatever the split. Usage::

    python benchmarks/dev_spider_app.py [--split val|train|all] [--slice-mode per-vertebra]
        [--perturb none|gamma0.6|gamma1.6|dim|noise|blur] [--single-slice]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPACING_MM = 0.65  # = train.data.SPIDER_EVAL_SPACING_MM
SLICE_GAP_MM = 1.0
LUMBAR = ("L1", "L2", "L3", "L4", "L5")


def write_series(folder: Path, case: int, images: list[np.ndarray]) -> None:
    """An 8-bit sagittal T2 DICOM series of ``images`` (canonical: superior row 0, anterior
    column 0), one file per slice."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    for k, img in enumerate(images):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID = f"SPIDER^{case}", f"SPIDER{case:03d}"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", 3, k + 1
        ds.SeriesDescription = "T2 SAG"
        ds.EchoTime, ds.RepetitionTime = "100", "3000"
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [f"{(k - len(images) // 2) * SLICE_GAP_MM:.2f}", "0", "0"]
        ds.PixelSpacing = [f"{SPACING_MM}", f"{SPACING_MM}"]
        ds.SliceThickness = f"{SLICE_GAP_MM}"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = int(img.shape[0]), int(img.shape[1])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.ascontiguousarray(img.astype(np.uint8)).tobytes()
        pydicom.dcmwrite(folder / f"IM{k + 1:04d}.dcm", ds, enforce_file_format=True)


PERTURBATIONS = ("none", "gamma0.6", "gamma1.6", "dim", "noise", "blur")


def perturb(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """An 8-bit image as another scanner or export might give it (see the module)."""
    from scipy import ndimage

    x = img.astype(float) / 255.0
    if kind == "gamma0.6":
        x = x ** 0.6
    elif kind == "gamma1.6":
        x = x ** 1.6
    elif kind == "dim":
        x = x * 0.45
    elif kind == "noise":
        x = np.hypot(x + rng.normal(0, 0.05, x.shape), rng.normal(0, 0.05, x.shape))
    elif kind == "blur":
        x = ndimage.gaussian_filter(x, 1.0)
    elif kind != "none":
        raise ValueError(f"unknown perturbation {kind!r}")
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 2.0 * (a & b).sum() / s if s else 0.0


def evaluate_case(case: int, cs, root: Path, work: Path, slice_mode: str, threads,
                  perturbation: str = "none", single_slice: bool = False) -> dict:
    from spineviewer.core.pipeline import analyze_study
    from spineviewer.io.dicom_common import outline_mask
    from spineviewer.train.data import derive_spider_target, load_spider
    from spineviewer.train.evaluate import gt_levels

    loaded = [load_spider(root, c) for c in cs]
    shape = loaded[len(loaded) // 2][0].shape
    loaded = [(i, m) for i, m in loaded if i.shape == shape]
    if single_slice:
        loaded = [loaded[len(loaded) // 2]]
    rng = np.random.default_rng(case)
    write_series(work / f"spider{case:03d}", case,
                 [perturb(i, perturbation, rng) for i, _ in loaded])
    res = analyze_study(work / f"spider{case:03d}", slice_mode=slice_mode, threads=threads)
    truth = [dict(gt_levels(derive_spider_target(m))[0]) for _, m in loaded]
    rows = []
    for v in res.vertebrae:
        k = v.measurement_slice if v.measurement_slice is not None else res.slice_index
        if not v.outline_rc or k >= len(truth):
            continue
        pred = outline_mask(v.outline_rc, shape)
        best, best_iou = None, 0.0
        for level, gm in truth[k].items():
            iou = (pred & gm).sum() / max((pred | gm).sum(), 1)
            if iou > best_iou:
                best, best_iou = level, iou
        rows.append({"case": case, "app": v.level, "truth": best if best_iou >= 0.3 else None,
                     "dice": dice(pred, truth[k][best]) if best_iou >= 0.3 else 0.0,
                     "review": "needs_review" in v.flags or "label_uncertain" in v.flags,
                     "fracture": bool(v.fracture), "call": f"{v.deformity} {v.genant_grade}",
                     "not_assessable": "not_assessable" in v.flags})
    # the annotated lumbar bodies on the naming slice: which were found
    k0 = res.slice_index
    lumbar_truth = [lv for lv in LUMBAR if lv in truth[min(k0, len(truth) - 1)]]
    return {"rows": rows, "lumbar_truth": lumbar_truth, "flags": list(res.flags)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spider", type=Path, default=ROOT.parent / "shared" / "data" / "spider_t2space")
    ap.add_argument("--split", default="val", choices=("val", "train", "all"))
    ap.add_argument("--slice-mode", default="per-vertebra", choices=("per-vertebra", "centre"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--perturb", default="none", choices=PERTURBATIONS)
    ap.add_argument("--single-slice", action="store_true",
                    help="write only each patient's middle slice (a one-image series, as a "
                         "mid-sagittal export is)")
    args = ap.parse_args(argv)
    from spineviewer.train.data import read_manifest

    by_case = defaultdict(list)
    for c in read_manifest(args.spider, None if args.split == "all" else args.split):
        by_case[int(c.case)].append(c)
    rows, found, lumbar_n, failed, missed = [], 0, 0, [], []
    with tempfile.TemporaryDirectory() as tmp:
        for case, cs in sorted(by_case.items()):
            cs.sort(key=lambda c: c.slice)
            try:
                out = evaluate_case(case, cs, args.spider, Path(tmp), args.slice_mode,
                                    args.threads, args.perturb, args.single_slice)
            except Exception as exc:  # noqa: BLE001 - a refused study is a finding, not a crash
                failed.append(f"{case}: {type(exc).__name__}: {exc}")
                continue
            rows += out["rows"]
            got = {r["truth"] for r in out["rows"] if r["truth"] in LUMBAR}
            lumbar_n += len(out["lumbar_truth"])
            found += len(got & set(out["lumbar_truth"]))
            missed += [f"patient {case} {lv} (study flags: {', '.join(out['flags']) or 'none'})"
                       for lv in out["lumbar_truth"] if lv not in got]
    lumbar_rows = [r for r in rows if r["truth"] in LUMBAR]
    right = sum(r["app"] == r["truth"] for r in lumbar_rows)
    wrong = [r for r in lumbar_rows if r["app"] != r["truth"]]
    unflagged = [r for r in wrong if not r["review"]]
    dices = [r["dice"] for r in rows if r["truth"] in ("T12", *LUMBAR)]
    calls = [r for r in lumbar_rows if r["fracture"]]
    print(f"SPIDER {args.split} (development figures), {len(by_case)} patients, "
          f"{args.slice_mode} mode, 8-bit DICOM through analyze_study"
          + ("" if args.perturb == "none" else f", images perturbed: {args.perturb}")
          + (", the middle slice only" if args.single_slice else ""))
    print(f"  refused studies: {len(failed)}" + "".join(f"\n    {f}" for f in failed))
    print(f"  L1-L5 found: {found}/{lumbar_n} = {found / max(lumbar_n, 1):.3f}"
          + "".join(f"\n    not found: {m}" for m in missed))
    by_patient = defaultdict(list)
    for r in wrong:
        by_patient[r["case"]].append(f"{r['truth']} as {r['app']}")
    print(f"  L1-L5 named right: {right}/{len(lumbar_rows)} = "
          f"{right / max(len(lumbar_rows), 1):.3f}"
          + "".join(f"\n    misnamed: patient {c}: {', '.join(v)}"
                    for c, v in sorted(by_patient.items())))
    print(f"  misnamed without a review flag: {len(unflagged)}/{len(lumbar_rows)} = "
          f"{len(unflagged) / max(len(lumbar_rows), 1):.3f}"
          + "".join(f"\n    patient {r['case']}: {r['truth']} named {r['app']}"
                    for r in unflagged))
    print(f"  body Dice T12-L5: mean {np.mean(dices):.3f}, median {np.median(dices):.3f}, "
          f"min {np.min(dices):.3f} (n {len(dices)})"
          + "".join(f"\n    Dice {r['dice']:.2f}: patient {r['case']} {r['truth']} (app "
                    f"{r['app']}{', review' if r['review'] else ''})"
                    for r in rows if r["truth"] in ("T12", *LUMBAR) and r["dice"] < 0.8))
    print(f"  L1-L5 called no fracture: {len(lumbar_rows) - len(calls)}/{len(lumbar_rows)} = "
          f"{1 - len(calls) / max(len(lumbar_rows), 1):.3f}"
          + "".join(f"\n    patient {r['case']} {r['truth']}: {r['call']}" for r in calls))
    na = sum(r["not_assessable"] for r in lumbar_rows)
    print(f"  L1-L5 not assessable (uncertain mask): {na}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
