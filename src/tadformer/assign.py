"""Label assignment: which pyramid points are positives for which ground-truth segments.

A pure port of the official ``label_points_single_video`` (SPEC §5.1), written as a documented
``[P, N]`` matrix computation (P points of all levels, N ground-truth segments of one video):

1. **Centre sampling** (``'radius'``): the pair (point ``t``, GT ``[g0, g1]``) is a candidate when
   ``t`` lies *strictly* inside the window ``[max(c - r*s, g0), min(c + r*s, g1)]``, where
   ``c = (g0 + g1) / 2``, ``s`` is the point's stride and ``r`` the radius (1.5). With
   ``center_sample='none'`` the window is the GT itself (still strict).
2. **Regression range**: with ``m = max(t - g0, g1 - t)`` the pair is in range when
   ``lo <= m <= hi`` (inclusive at both ends, so neighbouring levels overlap at 4, 8, 16, ...).
3. **Shortest GT wins**: among candidates in range, the GT with the smallest length is chosen
   (first minimum for the regression target); every GT whose length is within ``1e-3`` of that
   minimum contributes its class, which yields multi-hot classification targets.
4. Regression targets are ``(t - g0, g1 - t) / s`` of the chosen GT.

All arithmetic is float32 in the official order, so the results are bit-identical to the
official ones, including the "leftover" regression targets at unassigned points (the distances
to GT number 0 divided by the stride, possibly negative). Those values are meaningless and the
loss never reads them, but reproducing them lets tests compare the whole array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tadformer.model.points import Points

# Lengths within this many grid units of the shortest candidate GT also give their class.
MULTI_HOT_TOLERANCE = 1e-3
CENTER_SAMPLE_MODES = ("radius", "none")


@dataclass
class Targets:
    """Training targets of a batch (points of all levels concatenated, ``P`` rows per video).

    Attributes:
        cls_targets: ``[B, P, NC]`` float32 0/1 (multi-hot where segments tie).
        reg_targets: ``[B, P, 2]`` float32 (left, right) offsets in level-stride units (read at positives).
        weights: optional ``[B, P]`` per-point loss weights (TemporalMaxer's SimOTA); None means 1.
    """

    cls_targets: Tensor
    reg_targets: Tensor
    weights: Tensor | None = None


def _check_gt(points: Points, gt_segments_grid: Tensor, gt_labels: Tensor, num_classes: int,
              center_sample: str) -> None:
    """Raise a specific ``ValueError`` for malformed inputs of :func:`assign_targets`."""
    if center_sample not in CENTER_SAMPLE_MODES:
        raise ValueError(f"assign_targets: center_sample must be one of {CENTER_SAMPLE_MODES}, "
                         f"got {center_sample!r}")
    if gt_segments_grid.dim() != 2 or gt_segments_grid.shape[1] != 2:
        raise ValueError(f"assign_targets: gt_segments_grid must have shape [N, 2], "
                         f"got {tuple(gt_segments_grid.shape)}")
    if gt_labels.dim() != 1 or gt_labels.shape[0] != gt_segments_grid.shape[0]:
        raise ValueError(f"assign_targets: gt_labels must have shape [N] = [{gt_segments_grid.shape[0]}], "
                         f"got {tuple(gt_labels.shape)}")
    if gt_labels.numel() > 0 and (int(gt_labels.min()) < 0 or int(gt_labels.max()) >= num_classes):
        raise ValueError(f"assign_targets: gt_labels must lie in [0, {num_classes - 1}], got values in "
                         f"[{int(gt_labels.min())}, {int(gt_labels.max())}]")
    if points.t_grid.dim() != 1 or points.reg_range.shape != (points.t_grid.shape[0], 2):
        raise ValueError("assign_targets: points.t_grid must be [P] and points.reg_range [P, 2]")


def first_argmin(values: Tensor, min_values: Tensor) -> Tensor:
    """Index of the FIRST minimum along dim 1 (0 for all-inf rows), on every device.

    ``Tensor.min(dim)`` does not promise the first index on all backends, so it is made explicit.
    """
    num_cols = values.shape[1]
    cols = torch.arange(num_cols, device=values.device).expand_as(values)
    at_min = values == min_values[:, None]
    return torch.where(at_min, cols, torch.full_like(cols, num_cols)).min(dim=1).values


def assign_targets(
    points: Points,
    gt_segments_grid: Tensor,
    gt_labels: Tensor,
    num_classes: int,
    center_sample: str = "radius",
    center_sample_radius: float = 1.5,
) -> tuple[Tensor, Tensor]:
    """Classification and regression targets of every point for one video (SPEC §5.1).

    Targets are computed for every point, padded ones included; the loss masks them later.

    Args:
        points: the points of all levels (``P`` rows, level order) for the padded length.
        gt_segments_grid: ``[N, 2]`` float GT (start, end) in grid units (after truncation).
        gt_labels: ``[N]`` int64 class ids in ``[0, num_classes)``.
        num_classes: number of classes ``NC``.
        center_sample: ``'radius'`` (official default) or ``'none'`` (the whole GT is the window).
        center_sample_radius: half-width of the centre window in units of the point's stride.

    Returns:
        ``cls_targets`` ``[P, NC]`` float32 0/1 (multi-hot where GTs tie within 1e-3 grid units)
        and ``reg_targets`` ``[P, 2]`` float32 (left, right) distances in units of the point's
        stride. Unassigned points hold the official leftover values (distances to GT 0); with
        ``N = 0`` both outputs are zeros.

    Raises:
        ValueError: on malformed shapes, out-of-range labels or an unknown ``center_sample``.
    """
    _check_gt(points, gt_segments_grid, gt_labels, num_classes, center_sample)
    t = points.t_grid[:, None]  # [P, 1]
    stride = points.stride[:, None]  # [P, 1]
    num_points, num_gts = t.shape[0], gt_segments_grid.shape[0]
    dtype = points.t_grid.dtype
    if num_gts == 0:
        return (t.new_zeros((num_points, num_classes)), t.new_zeros((num_points, 2)))

    g0 = gt_segments_grid[:, 0].to(dtype)[None, :]  # [1, N]
    g1 = gt_segments_grid[:, 1].to(dtype)[None, :]  # [1, N]
    left = t - g0  # [P, N]
    right = g1 - t  # [P, N]

    # 1. centre sampling: strictly inside the window clipped to the GT
    if center_sample == "radius":
        center = 0.5 * (g0 + g1)
        window_lo = torch.maximum(center - stride * center_sample_radius, g0)
        window_hi = torch.minimum(center + stride * center_sample_radius, g1)
        inside = torch.minimum(t - window_lo, window_hi - t) > 0
    else:
        inside = torch.minimum(left, right) > 0

    # 2. regression range, inclusive at both ends
    max_dist = torch.maximum(left, right)
    in_range = (max_dist >= points.reg_range[:, 0:1]) & (max_dist <= points.reg_range[:, 1:2])

    # 3. shortest candidate GT; lengths of non-candidates become +inf
    gt_len = (g1 - g0).expand(num_points, num_gts)
    inf = torch.full_like(gt_len, float("inf"))
    cand_len = torch.where(inside & in_range, gt_len, inf)
    min_len = cand_len.min(dim=1).values  # [P]
    chosen = first_argmin(cand_len, min_len)  # [P]
    multi_hot = (cand_len <= min_len[:, None] + MULTI_HOT_TOLERANCE) & (cand_len < float("inf"))
    one_hot = torch.nn.functional.one_hot(gt_labels.long(), num_classes).to(dtype)  # [N, NC]
    cls_targets = (multi_hot.to(dtype) @ one_hot).clamp(min=0.0, max=1.0)

    # 4. regression target of the chosen GT, in units of the point's stride
    rows = torch.arange(num_points, device=t.device)
    reg_targets = torch.stack((left[rows, chosen], right[rows, chosen]), dim=-1) / stride
    return cls_targets, reg_targets


def assign_batch(
    points: Points,
    gt_segments: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    num_classes: int,
    center_sample: str = "radius",
    center_sample_radius: float = 1.5,
) -> tuple[Tensor, Tensor]:
    """:func:`assign_targets` for every video of a batch, stacked.

    Args:
        points: the points of the padded batch (shared by all videos).
        gt_segments: per video ``[N_i, 2]`` GT in grid units.
        gt_labels: per video ``[N_i]`` class ids.
        num_classes: number of classes ``NC``.
        center_sample: see :func:`assign_targets`.
        center_sample_radius: see :func:`assign_targets`.

    Returns:
        ``cls_targets`` ``[B, P, NC]`` and ``reg_targets`` ``[B, P, 2]`` (float32).

    Raises:
        ValueError: if the two lists differ in length or are empty, or on a malformed video
            (the message names the batch index).
    """
    if len(gt_segments) != len(gt_labels):
        raise ValueError(f"assign_batch: got {len(gt_segments)} segment tensors but {len(gt_labels)} "
                         f"label tensors; they must match one per video")
    if len(gt_segments) == 0:
        raise ValueError("assign_batch: the batch is empty (no videos)")
    cls_list, reg_list = [], []
    for index, (segments, labels) in enumerate(zip(gt_segments, gt_labels)):
        try:
            cls_targets, reg_targets = assign_targets(points, segments, labels, num_classes,
                                                      center_sample, center_sample_radius)
        except ValueError as err:
            raise ValueError(f"batch item {index}: {err}") from err
        cls_list.append(cls_targets)
        reg_list.append(reg_targets)
    return torch.stack(cls_list), torch.stack(reg_list)


def centre_sampling_targets(points: Points, gt_segments: Sequence[Tensor], gt_labels: Sequence[Tensor],
                            num_classes: int, center_sample: str = "radius",
                            center_sample_radius: float = 1.5) -> Targets:
    """:func:`assign_batch` wrapped as :class:`Targets` (ActionFormer's and TriDet's assignment)."""
    cls_targets, reg_targets = assign_batch(points, gt_segments, gt_labels, num_classes, center_sample,
                                            center_sample_radius)
    return Targets(cls_targets, reg_targets)
