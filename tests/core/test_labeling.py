"""Labelling on synthetic class maps: curved column, touching bodies, missing sacrum, etc."""

from __future__ import annotations

import numpy as np
import pytest

from spineviewer.core.labeling import label_vertebrae, split_touching, transitional_cues

CLASSES = ["background", "body", "sacrum", "disc"]
SHAPE = (448, 320)
BODY_H, DISC_H, DEPTH = 42, 14, 58  # px at 0.6 mm: 25 mm bodies, 8 mm discs, 35 mm deep


def _col(r: float) -> int:
    """Anterior edge of the column: a lordotic curve."""
    return round(110 + 0.0006 * (r - 250) ** 2)


def _column(n_bodies=6, top=20, sacrum=True, heights=None, depths=None, disc_h=None,
            l5s1_disc=None):
    """Class map with n bodies (top to bottom), discs between, and a sacrum block below."""
    cm = np.zeros(SHAPE, int)
    truth = []
    # thoracolumbar sizes (top to bottom): T11/T12 smaller than the lumbar bodies
    heights = heights or [42, 42, 42, 42, 42, 40, 38, 36][n_bodies - 1::-1]
    depths = depths or [58, 58, 58, 58, 56, 52, 48, 44][n_bodies - 1::-1]
    r = top
    for i in range(n_bodies):
        h, d = heights[i], depths[i]
        c = _col(r + h / 2)
        cm[r:r + h, c:c + d] = 1
        truth.append((r + (h - 1) / 2, c + (d - 1) / 2))
        dh = (disc_h if disc_h is not None else DISC_H)
        if i == n_bodies - 1 and l5s1_disc is not None:
            dh = l5s1_disc
        cm[r + h:r + h + dh, c:c + d] = 3
        r += h + dh
    if sacrum:
        c = _col(r)
        cm[r:min(r + 60, SHAPE[0] - 5), c + 5:c + 70] = 2
    return cm, truth


def test_six_bodies_with_sacrum_named_t12_to_l5():
    cm, truth = _column(6, top=40)
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    for b, (r, c) in zip(lab.bodies, truth):
        assert b.centroid_rc == pytest.approx((r, c), abs=0.01)
        assert b.mask.shape == SHAPE and b.flags == []
    assert lab.flags == [] and lab.sacrum_mask is not None and lab.sacrum_mask.sum() > 0


def test_seven_bodies_name_t11():
    cm, _ = _column(7, top=5, heights=[36, 38, 40, 42, 42, 42, 42],
                    depths=[44, 46, 48, 52, 56, 58, 58], disc_h=10)
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    assert "transitional_anatomy" not in lab.flags


def test_touching_bodies_are_split():
    cm, _truth = _column(6, top=40, heights=[BODY_H] * 6, depths=[58, 58, 58, 58, 58, 60])
    # turn the disc between the 3rd and 4th bodies (L1-L2) into bone: they touch
    lo = 40 + 3 * BODY_H + 2 * DISC_H
    band = cm[lo:lo + DISC_H]
    assert (band == 3).any()
    band[band == 3] = 1
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    # the cut lies in the former disc band, not through either body
    last_row_upper = np.nonzero(lab.bodies[2].mask.any(axis=1))[0].max()
    assert lo - 1 <= last_row_upper <= lo + DISC_H
    assert sum(b.mask.sum() for b in lab.bodies) == (cm == 1).sum()  # no pixel lost
    assert any("split" in w for w in lab.warnings)


def test_split_touching_finds_the_waist():
    m = np.zeros((120, 60), bool)
    m[10:50, 10:50] = True
    m[50:56, 25:35] = True  # narrow bridge
    m[56:100, 10:50] = True
    top, bottom = split_touching(m, 2, np.array([1.0, 0.0]))
    rows_top = np.nonzero(top.any(axis=1))[0]
    assert 49 <= rows_top.max() <= 56
    assert top.sum() + bottom.sum() == m.sum()


def test_missing_sacrum_flags_every_body():
    cm, _ = _column(5, top=150, sacrum=False)
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert "sacrum_not_visible" in lab.flags
    assert [b.level for b in lab.bodies] == ["L1", "L2", "L3", "L4", "L5"]
    assert all("label_uncertain" in b.flags and "needs_review" in b.flags for b in lab.bodies)
    assert lab.sacrum_mask is None


