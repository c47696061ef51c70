"""TemporalMaxer's label assignment: a SimOTA-style cost picks each positive point's regression segment.

For one video with ``V`` valid points and ``N`` ground-truth segments (TemporalMaxer's
``SimOTAAssigner``, recomputed at every training forward from the current, detached predictions):

1. **Candidates** (``pre_assign_mask [V, N]``): ActionFormer's centre-sampling rule
   (:func:`tadformer.assign.assign_targets` steps 1-3: radius ``center_radius`` strides clipped to the
   segment, strict interior, inclusive regression range, the shortest segment and those within 1e-3 of it),
   whatever ``train_cfg.center_sample`` says.
2. **Cost** ``[V, N]``: ``cls_weight * sum_c focal(logit_c, onehot(label_n)_c) + iou_weight * DIoU(pred, o)``,
   where ``o = ((t - g0) / s, (g1 - t) / s)`` are the segment's offsets from the point; ``inf`` when the
   point is outside the segment (an offset < 0; a point on a boundary is inside).
3. **Classification targets**: ``clamp(candidates_inside @ onehot(labels), 0, 1)``, i.e. ActionFormer's.
4. **Regression segment**: the argmin of the point's cost row over *all* segments, candidates or not
   (exact ties: the lowest index; all-``inf`` rows: index 0, whose targets are never read).
5. **Weights**: 1 for every valid point, except points inside some segment, which get ``confuse_weight``
   unless they are among the ``floor(keep_percent * #inside)`` cheapest points of some segment. With
   TemporalMaxer's THUMOS values (keep_percent 1, confuse_weight 0) every valid point has weight 1.

Padded points get all-zero classification targets, weight 0 and segment index 0.

Videos without any segment: TemporalMaxer's own assigner raises an ``UnboundLocalError``; here they get
zero targets and weight 1 at every valid point (they contribute negatives only, like in ActionFormer).

All arithmetic is float32 in TemporalMaxer's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from tadformer.assign import MULTI_HOT_TOLERANCE, Targets, first_argmin
from tadformer.losses import sigmoid_focal_loss
from tadformer.model.points import Points

__all__ = ["SimOTAResult", "simota_assign", "simota_batch", "simota_cost"]


@dataclass
class SimOTAResult:
    """Assignment of one video (all ``P`` points; the ``V``-row arrays cover the valid points only).

    Attributes:
        assign_matrix: ``[P, N]`` float32, 1 where the point is a centre-sampling candidate of the segment.
        min_inds: ``[P]`` int64 regression segment of every point.
        weights: ``[P]`` float32 loss weights.
        pre_assign_mask: ``[V, N]`` float32 centre-sampling candidates.
        cost: ``[V, N]`` float32 cost (``inf`` outside the segment).
        pairwise_ious: ``[V, N]`` float32 IoU of the predicted offsets with each segment (0 outside).
    """

    assign_matrix: Tensor
    min_inds: Tensor
    weights: Tensor
    pre_assign_mask: Tensor
    cost: Tensor
    pairwise_ious: Tensor


def _centre_candidates(t: Tensor, reg_range: Tensor, stride: Tensor, g0: Tensor, g1: Tensor,
                       radius: float) -> Tensor:
    """``[V, N]`` float32 centre-sampling candidates (TemporalMaxer's ``within_center``)."""
    left, right = t - g0, g1 - t
    center = 0.5 * (g0 + g1)
    window_lo = torch.maximum(center - stride * radius, g0)
    window_hi = torch.minimum(center + stride * radius, g1)
    inside = torch.minimum(t - window_lo, window_hi - t) > 0
    max_dist = torch.maximum(left, right)
    in_range = (max_dist >= reg_range[:, 0:1]) & (max_dist <= reg_range[:, 1:2])
    lens = (g1 - g0).expand(t.shape[0], g0.shape[1])
    lens = torch.where(inside & in_range, lens, torch.full_like(lens, float("inf")))
    min_len = lens.min(dim=1).values
    return ((lens <= min_len[:, None] + MULTI_HOT_TOLERANCE) & (lens < float("inf"))).to(t.dtype)


def simota_cost(t: Tensor, stride: Tensor, logits: Tensor, offsets: Tensor, gt_segments: Tensor, gt_labels: Tensor,
                iou_weight: float, cls_weight: float) -> tuple[Tensor, Tensor]:
    """SimOTA cost and IoUs of ``V`` points against ``N`` segments.

    Args:
        t: ``[V]`` point positions (grid units); stride: ``[V]`` their level strides.
        logits: ``[V, NC]`` classification logits; offsets: ``[V, 2]`` predicted (left, right) offsets
            in stride units.
        gt_segments: ``[N, 2]`` grid units; gt_labels: ``[N]`` class ids.
        iou_weight, cls_weight: weights of the DIoU and focal costs.

    Returns:
        ``cost [V, N]`` (``inf`` outside the segment) and ``pairwise_ious [V, N]`` (0 outside).
    """
    num_valid, num_gts = t.shape[0], gt_segments.shape[0]
    left = t[:, None] - gt_segments[None, :, 0]
    right = gt_segments[None, :, 1] - t[:, None]
    gt_off = torch.stack((left, right), dim=-1) / stride[:, None, None]  # [V, N, 2]
    pred = offsets.float()[:, None, :].expand(num_valid, num_gts, 2).clone()
    outside = (gt_off < 0).sum(-1) > 0  # [V, N]
    gt_off[outside] = 0.0
    pred[outside] = 0.0
    lp, rp = pred.reshape(-1, 2).unbind(-1)
    lg, rg = gt_off.reshape(-1, 2).unbind(-1)
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = (lp + rp) + (lg + rg) - inter
    ious = inter / union.clamp(min=1e-8)
    len_c = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    rho = 0.5 * (rp - lp - rg + lg)
    iou_cost = (1.0 - ious + torch.square(rho / len_c.clamp(min=1e-8))).reshape(num_valid, num_gts)
    iou_cost[outside] = float("inf")
    ious = ious.reshape(num_valid, num_gts)
    ious[outside] = 0.0
    onehot = F.one_hot(gt_labels.long(), logits.shape[-1]).float()  # [N, NC]
    cls_cost = sigmoid_focal_loss(logits.float()[:, None, :].expand(num_valid, num_gts, -1),
                                  onehot[None].expand(num_valid, num_gts, -1), reduction="none").sum(-1)
    return cls_cost * cls_weight + iou_cost * iou_weight, ious


def _weights(cost: Tensor, keep_percent: float, confuse_weight: float) -> Tensor:
    """Per-valid-point weights (TemporalMaxer's ``dynamic_k_matching``)."""
    finite = cost < float("inf")
    weights = cost.new_ones((cost.shape[0],))
    weights[finite.sum(1) > 0] = confuse_weight
    dynamic_ks = (finite.sum(0) * keep_percent).to(torch.int64)
    for n in range(cost.shape[1]):
        _, keep = torch.topk(cost[:, n], k=int(dynamic_ks[n]), largest=False)
        weights[keep] = 1.0
    return weights


@torch.no_grad()
def simota_assign(points: Points, valid: Tensor, logits: Tensor, offsets: Tensor, gt_segments: Tensor,
                  gt_labels: Tensor, center_radius: float = 2.5, iou_weight: float = 3.0, cls_weight: float = 1.0,
                  keep_percent: float = 0.65, confuse_weight: float = 0.1) -> SimOTAResult:
    """SimOTA assignment of one video (see the module docstring).

    Args:
        points: the points of all levels (``P`` rows).
        valid: ``[P]`` bool, True at valid points.
        logits: ``[P, NC]`` current classification logits; offsets: ``[P, 2]`` current offsets.
        gt_segments: ``[N, 2]`` grid units (N >= 1); gt_labels: ``[N]``.
        center_radius, iou_weight, cls_weight, keep_percent, confuse_weight: ``model.assigner``.

    Returns:
        :class:`SimOTAResult`.
    """
    if gt_segments.shape[0] == 0:
        raise ValueError("simota_assign: needs at least one ground-truth segment")
    vt, vstride, vrange = points.t_grid[valid], points.stride[valid], points.reg_range[valid]
    g0 = gt_segments[:, 0].to(vt.dtype)[None, :]
    g1 = gt_segments[:, 1].to(vt.dtype)[None, :]
    pre_assign = _centre_candidates(vt[:, None], vrange, vstride[:, None], g0, g1, center_radius)
    cost, ious = simota_cost(vt, vstride, logits[valid], offsets[valid], gt_segments.to(vt.dtype), gt_labels,
                             iou_weight, cls_weight)
    matching = (cost < float("inf")).float()
    matching[~((cost < float("inf")) & pre_assign.bool())] = 0
    num_points = valid.shape[0]
    assign_matrix = cost.new_zeros((num_points, gt_segments.shape[0]))
    assign_matrix[valid] = matching
    min_inds = torch.zeros(num_points, dtype=torch.int64, device=valid.device)
    min_inds[valid] = first_argmin(cost, cost.min(dim=1).values)
    weights = cost.new_zeros((num_points,))
    weights[valid] = _weights(cost, keep_percent, confuse_weight)
    return SimOTAResult(assign_matrix, min_inds, weights, pre_assign, cost, ious)


def simota_targets(points: Points, result: SimOTAResult, gt_segments: Tensor, gt_labels: Tensor,
                   num_classes: int) -> tuple[Tensor, Tensor]:
    """Classification ``[P, NC]`` and regression ``[P, 2]`` targets of one video from its assignment."""
    t, stride = points.t_grid[:, None], points.stride[:, None]
    left = t - gt_segments[:, 0].to(t.dtype)[None, :]
    right = gt_segments[:, 1].to(t.dtype)[None, :] - t
    onehot = F.one_hot(gt_labels.long(), num_classes).to(t.dtype)
    cls_targets = (result.assign_matrix @ onehot).clamp(min=0.0, max=1.0)
    rows = torch.arange(t.shape[0], device=t.device)
    reg_targets = torch.stack((left[rows, result.min_inds], right[rows, result.min_inds]), dim=-1) / stride
    return cls_targets, reg_targets


def simota_batch(points: Points, valid: Tensor, logits: Tensor, offsets: Tensor, gt_segments: Sequence[Tensor],
                 gt_labels: Sequence[Tensor], num_classes: int, **assigner: float) -> Targets:
    """SimOTA targets of a batch.

    Args:
        points: points of the padded batch; valid: ``[B, P]`` bool.
        logits: ``[B, P, NC]``; offsets: ``[B, P, 2]`` (detached inside).
        gt_segments, gt_labels: per video ``[N_i, 2]`` / ``[N_i]``.
        num_classes: NC.
        **assigner: the ``model.assigner`` values (see :func:`simota_assign`).

    Returns:
        :class:`~tadformer.assign.Targets` with ``[B, P]`` weights.
    """
    if len(gt_segments) != len(gt_labels) or len(gt_segments) != valid.shape[0]:
        raise ValueError(f"simota_batch: {valid.shape[0]} videos, {len(gt_segments)} segment tensors and "
                         f"{len(gt_labels)} label tensors; they must match")
    cls_list, reg_list, weight_list = [], [], []
    for b, (segs, labels) in enumerate(zip(gt_segments, gt_labels)):
        if segs.shape[0] == 0:  # TemporalMaxer crashes here; we train on the negatives
            cls_list.append(points.t_grid.new_zeros((points.t_grid.shape[0], num_classes)))
            reg_list.append(points.t_grid.new_zeros((points.t_grid.shape[0], 2)))
            weight_list.append(valid[b].to(points.t_grid.dtype))
            continue
        result = simota_assign(points, valid[b], logits[b].detach(), offsets[b].detach(), segs, labels, **assigner)
        cls_t, reg_t = simota_targets(points, result, segs, labels, num_classes)
        cls_list.append(cls_t)
        reg_list.append(reg_t)
        weight_list.append(result.weights)
    return Targets(torch.stack(cls_list), torch.stack(reg_list), torch.stack(weight_list))
