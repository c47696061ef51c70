"""Label assignment: golden parity with the official assigner plus hand-derived edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tadformer.assign import assign_batch, assign_targets
from tadformer.model.points import Points, make_points

LEVEL_LENGTHS = [576, 288, 144, 72, 36, 18]
STRIDES = [1, 2, 4, 8, 16, 32]
REG_RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]


def _seg(*pairs: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(pairs, dtype=torch.float32).reshape(-1, 2)


def _labels(*ids: int) -> torch.Tensor:
    return torch.tensor(ids, dtype=torch.int64)


def _level_rows(points: Points, level: int) -> slice:
    start = sum(points.level_lengths[:level])
    return slice(start, start + points.level_lengths[level])


def _positive_t(points: Points, cls_targets: torch.Tensor, level: int) -> list[float]:
    rows = _level_rows(points, level)
    assigned = cls_targets[rows].sum(-1) > 0
    return points.t_grid[rows][assigned].tolist()


@pytest.fixture(scope="module")
def golden(golden_dir: Path) -> dict[str, np.ndarray]:
    with np.load(golden_dir / "labels_assign.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def thumos_points() -> Points:
    return make_points(LEVEL_LENGTHS, STRIDES, REG_RANGES)


@pytest.fixture(scope="module")
def golden_targets(golden: dict[str, np.ndarray], thumos_points: Points) -> tuple[torch.Tensor, torch.Tensor]:
    segments = [torch.from_numpy(golden[f"video{i}/segments"]) for i in range(3)]
    labels = [torch.from_numpy(golden[f"video{i}/labels"]) for i in range(3)]
    return assign_batch(thumos_points, segments, labels, num_classes=4)


# ---------------------------------------------------------------- golden (official assigner)


def test_points_equal_golden(golden: dict[str, np.ndarray], thumos_points: Points) -> None:
    assert list(golden["level_lengths"]) == LEVEL_LENGTHS
    rows = torch.stack([thumos_points.t_grid, thumos_points.reg_range[:, 0], thumos_points.reg_range[:, 1],
                        thumos_points.stride], dim=1).numpy()
    np.testing.assert_array_equal(rows, golden["points"])


def test_targets_equal_golden(golden: dict[str, np.ndarray], golden_targets: tuple[torch.Tensor, torch.Tensor]
                              ) -> None:
    cls_targets, reg_targets = golden_targets
    assert cls_targets.dtype == torch.float32 and reg_targets.dtype == torch.float32
    np.testing.assert_array_equal(cls_targets.numpy(), golden["cls_targets"])
    assigned = cls_targets.sum(-1) > 0
    np.testing.assert_array_equal(assigned.numpy(), golden["assigned_mask"])
    at = golden["assigned_mask"]
    np.testing.assert_allclose(reg_targets.numpy()[at], golden["reg_targets"][at], rtol=0, atol=1e-6)


def test_leftover_reg_targets_equal_golden_everywhere(
    golden: dict[str, np.ndarray], golden_targets: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # beyond the required tolerance: the unassigned "leftover" values are reproduced too
    np.testing.assert_array_equal(golden_targets[1].numpy(), golden["reg_targets"])


def test_masks_and_counts_equal_golden(golden: dict[str, np.ndarray],
                                       golden_targets: tuple[torch.Tensor, torch.Tensor]) -> None:
    cls_targets = golden_targets[0]
    batched_masks = torch.from_numpy(golden["batched_masks"])[:, 0]  # [B, T]
    valid = torch.cat([batched_masks[:, :: 2**level] for level in range(6)], dim=1)
    np.testing.assert_array_equal(valid.numpy(), golden["valid_mask"])
    assigned = cls_targets.sum(-1) > 0
    pos = assigned & valid
    np.testing.assert_array_equal(pos.numpy(), golden["pos_mask"])
    assert int(assigned.sum()) == 49
    assert int(pos.sum()) == 48
    assert int((cls_targets.sum(-1) > 1).sum()) == 9


def test_golden_video0_documented_cases(golden_targets: tuple[torch.Tensor, torch.Tensor],
                                        thumos_points: Points) -> None:
    cls0, reg0 = golden_targets[0][0], golden_targets[1][0]
    t = thumos_points.t_grid
    level2 = _level_rows(thumos_points, 2)
    # [10, 30] labelled 1 and 3: multi-hot {1, 3} at t = 16, 20, 24 on level 2
    for t_val in (16.0, 20.0, 24.0):
        row = level2.start + int(t_val) // 4
        assert t[row] == t_val
        assert cls0[row].tolist() == [0.0, 1.0, 0.0, 1.0]
    # [420, 440] and [424, 444]: multi-hot at t = 432, regression from the first GT (12, 8) / 4
    row = level2.start + 432 // 4
    assert cls0[row].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert reg0[row].tolist() == [3.0, 2.0]
    # [200, 202]: only t = 201 on level 0
    assert [v for v in _positive_t(thumos_points, golden_targets[0][0], 0) if 195 <= v <= 205] == [201.0]


# ---------------------------------------------------------------- hand-derived cases


def test_no_gt_gives_zeros() -> None:
    points = make_points([8, 4], [1, 2], [(0, 4), (4, 8)])
    cls_targets, reg_targets = assign_targets(points, _seg(), _labels(), num_classes=3)
    assert cls_targets.shape == (12, 3) and reg_targets.shape == (12, 2)
    assert not cls_targets.any() and not reg_targets.any()


def test_centre_window_is_strict_and_clipped_to_gt() -> None:
    points = make_points([16], [1], [(0, 100)])
    # window [max(3 - 1.5, 2), min(3 + 1.5, 4)] = [2, 4]: t = 2 and t = 4 sit on its edge -> excluded
    cls_targets, reg_targets = assign_targets(points, _seg((2, 4)), _labels(0), num_classes=1)
    assert _positive_t(points, cls_targets, 0) == [3.0]
    assert reg_targets[3].tolist() == [1.0, 1.0]
    # GT [0, 10], centre 5: window [3.5, 6.5] -> t = 4, 5, 6 only
    cls_targets, _ = assign_targets(points, _seg((0, 10)), _labels(0), num_classes=1)
    assert _positive_t(points, cls_targets, 0) == [4.0, 5.0, 6.0]
    # the window widens with the stride: radius 1.5 * stride 2 = 3 -> window [2, 8] -> t = 4, 6
    points2 = make_points([8], [2], [(0, 100)])
    cls_targets, reg_targets = assign_targets(points2, _seg((0, 10)), _labels(0), num_classes=1)
    assert _positive_t(points2, cls_targets, 0) == [4.0, 6.0]
    assert reg_targets[2].tolist() == [2.0, 3.0]  # (4 - 0, 10 - 4) / 2


def test_center_sample_none_uses_whole_gt_strictly() -> None:
    points = make_points([16], [1], [(0, 100)])
    cls_targets, _ = assign_targets(points, _seg((0, 10)), _labels(0), num_classes=1, center_sample="none")
    assert _positive_t(points, cls_targets, 0) == [float(v) for v in range(1, 10)]


def test_regression_range_is_inclusive_at_both_ends() -> None:
    points = make_points([16, 8], [1, 2], [(0, 4), (4, 8)])
    # GT [0, 8], centre 4. Level 0 window [2.5, 5.5]: t = 3, 4, 5 have max distance 5, 4, 5 ->
    # only t = 4 (max = 4 = hi) is in range. Level 1 window [1, 7]: t = 2, 4, 6 with max 6, 4, 6,
    # all within [4, 8] (t = 4 sits exactly on lo). So t = 4 is positive on BOTH levels.
    cls_targets, reg_targets = assign_targets(points, _seg((0, 8)), _labels(2), num_classes=3)
    assert _positive_t(points, cls_targets, 0) == [4.0]
    assert _positive_t(points, cls_targets, 1) == [2.0, 4.0, 6.0]
    assert reg_targets[4].tolist() == [4.0, 4.0]
    assert reg_targets[16 + 1].tolist() == [1.0, 3.0]  # level 1, t = 2: (2, 6) / 2
    assert cls_targets[16 + 1].tolist() == [0.0, 0.0, 1.0]


def test_shortest_gt_wins_and_regresses() -> None:
    points = make_points([32], [1], [(0, 100)])
    # t = 12: candidate of [0, 24] (len 24, window [10.5, 13.5]) and [10, 14] (len 4, window [10.5, 13.5])
    cls_targets, reg_targets = assign_targets(points, _seg((0, 24), (10, 14)), _labels(0, 1), num_classes=2)
    assert cls_targets[12].tolist() == [0.0, 1.0]
    assert reg_targets[12].tolist() == [2.0, 2.0]


def test_multi_hot_tolerance_and_first_argmin() -> None:
    points = make_points([32], [1], [(0, 100)])
    # equal lengths, different boundaries: t = 12 is a candidate of both -> {0, 1}, regression of GT 0
    segs = _seg((10, 14), (11, 15))
    cls_targets, reg_targets = assign_targets(points, segs, _labels(0, 1), num_classes=3)
    assert cls_targets[12].tolist() == [1.0, 1.0, 0.0]
    assert reg_targets[12].tolist() == [2.0, 2.0]
    # same GTs listed in the other order -> regression follows the (new) first one
    cls_targets, reg_targets = assign_targets(points, segs.flip(0), _labels(1, 0), num_classes=3)
    assert reg_targets[12].tolist() == [1.0, 3.0]
    # length 4.0005 is within 1e-3 of 4 -> multi-hot; the regression comes from the strictly shorter GT
    segs = _seg((10.5, 14.50048828125), (10, 14))
    cls_targets, reg_targets = assign_targets(points, segs, _labels(2, 0), num_classes=3)
    assert cls_targets[12].tolist() == [1.0, 0.0, 1.0]
    assert reg_targets[12].tolist() == [2.0, 2.0]
    # length 4.002 is more than 1e-3 longer -> single class
    segs = _seg((10, 14.001953125), (10, 14))
    cls_targets, _ = assign_targets(points, segs, _labels(2, 0), num_classes=3)
    assert cls_targets[12].tolist() == [1.0, 0.0, 0.0]


def test_same_label_twice_stays_binary() -> None:
    points = make_points([32], [1], [(0, 100)])
    cls_targets, _ = assign_targets(points, _seg((10, 14), (10, 14)), _labels(1, 1), num_classes=2)
    assert cls_targets[12].tolist() == [0.0, 1.0]


def test_leftover_reg_targets_at_unassigned_points() -> None:
    points = make_points([8, 4], [1, 2], [(0, 4), (4, 8)])
    cls_targets, reg_targets = assign_targets(points, _seg((2, 3), (5, 7)), _labels(0, 1), num_classes=2)
    # level 1, t = 6 (row 8 + 3): unassigned -> distances to GT 0 over stride 2: (6 - 2, 3 - 6) / 2
    assert not cls_targets[11].any()
    assert reg_targets[11].tolist() == [2.0, -1.5]


def test_inputs_not_modified_and_batch_stacks() -> None:
    points = make_points([16, 8], [1, 2], [(0, 4), (4, 8)])
    segs, labels = _seg((0, 8), (3, 5)), _labels(0, 1)
    t_before, segs_before = points.t_grid.clone(), segs.clone()
    cls_b, reg_b = assign_batch(points, [segs, _seg()], [labels, _labels()], num_classes=2)
    assert torch.equal(points.t_grid, t_before) and torch.equal(segs, segs_before)
    cls_single, reg_single = assign_targets(points, segs, labels, num_classes=2)
    assert cls_b.shape == (2, 24, 2) and reg_b.shape == (2, 24, 2)
    assert torch.equal(cls_b[0], cls_single) and torch.equal(reg_b[0], reg_single)
    assert not cls_b[1].any() and not reg_b[1].any()


@pytest.mark.parametrize(
    ("segments", "labels", "kwargs", "match"),
    [
        (_seg((0, 4)), _labels(5), {}, "gt_labels must lie in"),
        (torch.zeros(3), _labels(0, 0, 0), {}, r"shape \[N, 2\]"),
        (_seg((0, 4)), _labels(0, 1), {}, r"gt_labels must have shape"),
        (_seg((0, 4)), _labels(0), {"center_sample": "circle"}, "center_sample must be one of"),
    ],
)
def test_bad_input_raises(segments: torch.Tensor, labels: torch.Tensor, kwargs: dict[str, str],
                          match: str) -> None:
    points = make_points([8], [1], [(0, 4)])
    with pytest.raises(ValueError, match=match):
        assign_targets(points, segments, labels, num_classes=2, **kwargs)  # type: ignore[arg-type]


def test_batch_error_names_the_item() -> None:
    points = make_points([8], [1], [(0, 4)])
    with pytest.raises(ValueError, match="batch item 1"):
        assign_batch(points, [_seg((0, 4)), _seg((0, 4))], [_labels(0), _labels(9)], num_classes=2)
    with pytest.raises(ValueError, match="must match one per video"):
        assign_batch(points, [_seg((0, 4))], [], num_classes=2)
