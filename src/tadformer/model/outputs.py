"""The raw output type of the detector, the same in train and eval mode."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from tadformer.model.points import Points


@dataclass
class HeadOutputs:
    """Raw per-level outputs of :class:`~tadformer.model.actionformer.ActionFormer`.

    Attributes:
        cls_logits: per level ``[B, T_l, NC]`` classification logits (before the sigmoid).
        offsets: per level ``[B, T_l, 2]`` non-negative (left, right) distances in units of the
            level stride.
        masks: per level ``[B, T_l]`` bool, True at valid (non-padded) steps.
        points: the points of every level for the padded length.
    """

    cls_logits: list[Tensor]
    offsets: list[Tensor]
    masks: list[Tensor]
    points: Points
