"""Training losses of ActionFormer (SPEC §5.2): sigmoid focal loss, 1-D centre-DIoU loss, the
EMA loss normaliser and the combination of both losses over a batch.

The two loss functions follow the style of ``torchvision.ops.sigmoid_focal_loss``: one function,
element-wise loss, explicit ``reduction``. They run eagerly in float32 (no TorchScript), which
matches the golden numbers best.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tadformer.model.outputs import HeadOutputs

REDUCTIONS = ("none", "mean", "sum")
LOSS_TERMS = ("cls_loss", "reg_loss", "final_loss")


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    """Apply ``reduction`` ('none' | 'mean' | 'sum') to an element-wise loss."""
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else loss.sum() * 0.0
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "sum",
) -> Tensor:
    """Sigmoid focal loss of Lin et al., "Focal Loss for Dense Object Detection" (RetinaNet).

    With ``p = sigmoid(x)``, ``ce = BCEWithLogits(x, t)`` and ``p_t = p*t + (1-p)*(1-t)``::

        loss = ce * (1 - p_t) ** gamma * (alpha*t + (1-alpha)*(1-t))

    The alpha factor is skipped when ``alpha < 0``. Computed in float32.

    Args:
        logits: any shape, raw classification scores (before the sigmoid).
        targets: same shape, targets in [0, 1] (0/1, or smoothed values).
        alpha: weight of the positive term in (0, 1); negative disables the weighting.
        gamma: focusing exponent that down-weights easy examples.
        reduction: ``'none'`` (element-wise), ``'mean'`` or ``'sum'`` (official: ``'sum'``).

    Returns:
        The loss, with the shape of ``logits`` for ``'none'``, otherwise a 0-d float32 tensor.

    Raises:
        ValueError: if the shapes differ or ``reduction`` is unknown.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"sigmoid_focal_loss: logits {tuple(logits.shape)} and targets "
                         f"{tuple(targets.shape)} must have the same shape")
    logits = logits.float()
    targets = targets.float()
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return _reduce(loss, reduction, "sigmoid_focal_loss")


def ctr_diou_loss_1d(
    pred_offsets: Tensor,
    target_offsets: Tensor,
    reduction: str = "sum",
    eps: float = 1e-8,
) -> Tensor:
    """1-D Distance-IoU loss (Zheng et al., "Distance-IoU Loss", AAAI 2020) on centre offsets.

    Both segments share the anchor point; each is given by its (left, right) distances from it.
    With ``inter = min(lp, lg) + min(rp, rg)``, ``union = (lp + rp) + (lg + rg) - inter``, the
    enclosing length ``len_c = max(lp, lg) + max(rp, rg)`` and the centre distance
    ``rho = 0.5 * (rp - lp - rg + lg)``::

        loss = 1 - inter / max(union, eps) + (rho / max(len_c, eps)) ** 2

    Computed in float32. The loss is 0 for identical segments and lies in [0, 2).

    Args:
        pred_offsets: ``[M, 2]`` predicted (left, right) distances, non-negative (any unit,
            the same as the targets; the model uses level-stride units).
        target_offsets: ``[M, 2]`` target (left, right) distances, non-negative.
        reduction: ``'none'`` (``[M]``), ``'mean'`` or ``'sum'`` (official: ``'sum'``).
        eps: lower clamp of the union and enclosing lengths.

    Returns:
        The loss, ``[M]`` for ``'none'``, otherwise a 0-d float32 tensor.

    Raises:
        ValueError: on wrong shapes, an unknown ``reduction``, or any negative offset (the
            official code asserts non-negative offsets; a negative value means a broken target
            or head).
    """
    if pred_offsets.shape != target_offsets.shape or pred_offsets.dim() != 2 or pred_offsets.shape[1] != 2:
        raise ValueError(f"ctr_diou_loss_1d: pred_offsets {tuple(pred_offsets.shape)} and target_offsets "
                         f"{tuple(target_offsets.shape)} must both have shape [M, 2]")
    pred_offsets = pred_offsets.float()
    target_offsets = target_offsets.float()
    for name, offsets in (("pred_offsets", pred_offsets), ("target_offsets", target_offsets)):
        if not bool((offsets >= 0.0).all()):
            bad = offsets[~(offsets >= 0.0)]
            raise ValueError(f"ctr_diou_loss_1d: {name} must be >= 0 everywhere, found {bad.numel()} "
                             f"negative or NaN value(s), e.g. {bad[0].item()}")
    lp, rp = pred_offsets[:, 0], pred_offsets[:, 1]
    lg, rg = target_offsets[:, 0], target_offsets[:, 1]
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = (lp + rp) + (lg + rg) - inter
    iou = inter / union.clamp(min=eps)
    len_c = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    rho = 0.5 * (rp - lp - rg + lg)
    loss = 1.0 - iou + torch.square(rho / len_c.clamp(min=eps))
    return _reduce(loss, reduction, "ctr_diou_loss_1d")


