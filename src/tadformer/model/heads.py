"""Classification and regression heads, shared over pyramid levels.

Ports of the official ``PtTransformerClsHead`` and ``PtTransformerRegHead``: a tower of
``num_layers - 1`` masked convs, each followed by LayerNorm (or identity) and ReLU *after* the
masking, then a masked output conv. Attribute names: ``head``, ``norm``, ``cls_head``; ``head``,
``norm``, ``scale``, ``offset_head``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from tadformer.model.layers import ChannelLayerNorm, MaskedConv1d, Scale, prior_bias

EMPTY_CLASS_PRIOR = 1e-6  # prior of classes listed in empty_cls (official value)


class _Tower(nn.Module):
    """``head.{i}`` masked convs and ``norm.{i}`` LayerNorms, ReLU after each."""

    def __init__(self, input_dim: int, feat_dim: int, num_layers: int, kernel_size: int,
                 with_ln: bool) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"head: num_layers must be >= 1, got {num_layers}")
        self.head = nn.ModuleList()
        self.norm = nn.ModuleList()
        for idx in range(num_layers - 1):
            self.head.append(MaskedConv1d(input_dim if idx == 0 else feat_dim, feat_dim, kernel_size,
                                          bias=not with_ln))
            self.norm.append(ChannelLayerNorm(feat_dim) if with_ln else nn.Identity())

    def _tower(self, x: Tensor, mask: Tensor) -> Tensor:
        for conv, norm in zip(self.head, self.norm):
            x = F.relu(norm(conv(x, mask)[0]))
        return x


class ClsHead(_Tower):
    """Classification head: per-level logits ``[B, NC, T_l]``.

    Args:
        input_dim: channels of the neck output.
        feat_dim: channels of the tower.
        num_classes: NC.
        prior_prob: initial sigmoid output; the output bias is ``-log((1 - p) / p)`` (if p > 0).
        num_layers: tower convs + 1.
        kernel_size: conv kernel size.
        with_ln: LayerNorm in the tower (tower convs then have no bias).
        empty_cls: classes without training data; their bias gets the prior 1e-6.
        detach_feat: read the features detached from the graph (TriDet's start/end boundary heads:
            they train only themselves, never the neck or backbone).

    Example:
        >>> head = ClsHead(32, 32, 4)
    """

    def __init__(self, input_dim: int, feat_dim: int, num_classes: int, prior_prob: float = 0.01,
                 num_layers: int = 3, kernel_size: int = 3, with_ln: bool = False,
                 empty_cls: Sequence[int] = (), detach_feat: bool = False) -> None:
        super().__init__(input_dim, feat_dim, num_layers, kernel_size, with_ln)
        self.detach_feat = detach_feat
        self.cls_head = MaskedConv1d(feat_dim, num_classes, kernel_size)
        bias = self.cls_head.conv.bias
        assert bias is not None
        if prior_prob > 0:
            nn.init.constant_(bias, prior_bias(prior_prob))
        for idx in empty_cls:
            if not 0 <= idx < num_classes:
                raise ValueError(f"ClsHead: empty class id {idx} outside 0..{num_classes - 1}")
            nn.init.constant_(bias[idx], prior_bias(EMPTY_CLASS_PRIOR))

    def forward(self, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> list[Tensor]:
        """Args: per-level ``[B, D, T_l]`` and ``[B, 1, T_l]``. Returns: per-level ``[B, NC, T_l]``."""
        if self.detach_feat:
            feats = [x.detach() for x in feats]
        return [self.cls_head(self._tower(x, m), m)[0] for x, m in zip(feats, masks)]


class RegHead(_Tower):
    """Regression head: per-level ``relu(scale_l * conv(x))`` offsets ``[B, 2, T_l]`` (stride units).

    Args:
        input_dim: channels of the neck output.
        feat_dim: channels of the tower.
        fpn_levels: number of levels (one learnable :class:`Scale` each).
        num_layers: tower convs + 1.
        kernel_size: conv kernel size.
        with_ln: LayerNorm in the tower.
        num_outputs: output channels; 2 (left, right) for ActionFormer, ``2 * (num_bins + 1)`` for the
            centre head of TriDet's Trident head.
    """

    def __init__(self, input_dim: int, feat_dim: int, fpn_levels: int, num_layers: int = 3,
                 kernel_size: int = 3, with_ln: bool = False, num_outputs: int = 2) -> None:
        super().__init__(input_dim, feat_dim, num_layers, kernel_size, with_ln)
        self.fpn_levels = fpn_levels
        self.scale = nn.ModuleList(Scale() for _ in range(fpn_levels))
        self.offset_head = MaskedConv1d(feat_dim, num_outputs, kernel_size)

    def forward(self, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> list[Tensor]:
        """Args: per-level ``[B, D, T_l]`` and ``[B, 1, T_l]``. Returns: per-level ``[B, num_outputs, T_l]``."""
        if len(feats) != self.fpn_levels:
            raise ValueError(f"RegHead: expected {self.fpn_levels} levels, got {len(feats)}")
        return [F.relu(scale(self.offset_head(self._tower(x, m), m)[0]))
                for x, m, scale in zip(feats, masks, self.scale)]