def test_cropped_top_body_is_partial():
    cm, _ = _column(6, top=40)
    cm = np.vstack([cm[60:], np.zeros((60, SHAPE[1]), int)])  # top body runs off row 0
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert lab.bodies[0].level == "T12" and "partial_body" in lab.bodies[0].flags
    assert all("partial_body" not in b.flags for b in lab.bodies[1:])


def test_six_lumbar_sized_bodies_flag_transitional():
    # T12 as large as the lumbar bodies
    cm, _ = _column(6, top=40, heights=[BODY_H] * 6, depths=[DEPTH + 2] + [DEPTH] * 5)
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert "transitional_anatomy" in lab.flags
    assert any("six lumbar" in w for w in lab.warnings)
    assert all("label_uncertain" in b.flags for b in lab.bodies)


def test_normal_thoracolumbar_sizes_not_flagged():
    cm, _ = _column(6, top=40, heights=[38, 40, 42, 42, 42, 42], depths=[48, 52, 56, 58, 58, 58])
    assert label_vertebrae(cm, CLASSES, 0.6).flags == []


def test_missing_l5_s1_disc_flags_sacralisation():
    cm, _ = _column(6, top=40, heights=[38, 40, 42, 42, 42, 42],
                    depths=[48, 52, 56, 58, 58, 58], l5s1_disc=1)
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert "transitional_anatomy" in lab.flags
    assert any("sacralisation" in w for w in lab.warnings)


def test_small_lowest_body_cue_uses_depth_not_height():
    def column(last_depth, last_height):
        masks = []
        for i in range(5):
            m = np.zeros((400, 100), bool)
            h, d = (last_height, last_depth) if i == 4 else (40, 60)
            m[10 + 60 * i:10 + 60 * i + h, 20:20 + d] = True
            masks.append(m)
        return masks

    assert any("sacralised" in c for c in transitional_cues(column(40, 40), None))
    # a crushed lowest body (half height, full depth) is a fracture, not a transitional cue
    assert transitional_cues(column(60, 20), None) == []


def test_body_class_required():
    with pytest.raises(ValueError, match="body"):
        label_vertebrae(np.zeros((10, 10), int), ["background", "sacrum"])


def test_debris_is_not_counted_as_a_body():
    cm, _ = _column(6, top=40)
    cm[5:8, 150:153] = 1  # 9 px = 3 mm^2 above T12
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T12", "L1", "L2", "L3", "L4", "L5"]


def test_body_clusters_below_the_sacrum_are_ignored():
    cm, _ = _column(5, top=60)
    rows = np.nonzero((cm == 2).any(axis=1))[0]
    cm[rows.max() - 20:rows.max() - 5, 140:170] = 1  # an S2 segment read as "body"
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["L1", "L2", "L3", "L4", "L5"]
    assert any("below the sacrum" in w for w in lab.warnings)


def test_s1_fragment_read_as_body_joins_the_sacrum():
    cm, _ = _column(5, top=60)
    rows = np.nonzero((cm == 2).any(axis=1))[0]
    cols = np.nonzero((cm == 2).any(axis=0))[0]
    top = rows.min()
    cm[top:top + 15, cols.min():cols.min() + 40] = 1  # top rim of S1 segmented as body
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["L1", "L2", "L3", "L4", "L5"]
    assert lab.sacrum_mask[top:top + 15, cols.min():cols.min() + 40].all()
    assert any("part of S1" in w for w in lab.warnings)


def test_unsegmented_sacrum_inferred_from_the_last_disc():
    # the network called S1 "body": a body cluster with a disc above and none below it
    cm, _ = _column(6, top=20, sacrum=False)
    rows = np.nonzero((cm == 3).any(axis=1))[0]
    last_disc = cm[rows.max() - DISC_H + 1:rows.max() + 1]
    last_disc[last_disc == 3] = 0
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["L1", "L2", "L3", "L4", "L5"]
    assert "sacrum_inferred" in lab.flags and lab.sacrum_mask is not None
    assert "sacrum_not_visible" not in lab.flags
    # the same column cut just below that body: a true L5 whose disc is out of view
    cut = cm[: np.nonzero((cm == 1).any(axis=1))[0].max() + 5]
    lab = label_vertebrae(cut, CLASSES, 0.6)
    assert "sacrum_not_visible" in lab.flags and len(lab.bodies) == 6


