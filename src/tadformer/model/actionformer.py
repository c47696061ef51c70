"""The ActionFormer detector: backbone -> neck -> shared heads (port of ``PtTransformer.forward``).

Batching/padding, label assignment, losses and decoding live outside the model; ``forward`` returns
the raw :class:`HeadOutputs` in train and eval mode alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tadformer.model.outputs import HeadOutputs
from tadformer.model.points import make_points


def max_div_factor(strides: Sequence[int], mha_win_sizes: Sequence[int]) -> int:
    """Padding multiple needed by the pyramid: max over levels of ``s_l * (w_l // 2) * 2`` (or ``s_l``).

    For THUMOS (strides 1..32, window 19) this is 32 * 18 = 576.
    """
    return max(s * (w // 2) * 2 if w > 1 else s for s, w in zip(strides, mha_win_sizes))


def win_sizes(value: int | Sequence[int], n_levels: int, key: str = "model.n_mha_win_size") -> list[int]:
    """Window per backbone level (attention, or TriDet's SGP with ``key="model.n_sgp_win_size"``): an int is
    repeated, a list must have one entry per level."""
    if isinstance(value, int):
        return [value] * n_levels
    sizes = [int(w) for w in value]
    if len(sizes) != n_levels:
        raise ValueError(f"{key}: expected an int or {n_levels} values (one per level), got {sizes}")
    return sizes


class ActionFormer(nn.Module):
    """Anchor-free temporal action localiser.

    Submodules are registered as ``backbone``, ``neck``, ``cls_head``, ``reg_head`` (the official
    names, so official state dicts load once their ``module.`` prefix is stripped).

    Args:
        backbone: maps ``([B, C, T], [B, 1, T])`` to per-level features and masks.
        neck: maps per-level features/masks to per-level features/masks.
        cls_head: per-level ``[B, NC, T_l]`` logits.
        reg_head: per-level ``[B, 2, T_l]`` offsets.
        strides: stride of each output level on the level-0 grid (1, 2, 4, ...).
        regression_range: (lo, hi) per level in grid units.
        pad_multiple: inputs longer than max_seq_len must be padded to a multiple of this
            (the official ``max_div_factor``, see :func:`max_div_factor`); informational.

    Example:
        >>> model = build_model(cfg)
        >>> out = model(feats, mask)  # feats [B, C, T_pad], mask [B, T_pad] bool
        >>> out.cls_logits[0].shape   # [B, T_pad, NC]
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, cls_head: nn.Module, reg_head: nn.Module,
                 strides: Sequence[int], regression_range: Sequence[tuple[float, float]],
                 pad_multiple: int = 1) -> None:
        super().__init__()
        if len(strides) != len(regression_range):
            raise ValueError(f"ActionFormer: {len(strides)} strides but {len(regression_range)} "
                             f"regression ranges; they must match the number of pyramid levels")
        self.backbone = backbone
        self.neck = neck
        self.cls_head = cls_head
        self.reg_head = reg_head
        self.strides = tuple(int(s) for s in strides)
        self.regression_range = tuple((float(lo), float(hi)) for lo, hi in regression_range)
        self.pad_multiple = int(pad_multiple)

    # ------------------------------------------------------------------ training strategy
    # What an architecture changes in training is expressed by these two members, which the engine calls for
    # every model alike (``engine.step.batch_losses``): no code outside the model asks for the architecture.

    def assign(self, outputs: HeadOutputs, gt_segments: Sequence[Tensor], gt_labels: Sequence[Tensor],
               num_classes: int, train_cfg: Any) -> Any:
        """Training targets of a batch: ActionFormer's centre sampling (``train_cfg.center_sample``,
        ``center_sample_radius``). Returns :class:`tadformer.assign.Targets`."""
        from tadformer.assign import centre_sampling_targets

        return centre_sampling_targets(outputs.points, gt_segments, gt_labels, num_classes,
                                       train_cfg.center_sample, train_cfg.center_sample_radius)

    @property
    def loss_options(self) -> dict[str, Any]:
        """Extra keyword arguments of :func:`tadformer.losses.compute_losses` (none for ActionFormer)."""
        return {}

    def forward_features(self, feats: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Backbone + neck only.

        Args:
            feats: ``[B, C, T]`` padded features.
            mask: ``[B, T]`` bool, True at valid steps.

        Returns:
            per-level neck features ``[B, D, T_l]`` and masks ``[B, 1, T_l]``.
        """
        if feats.dim() != 3 or mask.dim() != 2 or mask.shape != (feats.shape[0], feats.shape[2]):
            raise ValueError(f"ActionFormer: expected feats [B, C, T] and mask [B, T], got "
                             f"{list(feats.shape)} and {list(mask.shape)}")
        if mask.dtype != torch.bool:
            raise ValueError(f"ActionFormer: mask must be bool, got {mask.dtype}")
        bb_feats, bb_masks = self.backbone(feats, mask[:, None, :])
        return self.neck(bb_feats, bb_masks)

    def forward(self, feats: Tensor, mask: Tensor) -> HeadOutputs:
        """Run the detector.

        Args:
            feats: ``[B, C, T]`` padded features (T divisible by the max div factor, e.g. 576).
            mask: ``[B, T]`` bool, True at valid steps.

        Returns:
            :class:`HeadOutputs` with per-level logits ``[B, T_l, NC]``, offsets ``[B, T_l, 2]``
            (stride units), masks ``[B, T_l]`` and the points of the padded length.
        """
        fpn_feats, fpn_masks = self.forward_features(feats, mask)
        if len(fpn_feats) != len(self.strides):
            raise ValueError(f"ActionFormer: neck gave {len(fpn_feats)} levels, expected {len(self.strides)}")
        logits = self.cls_head(fpn_feats, fpn_masks)
        offsets = self.reg_head(fpn_feats, fpn_masks)
        points = make_points([f.shape[-1] for f in fpn_feats], self.strides, self.regression_range,
                             device=feats.device)
        return HeadOutputs(
            cls_logits=[x.permute(0, 2, 1) for x in logits],  # [B, NC, T_l] -> [B, T_l, NC]
            offsets=[x.permute(0, 2, 1) for x in offsets],  # [B, 2, T_l] -> [B, T_l, 2]
            masks=[m.squeeze(1) for m in fpn_masks],  # [B, 1, T_l] -> [B, T_l]
            points=points,
        )
