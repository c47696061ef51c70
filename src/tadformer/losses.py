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

    def update(self, num_pos: int) -> float:
        """Fold this iteration's number of positives into the EMA and return the new value."""
        self.value = self.momentum * self.value + (1 - self.momentum) * max(int(num_pos), 1)
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
                       num_classes: int) -> None:
    """Raise a specific ``ValueError`` when head outputs and targets do not fit together."""
    num_points = sum(int(m.shape[1]) for m in outputs.masks)
    batch = int(outputs.masks[0].shape[0]) if outputs.masks else 0
    if cls_targets.shape != (batch, num_points, num_classes):
        raise ValueError(f"compute_losses: cls_targets must have shape [B, P, NC] = "
                         f"{[batch, num_points, num_classes]}, got {list(cls_targets.shape)}")
    if reg_targets.shape != (batch, num_points, 2):
        raise ValueError(f"compute_losses: reg_targets must have shape [B, P, 2] = "
                         f"{[batch, num_points, 2]}, got {list(reg_targets.shape)}")
    if not (len(outputs.cls_logits) == len(outputs.offsets) == len(outputs.masks)):
        raise ValueError("compute_losses: cls_logits, offsets and masks must have one entry per level")


def compute_losses(
    outputs: HeadOutputs,
    cls_targets: Tensor,
    reg_targets: Tensor,
    normalizer: LossNormalizer,
    num_classes: int,
    label_smoothing: float = 0.0,
    loss_weight: float = 1.0,
) -> dict[str, Tensor]:
    """Focal + DIoU losses of a batch, normalised by the EMA of positives (SPEC §5.2).

    Valid points are the concatenated level masks; positives are valid points with at least one
    class target. The normaliser is updated with ``max(num_pos, 1)`` BEFORE use (side effect on
    ``normalizer``; nothing else is modified).

    Args:
        outputs: raw head outputs (per level ``[B, T_l, NC]`` logits, ``[B, T_l, 2]`` offsets,
            ``[B, T_l]`` masks).
        cls_targets: ``[B, P, NC]`` 0/1 targets from :func:`tadformer.assign.assign_batch`.
        reg_targets: ``[B, P, 2]`` offsets in level-stride units (read at positives only).
        normalizer: the loss normaliser, updated in place.
        num_classes: number of classes ``NC`` (label smoothing divides by ``NC + 1``, as the
            official code does).
        label_smoothing: ``eps``; targets become ``t * (1 - eps) + eps / (NC + 1)``.
        loss_weight: weight of the regression loss; ``<= 0`` selects the official auto-balance
            ``cls.detach() / max(reg.item(), 0.01)``.

    Returns:
        ``{'cls_loss', 'reg_loss', 'final_loss'}`` 0-d float32 tensors (``final = cls + w*reg``)
        and ``'num_pos'``, a 0-d int64 tensor.

    Raises:
        ValueError: on mismatched shapes, or negative predicted offsets at positive points.
    """
    _check_loss_inputs(outputs, cls_targets, reg_targets, num_classes)
    valid = torch.cat(outputs.masks, dim=1)  # [B, P]
    pos = (cls_targets.sum(dim=-1) > 0) & valid  # [B, P]
    num_pos = int(pos.sum().item())
    norm = normalizer.update(num_pos)

    # classification: every valid point and class, optional label smoothing
    target = cls_targets[valid]
    target = target * (1 - label_smoothing) + label_smoothing / (num_classes + 1)
    logits = torch.cat(outputs.cls_logits, dim=1)[valid]
    cls_loss = sigmoid_focal_loss(logits, target, reduction="sum") / norm

    # regression: positives only; with none, a zero that still has a (zero) gradient
    pred_offsets = torch.cat(outputs.offsets, dim=1)[pos]
    if num_pos == 0:
        reg_loss = 0 * pred_offsets.sum()
    else:
        reg_loss = ctr_diou_loss_1d(pred_offsets, reg_targets[pos], reduction="sum") / norm

    weight = loss_weight if loss_weight > 0 else cls_loss.detach() / max(reg_loss.item(), 0.01)
    final_loss = cls_loss + reg_loss * weight
    return {
        "cls_loss": cls_loss,
        "reg_loss": reg_loss,
        "final_loss": final_loss,
        "num_pos": torch.tensor(num_pos, dtype=torch.int64, device=valid.device),
    }


def check_finite(losses: dict[str, Tensor]) -> str | None:
    """Name of the first non-finite loss term (cls, reg, final order), or None if all are finite."""
    for name in LOSS_TERMS:
        if name in losses and not bool(torch.isfinite(losses[name]).all()):
            return name
    return None
