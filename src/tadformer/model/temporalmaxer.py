"""TemporalMaxer (Tran et al., 2023): ActionFormer's heads on a pyramid built by plain max pooling.

Port of TuanTNG/TemporalMaxer (``ConvPoolerBackbone``, ``TemporalMaxer`` block, ``FPNIdentity`` with a
GroupNorm, ``TemporalMaxerArchitecture``), with its parameter names, so its checkpoints load once their
``module.`` prefix is stripped:

* backbone ``convPooler``: the embedding convs (masked conv, LayerNorm, ReLU; level 0 is their output,
  not re-masked), then per level ``MaxPool1d(3, 2, 1)`` of the previous level times the downsampled mask.
  No parameters besides the embedding.
* neck: one parameter-free ``GroupNorm(4 groups)`` applied to every level, statistics over the whole padded
  length (``model.fpn_with_ln`` is ignored, as in TemporalMaxer).
* heads: ActionFormer's classification and regression heads.
* training: SimOTA assignment (:mod:`tadformer.assign_simota`) with the ``model.assigner`` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tadformer.model.actionformer import ActionFormer
from tadformer.model.backbone import _Embedding, _zero_linear_biases
from tadformer.model.heads import ClsHead, RegHead
from tadformer.model.outputs import HeadOutputs

__all__ = ["ConvPoolerBackbone", "GroupNormNeck", "MaxPoolBlock", "TemporalMaxer", "build_temporalmaxer"]


class MaxPoolBlock(nn.Module):
    """TemporalMaxer's pyramid block: ``max_pool(x) * mask[::stride]`` (no parameters).

    Args:
        kernel_size, stride, padding: of the ``MaxPool1d`` (``ds_pooling``); TemporalMaxer uses 3, 2, 1.
    """

    def __init__(self, kernel_size: int = 3, stride: int = 2, padding: int = 1) -> None:
        super().__init__()
        self.ds_pooling = nn.MaxPool1d(kernel_size, stride=stride, padding=padding)
        self.stride = stride

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Args: x ``[B, D, T]``; mask ``[B, 1, T]`` bool. Returns: ``[B, D, T/s]``, ``[B, 1, T/s]``."""
        if x.shape[-1] % self.stride:
            raise ValueError(f"MaxPoolBlock: sequence length {x.shape[-1]} is not divisible by stride {self.stride}")
        out_mask = mask[..., :: self.stride] if self.stride > 1 else mask  # nearest downsampling
        return self.ds_pooling(x) * out_mask.to(x.dtype), out_mask