def test_small_fragment_below_l5_without_sacrum_does_not_shift_names():
    cm, _ = _column(6, top=20, sacrum=False)
    body_rows = np.nonzero((cm == 1).any(axis=1))[0]
    low = body_rows.max()
    cm[low + 14:low + 26, 150:170] = 1  # 12 x 20 px piece of S1 read as body (~9% of a body)
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert any("fragment" in w for w in lab.warnings)
    # the sacrum itself was not seen, but L5 sits on a full disc with the image going on
    assert "sacrum_unsegmented" in lab.flags and "sacrum_not_visible" not in lab.flags


def test_crushed_body_is_not_taken_for_a_fragment():
    cm, _ = _column(6, top=20, heights=[40, 42, 44, 20, 45, 44])  # L3 crushed to ~45%
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T12", "L1", "L2", "L3", "L4", "L5"]


def test_crushed_body_joined_to_its_neighbour_around_a_short_disc_is_split():
    # L1 crushed (20 px high); the T12-L1 disc, thin, stops 8 px short of the posterior wall:
    # T12 and L1 form one cluster, not tall enough to be split by height alone.
    cm, truth = _column(6, top=20, heights=[36, 20, 42, 42, 44, 44], disc_h=8)
    disc_rows = slice(20 + 36, 20 + 36 + 8)
    disc_cols = np.nonzero((cm[disc_rows] == 3).any(axis=0))[0]
    cm[disc_rows, disc_cols[-8:]] = 1
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert any("joined around the end of a disc" in w for w in lab.warnings)
    for b, (r, _c) in zip(lab.bodies, truth):
        assert b.centroid_rc[0] == pytest.approx(r, abs=2.0)
    assert sum(b.mask.sum() for b in lab.bodies) == (cm == 1).sum()  # no pixel lost


def test_disc_coloured_island_inside_a_body_does_not_split_it():
    # a small bright lesion read as disc inside L3 (e.g. a haemangioma): not a disc between bodies
    cm, _ = _column(6, top=40)
    r0 = 40 + 3 * (BODY_H + DISC_H) + 15
    c0 = _col(r0 + 6) + 20
    cm[r0:r0 + 8, c0:c0 + 16] = 3
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert not any("joined around" in w for w in lab.warnings)


def _s1_as_body(remnant_rows: int, remnant_cols: int):
    """T12..L5 plus S1 read as a seventh "body", with an S1-S2 disc remnant of the given
    size under it (full lumbar discs are 14 x 58 px) and the rest of the sacrum below."""
    cm, _ = _column(6, top=5, sacrum=False, heights=[38, 40, 42, 42, 42, 42],
                    depths=[48, 52, 56, 58, 58, 58], disc_h=12)
    r = np.nonzero((cm == 3).any(axis=1))[0].max() + 1       # below the L5-S1 disc
    c = _col(r)
    cm[r:r + 30, c + 4:c + 54] = 1                            # S1's upper segment, as body
    r += 30
    cm[r:r + remnant_rows, c + 16:c + 16 + remnant_cols] = 3  # the S1-S2 remnant
    cm[r + remnant_rows:r + remnant_rows + 40, c + 8:c + 64] = 2
    return cm


def test_small_lowest_body_above_a_rudimentary_disc_is_flagged_not_relabelled():
    lab = label_vertebrae(_s1_as_body(3, 20), CLASSES, 0.6)
    # names are kept (counted from the sacrum class) but every one is marked uncertain
    assert [b.level for b in lab.bodies] == ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    assert "s1_suspected" in lab.flags
    assert any("disc under the lowest body is small" in w for w in lab.warnings)
    assert all({"label_uncertain", "needs_review"} <= set(b.flags) for b in lab.bodies)


def test_full_size_lowest_body_on_a_short_small_disc_is_flagged():
    # S1 read as a whole body above an S1-S2 remnant, the sacrum segmented below it (model v3
    # on real MRI): the remnant is small (area < 0.5) and short (length < 0.8)
    cm = _s1_as_body(6, 40)
    low = np.nonzero((cm == 1).any(axis=1))[0].max()
    c = _col(low)
    cm[low - 29:low + 1, c + 4:c + 58] = 0
    cm[low - 41:low + 1, c:c + 58] = 1                        # S1 as big as a lumbar body
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert "s1_suspected" in lab.flags
    assert [b.level for b in lab.bodies][-1] == "L5"          # flagged, not relabelled


