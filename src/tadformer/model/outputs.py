"""The raw output type of the detector, the same in train and eval mode."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from tadformer.model.points import Points


@dataclass
class HeadOutputs:
    """Raw per-level outputs of :class:`~tadformer.model.actionformer.ActionFormer`.

    Attributes:
        cls_logits: per level ``[B, T_l, NC]`` classification logits (before the sigmoid).
        offsets: per level ``[B, T_l, 2]`` non-negative (left, right) distances in units of the
            level stride, or ``[B, T_l, NC, 2]`` when the offsets are class-specific (TriDet's Trident
            head: candidate (t, c) uses ``offsets[t, c]``).
        masks: per level ``[B, T_l]`` bool, True at valid (non-padded) steps.
        points: the points of every level for the padded length.
        extras: architecture-specific raw outputs, per level, channel-last (TriDet: ``start_logits``,
            ``end_logits`` ``[B, T_l, NC]`` and ``reg_head_out`` ``[B, T_l, 2 * (num_bins + 1)]``); for
            diagnostics and tests, never needed to decode.
    """

    cls_logits: list[Tensor]
    offsets: list[Tensor]
    masks: list[Tensor]
    points: Points
    extras: dict[str, list[Tensor]] = field(default_factory=dict)
