"""TriDet (Shi et al., CVPR 2023): SGP backbone, Trident head, IoU-weighted classification loss.

Port of dingfengshi/TriDet (``TriDet`` meta-architecture) with its parameter names (``backbone``, ``neck``,
``cls_head``, ``start_head``, ``end_head``, ``reg_head``, in that order), so its checkpoints load once their
``module.`` prefix is stripped.

**Trident head.** Besides the classification head there are two boundary heads (``start_head``,
``end_head``: copies of the classification head, with the prior bias on every class) that read the neck
features *detached*, and a centre head (``reg_head``) with ``2 * (num_bins + 1)`` outputs after a per-level
Scale and a ReLU. At level l, class c and point t, with B = num_bins, S / E the start / end logits and R the
centre output at t, the offsets (in level strides) are expectations over distances d = 0..B
(:func:`trident_offsets`)::

    left  = sum_d d * softmax_d(S[t - d, c] + R[B - d])        # S = 0 outside 0 .. T_l - 1
    right = sum_d d * softmax_d(E[t + d, c] + R[B + 1 + d])    # E = 0 outside 0 .. T_l - 1

so the offsets are class-specific (``[B, T_l, NC, 2]``). The sequence end is the padded length: the heads'
outputs are 0 at padded steps, the same value as outside, so decoding only the valid steps gives the same
numbers.

**Training.** Labels are ActionFormer's; one DIoU term per (positive point, label) with that label's
offsets; the focal loss of those entries is multiplied by ``IoU ** iou_weight_power`` (not detached);
Gaussian ``input_noise`` is added to the padded inputs in training mode, before the drop-path draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tadformer.model.actionformer import ActionFormer, win_sizes
from tadformer.model.backbone import ConvBackbone
from tadformer.model.heads import ClsHead, RegHead
from tadformer.model.neck import FPN1d, IdentityNeck
from tadformer.model.outputs import HeadOutputs
from tadformer.model.points import make_points
from tadformer.model.sgp import SGPBackbone

__all__ = ["TriDet", "build_tridet", "trident_offsets"]


def trident_offsets(start_logits: Tensor, end_logits: Tensor, centre: Tensor, num_bins: int) -> Tensor:
    """Decode the Trident head: expected (left, right) offsets of every point and class.

    Args:
        start_logits: ``[..., T, NC]`` start-boundary logits of one level (channel-last).
        end_logits: ``[..., T, NC]`` end-boundary logits.
        centre: ``[..., T, 2 * (num_bins + 1)]`` centre-head output: channel j < B + 1 is the left bin of
            distance ``B - j`` (reversed), channel ``B + 1 + d`` the right bin of distance d.
        num_bins: B.

    Returns:
        ``[..., T, NC, 2]`` offsets in bins (= level strides), each in ``[0, B]``.
    """
    nb = int(num_bins)
    if centre.shape[-1] != 2 * (nb + 1) or start_logits.shape != end_logits.shape \
            or start_logits.shape[:-1] != centre.shape[:-1]:
        raise ValueError(f"trident_offsets: expected start/end logits [..., T, NC] and a centre output "
                         f"[..., T, {2 * (nb + 1)}], got {list(start_logits.shape)}, {list(end_logits.shape)}, "
                         f"{list(centre.shape)}")
    # windows of B + 1 neighbours, class-major like TriDet: [..., NC, T, B + 1]
    starts = F.pad(start_logits.transpose(-1, -2), (nb, 0)).unfold(-1, nb + 1, 1)  # element j: S[t - B + j]
    ends = F.pad(end_logits.transpose(-1, -2), (0, nb)).unfold(-1, nb + 1, 1)  # element j: E[t + j]
    bins = centre.reshape(*centre.shape[:-1], 2, nb + 1).unsqueeze(-4)  # [..., 1, T, 2, B + 1]
    left = torch.softmax(starts + bins[..., 0, :], dim=-1)
    right = torch.softmax(ends + bins[..., 1, :], dim=-1)
    nan = torch.isnan(right)  # TriDet masks BOTH distributions with the right one's NaN test
    left = left.masked_fill(nan, 0)
    right = right.masked_fill(nan, 0)
    left_dist = torch.arange(nb, -1, -1, dtype=left.dtype, device=left.device).unsqueeze(-1)
    right_dist = torch.arange(nb + 1, dtype=right.dtype, device=right.device).unsqueeze(-1)
    out = torch.cat([torch.matmul(left, left_dist), torch.matmul(right, right_dist)], dim=-1)  # [..., NC, T, 2]
    return out.transpose(-2, -3)  # [..., T, NC, 2]


class TriDet(ActionFormer):
    """The TriDet detector (see the module docstring).

    Args:
        backbone, neck, cls_head, reg_head, strides, regression_range, pad_multiple: see
            :class:`~tadformer.model.actionformer.ActionFormer`; ``reg_head`` outputs ``2 * (num_bins + 1)``
            channels with the Trident head, else 2.
        start_head, end_head: the boundary heads (None: no Trident head, class-agnostic offsets).
        num_bins: Trident bins per side.
        iou_weight_power: exponent of the IoU weight of the positive focal-loss entries (Trident head only).
        input_noise: std of the Gaussian noise added to the inputs in training mode.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, cls_head: nn.Module, reg_head: nn.Module,
                 strides: Sequence[int], regression_range: Sequence[tuple[float, float]], pad_multiple: int = 1,
                 start_head: nn.Module | None = None, end_head: nn.Module | None = None, num_bins: int = 16,
                 iou_weight_power: float = 1.0, input_noise: float = 0.0) -> None:
        super().__init__(backbone, neck, cls_head, reg_head, strides, regression_range, pad_multiple)
        if (start_head is None) != (end_head is None):
            raise ValueError("TriDet: give both boundary heads (Trident head) or neither")
        self.use_trident_head = start_head is not None
        if start_head is not None:  # TriDet's registration order: cls_head, start_head, end_head, reg_head
            del self.reg_head
            self.start_head = start_head
            self.end_head = end_head
            self.reg_head = reg_head
        self.num_bins = int(num_bins)
        self.iou_weight_power = float(iou_weight_power)
        self.input_noise = float(input_noise)

    @property
    def loss_options(self) -> dict[str, Any]:
        """With the Trident head, the focal loss of positives is weighted by ``IoU ** iou_weight_power``."""
        return {"iou_weight_power": self.iou_weight_power} if self.use_trident_head else {}

    def forward(self, feats: Tensor, mask: Tensor) -> HeadOutputs:
        """Run the detector (``feats [B, C, T]``, ``mask [B, T]`` bool).

        Returns:
            :class:`HeadOutputs`: logits ``[B, T_l, NC]``, offsets ``[B, T_l, NC, 2]`` (Trident head; else
            ``[B, T_l, 2]``) and, in ``extras``, ``start_logits``, ``end_logits`` and ``reg_head_out``.
        """
        if self.training and self.input_noise > 0:  # after padding, before the drop-path draws
            feats = feats + torch.randn_like(feats) * self.input_noise
        fpn_feats, fpn_masks = self.forward_features(feats, mask)
        if len(fpn_feats) != len(self.strides):
            raise ValueError(f"TriDet: neck gave {len(fpn_feats)} levels, expected {len(self.strides)}")
        logits = [x.permute(0, 2, 1) for x in self.cls_head(fpn_feats, fpn_masks)]
        centre = [x.permute(0, 2, 1) for x in self.reg_head(fpn_feats, fpn_masks)]
        extras: dict[str, list[Tensor]] = {"reg_head_out": centre}
        if self.use_trident_head:
            starts = [x.permute(0, 2, 1) for x in self.get_submodule("start_head")(fpn_feats, fpn_masks)]
            ends = [x.permute(0, 2, 1) for x in self.get_submodule("end_head")(fpn_feats, fpn_masks)]
            offsets = [trident_offsets(s, e, c, self.num_bins) for s, e, c in zip(starts, ends, centre)]
            extras.update(start_logits=starts, end_logits=ends)
        else:
            offsets = centre
        points = make_points([f.shape[-1] for f in fpn_feats], self.strides, self.regression_range,
                             device=feats.device)
        return HeadOutputs(cls_logits=logits, offsets=offsets, masks=[m.squeeze(1) for m in fpn_masks],
                           points=points, extras=extras)