def test_remnant_just_over_half_a_disc_is_flagged():
    # SPIDER patient 142 (8-bit, through the app): S1 read as L5 over a remnant of 0.509 of a
    # lumbar disc's area and 0.769 of its length went unflagged while the limit was 0.5
    cm = _s1_as_body(8, 44)
    low = np.nonzero((cm == 1).any(axis=1))[0].max()
    c = _col(low)
    cm[low - 29:low + 1, c + 4:c + 58] = 0
    cm[low - 41:low + 1, c:c + 58] = 1
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert any("(51% of a lumbar disc's area, 76% of its length)" in w for w in lab.warnings)
    assert "s1_suspected" in lab.flags
    assert all({"label_uncertain", "needs_review"} <= set(b.flags) for b in lab.bodies)


def test_full_length_disc_beneath_keeps_the_lowest_body():
    # a thin but full-length disc (degenerated L5-S1) is not a remnant: nothing is relabelled
    lab = label_vertebrae(_s1_as_body(2, 58), CLASSES, 0.6)  # area ratio 0.17, length 1
    assert "s1_suspected" not in lab.flags
    assert [b.level for b in lab.bodies][-1] == "L5" and len(lab.bodies) == 7


def test_unsegmented_sacrum_under_a_full_disc_in_view_counts_from_that_disc():
    # real MRI: the network has no sacrum labels there and leaves S1 unsegmented
    cm, _ = _column(6, top=20, sacrum=False)
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert [b.level for b in lab.bodies] == ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert "sacrum_unsegmented" in lab.flags and "sacrum_not_visible" not in lab.flags
    assert all("label_uncertain" not in b.flags for b in lab.bodies)
    # the same grid, but the source image ends 8 mm under that disc: the sacrum is not in view
    last_disc = np.nonzero((cm == 3).any(axis=1))[0].max()
    view = np.zeros(SHAPE, bool)
    view[: last_disc + 14] = True
    lab = label_vertebrae(cm, CLASSES, 0.6, in_view=view)
    assert "sacrum_not_visible" in lab.flags and "sacrum_unsegmented" not in lab.flags
    assert all("label_uncertain" in b.flags for b in lab.bodies)


def test_unsegmented_sacrum_with_a_disc_further_down_stays_uncertain():
    # a body missed by the network between two discs: the lowest body is not L5
    cm, _ = _column(6, top=20, sacrum=False)
    rows, cols = np.nonzero(cm == 3)
    below = rows.max() + 45                     # a 25 mm gap, then another disc
    cm[below:below + DISC_H, cols.min():cols.max()] = 3
    lab = label_vertebrae(cm, CLASSES, 0.6)
    assert "sacrum_not_visible" in lab.flags and "sacrum_unsegmented" not in lab.flags


def test_body_cut_by_the_field_of_view_is_not_read_as_thoracic_sized():
    cm, _ = _column(6, top=40, heights=[38, 40, 42, 42, 42, 42], depths=[48, 52, 56, 58, 58, 58])
    body_rows = np.nonzero((cm == 1).any(axis=1))[0]
    fifth = slice(40 + 38 + DISC_H, 40 + 38 + DISC_H + 40)       # L1, fifth above the sacrum
    view = np.ones(SHAPE, bool)
    cols = np.nonzero(cm[fifth].any(axis=0))[0]
    view[: body_rows.min() + 38 + DISC_H + 40, : cols.min() + 25] = False   # anterior part cut
    cut = np.where(view, cm, 0)
    assert "transitional_anatomy" in label_vertebrae(cut, CLASSES, 0.6).flags   # looks small
    lab = label_vertebrae(cut, CLASSES, 0.6, in_view=view)
    assert "transitional_anatomy" not in lab.flags


def _s1_read_as_body(cm: np.ndarray) -> np.ndarray:
    """The same slice with the top of the sacrum read as a full-size body over a thin disc."""
    out = cm.copy()
    rows = np.nonzero((cm == 2).any(axis=1))[0]
    top = rows[0]
    out[top:top + 34][cm[top:top + 34] == 2] = 1
    out[top + 34:top + 38][cm[top + 34:top + 38] == 2] = 3
    return out


def test_slices_that_count_the_levels_differently_flag_the_names():
    """A neighbouring slice on which S1 reads as a body names every level one higher: the
    series labelling says so and puts every body up for review, whichever slice names."""
    from spineviewer.core.slices import label_series

    cm, _ = _column(6, top=40)
    odd = _s1_read_as_body(cm)
    assert len(label_vertebrae(odd, CLASSES, 0.6).bodies) == 7
    lab = label_series(np.stack([cm, odd, cm]), CLASSES, spacing_mm=0.6, centre=1)
    assert "naming_disagrees_between_slices" in lab.flags
    assert all({"label_uncertain", "needs_review"} <= set(b.flags) for b in lab.bodies)
    assert any("names the levels differently" in w for w in lab.warnings)
    # slices that agree raise nothing
    same = label_series(np.stack([cm, cm, cm]), CLASSES, spacing_mm=0.6, centre=1)
    assert "naming_disagrees_between_slices" not in same.flags
    assert not any("label_uncertain" in b.flags for b in same.bodies)