def ctr_iou_1d(pred_offsets: Tensor, target_offsets: Tensor, eps: float = 1e-8) -> Tensor:
    """1-D IoU of segments sharing their anchor point, each given by (left, right) distances.

    ``inter / max(union, eps)`` with the terms of :func:`ctr_diou_loss_1d`; ``[M]`` float32 in [0, 1].
    """
    if pred_offsets.shape != target_offsets.shape or pred_offsets.dim() != 2 or pred_offsets.shape[1] != 2:
        raise ValueError(f"ctr_iou_1d: pred_offsets {tuple(pred_offsets.shape)} and target_offsets "
                         f"{tuple(target_offsets.shape)} must both have shape [M, 2]")
    lp, rp = pred_offsets.float().unbind(-1)
    lg, rg = target_offsets.float().unbind(-1)
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = (lp + rp) + (lg + rg) - inter
    return inter / union.clamp(min=eps)


class LossNormalizer:
    """EMA of the number of positives per iteration, dividing both losses (SPEC §5.2).

    ``value <- momentum * value + (1 - momentum) * max(num_pos, 1)``, updated BEFORE the losses
    of an iteration are computed. The value is a Python float. Unlike the official code (which
    restarts it at ``init_value`` on resume), it can be stored in checkpoints through
    :meth:`state_dict` / :meth:`load_state_dict`.

    Args:
        init_value: the starting value (official ``init_loss_norm``, 100).
        momentum: EMA momentum (official 0.9).
    """

    def __init__(self, init_value: float = 100.0, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"LossNormalizer: momentum must lie in [0, 1), got {momentum}")
        if init_value <= 0:
            raise ValueError(f"LossNormalizer: init_value must be > 0, got {init_value}")
        self.value = float(init_value)
        self.momentum = float(momentum)

    def update(self, num_pos: float) -> float:
        """Fold this iteration's number of positives into the EMA and return the new value.

        ``num_pos`` is a count, or (TemporalMaxer's SimOTA weights) a sum of per-point weights.
        """
        self.value = self.momentum * self.value + (1 - self.momentum) * max(float(num_pos), 1.0)
        return self.value

    def state_dict(self) -> dict[str, float]:
        """The value and momentum, as plain floats."""
        return {"value": self.value, "momentum": self.momentum}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; raises ``ValueError`` if ``value`` is missing."""
        if "value" not in state:
            raise ValueError(f"LossNormalizer.load_state_dict: missing key 'value' "
                             f"(got keys {sorted(state)})")
        self.value = float(state["value"])
        self.momentum = float(state.get("momentum", self.momentum))

    def __repr__(self) -> str:
        return f"LossNormalizer(value={self.value!r}, momentum={self.momentum!r})"


def _check_loss_inputs(outputs: HeadOutputs, cls_targets: Tensor, reg_targets: Tensor,
                       num_classes: int, weights: Tensor | None) -> None:
    """Raise a specific ``ValueError`` when head outputs and targets do not fit together."""
    num_points = sum(int(m.shape[1]) for m in outputs.masks)
    batch = int(outputs.masks[0].shape[0]) if outputs.masks else 0
    if cls_targets.shape != (batch, num_points, num_classes):
        raise ValueError(f"compute_losses: cls_targets must have shape [B, P, NC] = "
                         f"{[batch, num_points, num_classes]}, got {list(cls_targets.shape)}")
    if reg_targets.shape != (batch, num_points, 2):
        raise ValueError(f"compute_losses: reg_targets must have shape [B, P, 2] = "
                         f"{[batch, num_points, 2]}, got {list(reg_targets.shape)}")
    if weights is not None and weights.shape != (batch, num_points):
        raise ValueError(f"compute_losses: weights must have shape [B, P] = {[batch, num_points]}, "
                         f"got {list(weights.shape)}")
    if not (len(outputs.cls_logits) == len(outputs.offsets) == len(outputs.masks)):
        raise ValueError("compute_losses: cls_logits, offsets and masks must have one entry per level")


def _regression_pairs(offsets: Tensor, cls_targets: Tensor, reg_targets: Tensor,
                      pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Predicted and target offsets of every regression term, and the positive point of each term.

    Class-agnostic offsets (``[B, P, 2]``): one term per positive point. Class-specific offsets
    (``[B, P, NC, 2]``, TriDet): one term per (positive point, target class) pair, in row-major
    (point, class) order, using that class's offsets; a point with two labels counts twice.
    """
    if offsets.dim() == 3:
        return offsets[pos], reg_targets[pos], torch.arange(int(pos.sum()), device=pos.device)
    pos_cls = cls_targets[pos]  # [Npos, NC]
    pair_point = torch.nonzero(pos_cls)[:, 0]  # [Npairs]
    return offsets[pos][pos_cls.bool()], reg_targets[pos][pair_point], pair_point


