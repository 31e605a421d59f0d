"""Column logic (issue 13, part 4): off-column body-class clusters are dropped and logged."""

from pathlib import Path

import numpy as np

from spineviewer.core.column import drop_off_column, off_column
from spineviewer.core.pipeline import analyze_study
from spineviewer.synth.params import PhantomParams
from spineviewer.synth.study import write_study

NAMES = ["background", "body", "sacrum", "disc"]


def _column(n=6, lordosis=0.002):
    """Class map with ``n`` bodies on a curved column (0.6 mm grid)."""
    cmap = np.zeros((560, 400), np.uint8)
    centres = []
    for i in range(n):
        r = 60 + i * 58
        c = 150 + lordosis * (r - 250) ** 2
        cmap[r - 22:r + 22, int(c) - 32:int(c) + 32] = 1
        centres.append((r, c))
    return cmap, centres


def test_normal_column_keeps_every_body():
    cmap, centres = _column()
    assert off_column(np.array(centres, float), 0.6) == []
    out, warnings = drop_off_column(cmap, NAMES, 0.6)
    assert out is cmap and warnings == []


def test_blob_in_front_and_below_and_posterior_elements_are_dropped(caplog):
    cmap, centres = _column()
    cmap[430:480, 30:90] = 1          # bowel/bladder: far anterior, below the lowest body
    cmap[170:200, 300:330] = 1        # a spinous process behind the column
    out, warnings = drop_off_column(cmap, NAMES, 0.6)
    assert len(warnings) == 2 and all("dropped" in w and "the column" in w for w in warnings)
    assert not out[430:480, 30:90].any() and not out[170:200, 300:330].any()
    for r, c in centres:                                      # every body kept
        assert out[int(r), int(c)] == 1


def test_far_cluster_below_the_column_is_dropped():
    cmap, centres = _column()
    (r1, c1), (r, c) = centres[-2:]
    rb = r + 175                                        # 105 mm down, on the column's line
    cb = int(c + (c - c1) / (r - r1) * (rb - r))
    cmap[int(rb) - 15:int(rb) + 15, cb - 25:cb + 25] = 1
    out, warnings = drop_off_column(cmap, NAMES, 0.6)
    assert len(warnings) == 1 and "below the next body" in warnings[0]
    assert not out[int(rb), cb] and out[int(r), int(c)] == 1


def test_pipeline_drops_an_off_column_blob_before_naming(tmp_path):
    study = write_study(tmp_path, 4545, params=PhantomParams(), n_slices=3, distractors=False)
    labels = np.load(Path(study.out_dir) / "truth_labels.npy")
    l5 = np.argwhere(labels == 6)
    r0 = int(l5[:, 0].max()) + 25
    c0 = max(5, int(l5[:, 1].min()) - 70)                  # in front of and below L5
    labels[r0:r0 + 40, c0:c0 + 45] = 3
    result = analyze_study(study.dicom_dir, masks_override=labels)
    assert [v.level for v in result.vertebrae][-5:] == ["L1", "L2", "L3", "L4", "L5"]
    truth = {t.level: t for t in study.vertebrae}
    assert abs(result.vertebra("L5").PH_mm - truth["L5"].PH_mm) < 1.0
    assert any("dropped" in w and "the column" in w for w in result.warnings)