def test_slices_prepared_while_the_network_runs_label_the_same():
    """``label_series`` given each slice's `prepare_slice` (done as the network hands the
    slices on), all or some of them, gives the result it computes on its own."""
    from spineviewer.core.slices import label_series, prepare_slice

    cm, _ = _column(6, top=40)
    stack = np.stack([cm, _s1_read_as_body(cm), cm])
    stack[2][5:15, 5:25] = 1  # a stray blob off the column on one slice

    def summary(lab):
        return ([(b.level, b.position, sorted(b.track), list(b.flags)) for b in lab.bodies],
                lab.reference, lab.flags, lab.warnings)

    plain = label_series(stack, CLASSES, spacing_mm=0.6, centre=1)
    for keys in ([0, 1, 2], [0, 2], [1]):
        ready = {k: prepare_slice(stack[k], CLASSES, 0.6) for k in keys}
        assert summary(label_series(stack, CLASSES, spacing_mm=0.6, centre=1,
                                    prepared=ready)) == summary(plain), keys
    got = label_series(stack, CLASSES, spacing_mm=0.6, centre=1,
                       prepared={k: prepare_slice(stack[k], CLASSES, 0.6) for k in range(3)})
    for a, b in zip(got.bodies, plain.bodies):
        assert all(np.array_equal(a.track[p], b.track[p]) for p in a.track)


def test_names_of_a_one_or_two_slice_series_are_marked_unchecked():
    """One mid-sagittal image gives the names nothing to be checked against: every body is
    put up for review, with the study flag and a warning; a series of three is not, nor is
    the centre slice of a longer series analysed alone (the paper's mode)."""
    from spineviewer.core.slices import NAMES_UNCHECKED, label_series

    cm, _ = _column(6, top=40)
    for n in (1, 2):
        lab = label_series(np.stack([cm] * n), CLASSES, spacing_mm=0.6, centre=0)
        assert NAMES_UNCHECKED in lab.flags and len(lab.bodies) >= 6
        assert all({"label_uncertain", "needs_review"} <= set(b.flags) for b in lab.bodies)
        assert any(f"{n} slice(s) only" in w for w in lab.warnings)
    three = label_series(np.stack([cm] * 3), CLASSES, spacing_mm=0.6, centre=1)
    assert NAMES_UNCHECKED not in three.flags
    assert not any("label_uncertain" in b.flags for b in three.bodies)
    centre = label_series(cm[None], CLASSES, spacing_mm=0.6, centre=0, mode="centre",
                          series_slices=15)
    assert NAMES_UNCHECKED not in centre.flags
    assert not any("label_uncertain" in b.flags for b in centre.bodies)


def test_bodies_missing_above_the_sacrum_put_the_names_up_for_review():
    """Two lowest bodies unsegmented (their discs kept): counting up from the sacrum would
    call L3 'L5'; the gap says bodies are missing, and every name is marked uncertain."""
    from spineviewer.core.labeling import LEVELS_MISSING_GAP
    from spineviewer.core.sacral_cues import gap_to_sacrum

    cm, _ = _column(6, top=40)
    whole = label_vertebrae(cm, CLASSES, 0.6)
    assert "levels_missing" not in whole.flags
    assert not any("label_uncertain" in b.flags for b in whole.bodies)
    masks = [b.mask for b in whole.bodies]
    assert gap_to_sacrum(masks, whole.sacrum_mask) < 0.3
    holed = cm.copy()
    for b in whole.bodies[-2:]:
        holed[b.mask] = 0
    lab = label_vertebrae(holed, CLASSES, 0.6)
    assert len(lab.bodies) == 4 and lab.bodies[-1].level == "L5"   # the name is off by two...
    assert "levels_missing" in lab.flags                            # ...and says so
    gap = gap_to_sacrum([b.mask for b in lab.bodies], lab.sacrum_mask)
    assert gap >= LEVELS_MISSING_GAP and gap == pytest.approx(2.0, abs=0.3)
    assert all({"label_uncertain", "needs_review"} <= set(b.flags) for b in lab.bodies)
    assert any("levels above the sacrum" in w for w in lab.warnings)