class ConvPoolerBackbone(_Embedding):
    """Embedding convs + max-pool pyramid (TemporalMaxer's ``convPooler``).

    Args:
        n_in: input channels (a list for several feature streams, each projected by a 1x1 conv).
        n_embd: embedding channels (a list with ``n_in`` lists).
        n_embd_ks: embedding conv kernel size.
        arch: (embedding convs, max-pool levels).
        scale_factor: pooling stride.
        with_ln: LayerNorm after the embedding convs (which then have no bias).
    """

    def __init__(self, n_in: int | Sequence[int], n_embd: int | Sequence[int], n_embd_ks: int,
                 arch: Sequence[int] = (2, 5), scale_factor: int = 2, with_ln: bool = True) -> None:
        if len(arch) != 2:
            raise ValueError(f"ConvPoolerBackbone: arch must be (embedding convs, pooling levels), got {list(arch)}")
        super().__init__(n_in, n_embd, n_embd_ks, arch[0], with_ln)
        self.branch = nn.ModuleList(MaxPoolBlock(3, scale_factor, 1) for _ in range(arch[1]))
        self.apply(_zero_linear_biases)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Args: x ``[B, C_in, T]``; mask ``[B, 1, T]`` bool. Returns per-level ``[B, D, T_l]``, ``[B, 1, T_l]``."""
        x, mask = self._embed(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks


class GroupNormNeck(nn.Module):
    """One parameter-free ``GroupNorm`` applied to every level (TemporalMaxer's ``FPNIdentity``).

    TemporalMaxer appends the same module once per level (``fpn_norms``); it has no state, so sharing it
    changes nothing but is kept.
    """

    def __init__(self, in_channels: Sequence[int], out_channel: int, start_level: int = 0,
                 num_groups: int = 4) -> None:
        super().__init__()
        if any(c != out_channel for c in in_channels):
            raise ValueError(f"GroupNormNeck: every input level must have {out_channel} channels, "
                             f"got {list(in_channels)}")
        if not 0 <= start_level < len(in_channels):
            raise ValueError(f"GroupNormNeck: start_level {start_level} outside 0..{len(in_channels) - 1}")
        self.num_inputs = len(in_channels)
        self.start_level = start_level
        norm = nn.GroupNorm(num_groups, out_channel, affine=False)
        self.fpn_norms = nn.ModuleList([norm] * (len(in_channels) - start_level))

    def forward(self, feats: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Args: per-level ``[B, D, T_l]`` features and ``[B, 1, T_l]`` masks. Returns the normalised levels."""
        if len(feats) != self.num_inputs or len(masks) != self.num_inputs:
            raise ValueError(f"GroupNormNeck: expected {self.num_inputs} levels, got {len(feats)} features and "
                             f"{len(masks)} masks")
        s = self.start_level
        return [norm(feats[s + i]) for i, norm in enumerate(self.fpn_norms)], list(masks[s:])


class TemporalMaxer(ActionFormer):
    """The TemporalMaxer detector: ActionFormer's forward, SimOTA targets in training.

    Args:
        backbone, neck, cls_head, reg_head, strides, regression_range, pad_multiple: see
            :class:`~tadformer.model.actionformer.ActionFormer`.
        assigner: the ``model.assigner`` values (``center_radius``, ``iou_weight``, ``cls_weight``,
            ``keep_percent``, ``confuse_weight``).
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, cls_head: nn.Module, reg_head: nn.Module,
                 strides: Sequence[int], regression_range: Sequence[tuple[float, float]], pad_multiple: int = 1,
                 assigner: dict[str, float] | None = None) -> None:
        super().__init__(backbone, neck, cls_head, reg_head, strides, regression_range, pad_multiple)
        self.assigner = dict(assigner or {})

    def assign(self, outputs: HeadOutputs, gt_segments: Sequence[Tensor], gt_labels: Sequence[Tensor],
               num_classes: int, train_cfg: Any) -> Any:
        """SimOTA targets from the current (detached) predictions; ``train_cfg.center_sample`` is not used."""
        from tadformer.assign_simota import simota_batch

        with torch.no_grad():
            return simota_batch(outputs.points, torch.cat(outputs.masks, dim=1),
                                torch.cat(outputs.cls_logits, dim=1), torch.cat(outputs.offsets, dim=1),
                                gt_segments, gt_labels, num_classes, **self.assigner)


def build_temporalmaxer(cfg: Any) -> TemporalMaxer:
    """Build TemporalMaxer from a config whose ``model`` section is TemporalMaxer's.

    Modules are created in TemporalMaxer's order (backbone, neck, classification head, regression head), so
    after ``torch.manual_seed(s)`` the initial weights equal its own.
    """
    m, ds, tr = cfg.model, cfg.dataset, cfg.train_cfg
    arch = tuple(int(a) for a in m.backbone_arch)
    if len(arch) != 2:
        raise ValueError(f"model.backbone_arch: TemporalMaxer expects 2 integers, got {list(arch)}")
    strides = [int(m.scale_factor) ** i for i in range(int(m.fpn_start_level), arch[1] + 1)]
    reg_range = [(float(lo), float(hi)) for lo, hi in m.regression_range]
    if len(strides) != len(reg_range):
        raise ValueError(f"model.regression_range: {len(reg_range)} ranges for {len(strides)} pyramid levels")
    backbone = ConvPoolerBackbone(ds.input_dim, m.embd_dim, int(m.embd_kernel_size), arch, int(m.scale_factor),
                                  bool(m.embd_with_ln))
    neck = GroupNormNeck([backbone.width] * (arch[1] + 1), int(m.fpn_dim), int(m.fpn_start_level))
    cls_head = ClsHead(int(m.fpn_dim), int(m.head_dim), int(ds.num_classes), float(tr.cls_prior_prob),
                       int(m.head_num_layers), int(m.head_kernel_size), bool(m.head_with_ln),
                       [int(c) for c in tr.head_empty_cls])
    reg_head = RegHead(int(m.fpn_dim), int(m.head_dim), len(strides), int(m.head_num_layers),
                       int(m.head_kernel_size), bool(m.head_with_ln))
    a = m.assigner
    assigner = {k: float(getattr(a, k) if not isinstance(a, dict) else a[k])
                for k in ("center_radius", "iou_weight", "cls_weight", "keep_percent", "confuse_weight")}
    return TemporalMaxer(backbone, neck, cls_head, reg_head, strides, reg_range, pad_multiple=max(strides),
                         assigner=assigner)