def build_tridet(cfg: Any) -> TriDet:
    """Build TriDet from a config whose ``model`` section is TriDet's.

    Modules are created in TriDet's order (backbone, neck, classification head, start head, end head, centre
    head), so after ``torch.manual_seed(s)`` the initial weights equal its own.
    """
    m, ds, tr = cfg.model, cfg.dataset, cfg.train_cfg
    arch = tuple(int(a) for a in m.backbone_arch)
    if len(arch) != 3:
        raise ValueError(f"model.backbone_arch: TriDet expects 3 integers, got {list(arch)}")
    strides = [int(m.scale_factor) ** i for i in range(arch[2] + 1)]
    reg_range = [(float(lo), float(hi)) for lo, hi in m.regression_range]
    if len(strides) != len(reg_range):
        raise ValueError(f"model.regression_range: {len(reg_range)} ranges for {len(strides)} pyramid levels")
    windows = win_sizes(m.n_sgp_win_size, len(strides), key="model.n_sgp_win_size")
    backbone: nn.Module
    if m.backbone_type == "SGP":
        backbone = SGPBackbone(int(ds.input_dim), int(m.embd_dim), int(m.sgp_mlp_dim), int(m.embd_kernel_size),
                               int(ds.max_seq_len), arch, int(m.scale_factor), bool(m.embd_with_ln),
                               float(tr.droppath), str(m.downsample_type), windows, float(m.k),
                               float(m.init_conv_vars), bool(m.use_abs_pe))
    else:
        backbone = ConvBackbone(int(ds.input_dim), int(m.embd_dim), int(m.embd_kernel_size), arch,
                                int(m.scale_factor), bool(m.embd_with_ln))
    in_channels = [int(m.embd_dim)] * len(strides)
    neck: nn.Module = (IdentityNeck(in_channels, int(m.fpn_dim), 0, bool(m.fpn_with_ln)) if m.fpn_type == "identity"
                       else FPN1d(in_channels, int(m.fpn_dim), float(m.scale_factor), 0, bool(m.fpn_with_ln)))
    empty = [int(c) for c in tr.head_empty_cls]

    def cls_like(kernel: int, detach: bool) -> ClsHead:
        return ClsHead(int(m.fpn_dim), int(m.head_dim), int(ds.num_classes), float(tr.cls_prior_prob),
                       int(m.head_num_layers), kernel, bool(m.head_with_ln), empty, detach_feat=detach)

    cls_head = cls_like(int(m.head_kernel_size), False)
    trident = bool(m.use_trident_head)
    start_head = cls_like(int(m.boudary_kernel_size), True) if trident else None
    end_head = cls_like(int(m.boudary_kernel_size), True) if trident else None
    num_bins = int(m.num_bins)
    reg_head = RegHead(int(m.fpn_dim), int(m.head_dim), len(strides), int(m.head_num_layers),
                       int(m.head_kernel_size), bool(m.head_with_ln),
                       num_outputs=2 * (num_bins + 1) if trident else 2)
    pad = max(s * w if w > 1 else s for s, w in zip(strides, windows))
    return TriDet(backbone, neck, cls_head, reg_head, strides, reg_range, pad_multiple=pad,
                  start_head=start_head, end_head=end_head, num_bins=num_bins,
                  iou_weight_power=float(m.iou_weight_power), input_noise=float(m.input_noise))
