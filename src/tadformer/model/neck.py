"""Necks between the backbone pyramid and the heads (ports of the official ``FPNIdentity`` / ``FPN1D``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from tadformer.model.layers import ChannelLayerNorm, MaskedConv1d


def _check_levels(name: str, n_expected: int, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> None:
    if len(feats) != n_expected or len(masks) != n_expected:
        raise ValueError(f"{name}: expected {n_expected} levels, got {len(feats)} features and "
                         f"{len(masks)} masks")


class IdentityNeck(nn.Module):
    """Per-level LayerNorm (``fpn_norms``), masks unchanged (official ``FPNIdentity``).

    Args:
        in_channels: channels of every backbone level (must all equal ``out_channel``).
        out_channel: D.
        start_level: first backbone level used (levels before it are dropped).
        with_ln: LayerNorm per level, or identity.

    Example:
        >>> neck = IdentityNeck([32] * 6, 32)
    """

    def __init__(self, in_channels: Sequence[int], out_channel: int, start_level: int = 0,
                 with_ln: bool = True) -> None:
        super().__init__()
        if any(c != out_channel for c in in_channels):
            raise ValueError(f"IdentityNeck: every input level must have {out_channel} channels, "
                             f"got {list(in_channels)}")
        if not 0 <= start_level < len(in_channels):
            raise ValueError(f"IdentityNeck: start_level {start_level} outside 0..{len(in_channels) - 1}")
        self.num_inputs = len(in_channels)
        self.start_level = start_level
        self.fpn_norms = nn.ModuleList(
            ChannelLayerNorm(out_channel) if with_ln else nn.Identity()
            for _ in range(start_level, len(in_channels))
        )

    def forward(self, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Args: per-level ``[B, D, T_l]`` features and ``[B, 1, T_l]`` masks. Returns the same."""
        _check_levels("IdentityNeck", self.num_inputs, feats, masks)
        s = self.start_level
        out = [norm(feats[s + i]) for i, norm in enumerate(self.fpn_norms)]
        return out, list(masks[s:])


class FPN1d(nn.Module):
    """1-D feature pyramid: 1x1 lateral convs, nearest top-down sum, depthwise 3-conv + LayerNorm.

    Port of the official ``FPN1D`` (``fpn`` neck). Attribute names: ``lateral_convs``,
    ``fpn_convs``, ``fpn_norms`` (created per level in that order).
    """

    def __init__(self, in_channels: Sequence[int], out_channel: int, scale_factor: float = 2.0,
                 start_level: int = 0, with_ln: bool = True) -> None:
        super().__init__()
        if not 0 <= start_level < len(in_channels):
            raise ValueError(f"FPN1d: start_level {start_level} outside 0..{len(in_channels) - 1}")
        self.num_inputs = len(in_channels)
        self.scale_factor = scale_factor
        self.start_level = start_level
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        self.fpn_norms = nn.ModuleList()
        for i in range(start_level, len(in_channels)):
            # the conv modules are created before being appended, in the official order
            l_conv = MaskedConv1d(in_channels[i], out_channel, 1, bias=not with_ln)
            fpn_conv = MaskedConv1d(out_channel, out_channel, 3, groups=out_channel, bias=not with_ln)
            self.lateral_convs.append(l_conv)
            self.fpn_convs.append(fpn_conv)
            self.fpn_norms.append(ChannelLayerNorm(out_channel) if with_ln else nn.Identity())

    def forward(self, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Args: per-level ``[B, C_l, T_l]`` features and ``[B, 1, T_l]`` masks.

        Returns:
            per-level ``[B, D, T_l]`` features and masks, from ``start_level`` on.
        """
        _check_levels("FPN1d", self.num_inputs, feats, masks)
        s = self.start_level
        laterals = [conv(feats[s + i], masks[s + i])[0] for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down: coarse levels added into finer ones
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], scale_factor=self.scale_factor, mode="nearest")
        out_feats, out_masks = [], []
        for i, (conv, norm) in enumerate(zip(self.fpn_convs, self.fpn_norms)):
            x, m = conv(laterals[i], masks[s + i])
            out_feats.append(norm(x))
            out_masks.append(m)
        return out_feats, out_masks
