"""TemporalMaxer's SimOTA assignment against ``temporalmaxer_train_step.npz`` (step 1 and ``assign_case``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tadformer.assign import assign_targets
from tadformer.assign_simota import simota_assign, simota_batch, simota_targets
from tadformer.model.points import make_points
from variants_golden import npz, three_steps

CASE = "temporalmaxer"
STRIDES = [1, 2, 4, 8, 16, 32]
RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]
ASSIGNER = {"center_radius": 1.5, "iou_weight": 2.0, "cls_weight": 1.0, "keep_percent": 1.0, "confuse_weight": 0.0}


def _close_with_inf(got: torch.Tensor, want: np.ndarray) -> None:
    want_t = torch.from_numpy(want)
    assert torch.equal(torch.isinf(got), torch.isinf(want_t))  # inf positions exact
    finite = ~torch.isinf(want_t)
    torch.testing.assert_close(got[finite], want_t[finite], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("video", [0, 1])
def test_step1_simota_matrices(video: int) -> None:
    steps = npz(f"{CASE}_train_step")
    run = three_steps(CASE)
    out = run["step1"]["outputs"]
    valid = torch.cat(out.masks, dim=1)[video]
    batch_segs = torch.from_numpy(npz("inputs")[f"train/step1/video{video}/segments"])
    batch_labels = torch.from_numpy(npz("inputs")[f"train/step1/video{video}/labels"])
    res = simota_assign(out.points, valid, torch.cat(out.cls_logits, 1)[video], torch.cat(out.offsets, 1)[video],
                        batch_segs, batch_labels, **ASSIGNER)
    pre = f"step1/simota/video{video}"
    assert torch.equal(res.pre_assign_mask, torch.from_numpy(steps[f"{pre}/pre_assign_mask"]))
    _close_with_inf(res.cost, steps[f"{pre}/cost"])
    torch.testing.assert_close(res.pairwise_ious, torch.from_numpy(steps[f"{pre}/pairwise_ious"]),
                               atol=1e-6, rtol=1e-5)
    assert torch.equal(res.min_inds[valid], torch.from_numpy(steps[f"{pre}/min_inds"]))


def test_step1_targets() -> None:
    steps = npz(f"{CASE}_train_step")
    run = three_steps(CASE)
    targets, out = run["step1"]["targets"], run["step1"]["outputs"]
    valid = torch.cat(out.masks, dim=1)
    pos = (targets.cls_targets.sum(-1) > 0) & valid
    assert torch.equal(valid, torch.from_numpy(steps["step1/targets/valid_mask"]))
    assert torch.equal(pos, torch.from_numpy(steps["step1/targets/pos_mask"]))
    assert int(pos.sum()) == 39
    assert torch.equal(targets.cls_targets, torch.from_numpy(steps["step1/targets/cls_targets"]))
    torch.testing.assert_close(targets.reg_targets[pos], torch.from_numpy(steps["step1/targets/reg_targets"])[pos],
                               atol=1e-6, rtol=1e-5)
    assert torch.equal(targets.weights, torch.from_numpy(steps["step1/targets/weights"]))
    # 6 positives regress another segment than ActionFormer's shortest-segment rule would pick
    differs = torch.from_numpy(steps["step1/targets/reg_target_differs_from_min_length_rule"])
    assert int(differs.sum()) == 6
    for b in range(2):
        segs = torch.from_numpy(npz("inputs")[f"train/step1/video{b}/segments"])
        labels = torch.from_numpy(npz("inputs")[f"train/step1/video{b}/labels"])
        cls_af, reg_af = assign_targets(out.points, segs, labels, 4)
        assert torch.equal(cls_af[valid[b]], targets.cls_targets[b][valid[b]])  # same classification targets
        changed = (reg_af != targets.reg_targets[b]).any(-1) & pos[b]
        assert torch.equal(changed, differs[b])


def test_crafted_assign_case() -> None:
    case = {k.split("/", 1)[1]: torch.from_numpy(v) for k, v in npz(f"{CASE}_train_step").items()
            if k.startswith("assign_case/")}
    points = make_points([576, 288, 144, 72, 36, 18], STRIDES, RANGES)
    got_points = torch.stack([points.t_grid, points.reg_range[:, 0], points.reg_range[:, 1], points.stride], -1)
    assert torch.equal(got_points, case["points"])
    valid = case["valid_mask"]
    res = simota_assign(points, valid, case["cls_logits"], case["offsets"], case["segments"], case["labels"],
                        **ASSIGNER)
    assert torch.equal(res.assign_matrix, case["assign_matrix"])
    assert torch.equal(res.min_inds, case["min_inds"])
    assert torch.equal(res.weights, case["weights"])
    cls_t, reg_t = simota_targets(points, res, case["segments"], case["labels"], 4)
    pos = (cls_t.sum(-1) > 0) & valid
    assert torch.equal(pos, case["pos_mask"]) and int(pos.sum()) == 20
    assert torch.equal(cls_t, case["cls_targets"])
    torch.testing.assert_close(reg_t[pos], case["reg_targets"][pos], atol=1e-6, rtol=1e-5)
    # what the case is about (README): t = 104 at stride 1 regresses segment 1 (24, 36), not segment 0 (4, 4)
    row = int(torch.nonzero((points.t_grid == 104) & (points.stride == 1))[0])
    assert int(res.min_inds[row]) == 1 and reg_t[row].tolist() == [24.0, 36.0]
    _, af_reg = assign_targets(points, case["segments"], case["labels"], 4)
    torch.testing.assert_close(af_reg[pos], case["min_length_rule_reg_targets"][pos], atol=1e-6, rtol=1e-5)
    assert int(case["reg_target_differs_from_min_length_rule"].sum()) == 4


def test_weights_keep_percent_and_confuse_weight() -> None:
    """keep_percent < 1: only the cheapest inside points of each segment keep weight 1."""
    points = make_points([8], [1], [(0, 100)])
    valid = torch.ones(8, dtype=torch.bool)
    logits = torch.zeros(8, 2)
    offsets = torch.tensor([[t - 1.0, 6.0 - t] for t in range(8)]).clamp(min=0)  # perfect for [1, 6]
    offsets[3] = torch.tensor([5.0, 5.0])  # a bad prediction: higher cost
    res = simota_assign(points, valid, logits, offsets, torch.tensor([[1.0, 6.0]]), torch.tensor([1]),
                        center_radius=10, iou_weight=3.0, cls_weight=1.0, keep_percent=0.5, confuse_weight=0.1)
    inside = [1, 2, 3, 4, 5, 6]
    assert torch.isinf(res.cost[[0, 7], 0]).all() and torch.isfinite(res.cost[inside, 0]).all()
    # 6 inside points, k = 3 cheapest kept at 1, the others inside get 0.1, outside points keep 1
    assert res.weights[[0, 7]].tolist() == [1.0, 1.0]
    assert sorted(res.weights[inside].tolist()) == pytest.approx([0.1, 0.1, 0.1, 1.0, 1.0, 1.0])
    assert float(res.weights[3]) == pytest.approx(0.1)


def test_video_without_segments_gets_negatives_only() -> None:
    """TemporalMaxer's assigner crashes on such an item; tadformer trains on its negatives."""
    points = make_points([8, 4], [1, 2], [(0, 4), (4, 100)])
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, 6:8] = False
    t = simota_batch(points, valid, torch.zeros(2, 12, 3), torch.ones(2, 12, 2),
                     [torch.zeros(0, 2), torch.tensor([[2.0, 6.0]])], [torch.zeros(0, dtype=torch.int64),
                                                                       torch.tensor([2])], 3, **ASSIGNER)
    assert t.cls_targets[0].sum() == 0 and t.weights is not None and t.weights[0].sum() == 12
    assert t.weights[1, 6:8].tolist() == [0.0, 0.0] and t.cls_targets[1, :, 2].sum() > 0
    with pytest.raises(ValueError, match="at least one"):
        simota_assign(points, valid[0], torch.zeros(12, 3), torch.ones(12, 2), torch.zeros(0, 2),
                      torch.zeros(0, dtype=torch.int64))