def compute_losses(
    outputs: HeadOutputs,
    cls_targets: Tensor,
    reg_targets: Tensor,
    normalizer: LossNormalizer,
    num_classes: int,
    label_smoothing: float = 0.0,
    loss_weight: float = 1.0,
    weights: Tensor | None = None,
    iou_weight_power: float | None = None,
) -> dict[str, Tensor]:
    """Focal + DIoU losses of a batch, normalised by the EMA of positives (SPEC §5.2).

    Valid points are the concatenated level masks; positives are valid points with at least one
    class target. The normaliser is updated with ``max(num_pos, 1)`` BEFORE use (side effect on
    ``normalizer``; nothing else is modified).

    The architectures' variations are data, not branches on their names:

    * ``weights`` (TemporalMaxer's SimOTA): per-point weights; the focal loss of positive points and
      the DIoU terms are multiplied by them, and the normaliser counts their sum at the positives.
    * class-specific offsets ``[B, T_l, NC, 2]`` (TriDet's Trident head): one DIoU term per (positive
      point, target class), with that class's offsets.
    * ``iou_weight_power`` (TriDet): the focal loss of each (positive point, target class) entry is
      multiplied by ``IoU ** p`` of that pair's offsets. The weight is not detached (TriDet trains its
      centre and boundary heads through it), and, as in TriDet, it is computed as
      ``(1 - (1 - IoU)) ** p``.

    Args:
        outputs: raw head outputs (per level ``[B, T_l, NC]`` logits, ``[B, T_l, 2]`` or
            ``[B, T_l, NC, 2]`` offsets, ``[B, T_l]`` masks).
        cls_targets: ``[B, P, NC]`` 0/1 targets from :func:`tadformer.assign.assign_batch`.
        reg_targets: ``[B, P, 2]`` offsets in level-stride units (read at positives only).
        normalizer: the loss normaliser, updated in place.
        num_classes: number of classes ``NC`` (label smoothing divides by ``NC + 1``, as the
            official code does).
        label_smoothing: ``eps``; targets become ``t * (1 - eps) + eps / (NC + 1)``.
        loss_weight: weight of the regression loss; ``<= 0`` selects the official auto-balance
            ``cls.detach() / max(reg.item(), 0.01)``.
        weights: optional ``[B, P]`` per-point weights (None: all 1).
        iou_weight_power: optional exponent of the IoU weight of the positive focal-loss entries.

    Returns:
        ``{'cls_loss', 'reg_loss', 'final_loss'}`` 0-d float32 tensors (``final = cls + w*reg``),
        ``'num_pos'`` (0-d int64, positive points) and ``'num_pos_weighted'`` (0-d float64, what the
        normaliser counted: ``num_pos``, or the weight sum at the positives).

    Raises:
        ValueError: on mismatched shapes, or negative predicted offsets at positive points.
    """
    _check_loss_inputs(outputs, cls_targets, reg_targets, num_classes, weights)
    valid = torch.cat(outputs.masks, dim=1)  # [B, P]
    pos = (cls_targets.sum(dim=-1) > 0) & valid  # [B, P]
    num_pos = int(pos.sum().item())
    pred_offsets, gt_offsets, pair_point = _regression_pairs(
        torch.cat(outputs.offsets, dim=1), cls_targets, reg_targets, pos)
    pos_weights = weights[pos] if weights is not None else None  # [Npos]
    counted = float(pos_weights.sum().item()) if pos_weights is not None else float(num_pos)
    norm = normalizer.update(counted)

    # classification: every valid point and class, optional label smoothing
    target = cls_targets[valid]
    target = target * (1 - label_smoothing) + label_smoothing / (num_classes + 1)
    logits = torch.cat(outputs.cls_logits, dim=1)[valid]
    if weights is None and iou_weight_power is None:
        cls_loss = sigmoid_focal_loss(logits, target, reduction="sum") / norm
    else:
        per_entry = sigmoid_focal_loss(logits, target, reduction="none")  # [V, NC]
        if pos_weights is not None:
            point_weights = torch.ones_like(valid, dtype=per_entry.dtype)
            point_weights[pos] = pos_weights.to(per_entry.dtype)
            per_entry = per_entry * point_weights[valid][:, None]
        if iou_weight_power is not None and pred_offsets.shape[0] > 0:
            one_minus_iou = 1.0 - ctr_iou_1d(pred_offsets, gt_offsets)
            rated = target > label_smoothing / (num_classes + 1)  # the (positive point, target class) entries
            per_entry[rated] *= (1 - one_minus_iou) ** iou_weight_power
        cls_loss = per_entry.sum() / norm

    # regression: positives only; with none, a zero that still has a (zero) gradient
    if num_pos == 0:
        reg_loss = 0 * pred_offsets.sum()
    elif pos_weights is None:
        reg_loss = ctr_diou_loss_1d(pred_offsets, gt_offsets, reduction="sum") / norm
    else:
        terms = ctr_diou_loss_1d(pred_offsets, gt_offsets, reduction="none")
        reg_loss = (terms * pos_weights[pair_point].to(terms.dtype)).sum() / norm

    weight = loss_weight if loss_weight > 0 else cls_loss.detach() / max(reg_loss.item(), 0.01)
    final_loss = cls_loss + reg_loss * weight
    return {
        "cls_loss": cls_loss,
        "reg_loss": reg_loss,
        "final_loss": final_loss,
        "num_pos": torch.tensor(num_pos, dtype=torch.int64, device=valid.device),
        "num_pos_weighted": torch.tensor(counted, dtype=torch.float64, device=valid.device),
    }


def check_finite(losses: dict[str, Tensor]) -> str | None:
    """Name of the first non-finite loss term (cls, reg, final order), or None if all are finite."""
    for name in LOSS_TERMS:
        if name in losses and not bool(torch.isfinite(losses[name]).all()):
            return name
    return None
