"""The detectors: ActionFormer, TriDet and TemporalMaxer.

:func:`build_model` is the only place where the architecture (``model_name``) is dispatched; each
architecture's module has its own ``build_*`` function.
"""

from __future__ import annotations

from typing import Any

from tadformer.model.actionformer import ActionFormer, max_div_factor, win_sizes
from tadformer.model.attention import LocalMaskedMHCA, MaskedMHCA, banded_attention
from tadformer.model.backbone import ConvBackbone, ConvTransformerBackbone, TransformerBlock
from tadformer.model.heads import ClsHead, RegHead
from tadformer.model.layers import (
    AffineDropPath,
    ChannelLayerNorm,
    MaskedConv1d,
    Scale,
    drop_path,
    forced_droppath_masks,
)
from tadformer.model.neck import FPN1d, IdentityNeck
from tadformer.model.outputs import HeadOutputs
from tadformer.model.points import Points, make_points
from tadformer.model.sgp import SGPBackbone, SGPBlock
from tadformer.model.temporalmaxer import TemporalMaxer, build_temporalmaxer
from tadformer.model.tridet import TriDet, build_tridet, trident_offsets

__all__ = [
    "ActionFormer", "AffineDropPath", "ChannelLayerNorm", "ClsHead", "ConvBackbone",
    "ConvTransformerBackbone", "FPN1d", "HeadOutputs", "IdentityNeck", "LocalMaskedMHCA", "MaskedConv1d",
    "MaskedMHCA", "Points", "SGPBackbone", "SGPBlock", "TemporalMaxer", "TriDet", "build_temporalmaxer",
    "build_tridet", "trident_offsets",
    "RegHead", "Scale", "TransformerBlock", "banded_attention", "build_actionformer", "build_model", "drop_path",
    "forced_droppath_masks", "make_points", "max_div_factor", "win_sizes",
]


def build_model(cfg: Any) -> ActionFormer:
    """Build the detector of a config: ActionFormer, TriDet or TemporalMaxer, by ``model_name``.

    Args:
        cfg: ``tadformer.config.ExperimentConfig`` or any namespace tree with the same attributes
            (``model_name`` defaults to ActionFormer's ``LocPointTransformer``; short names such as
            ``tridet`` are accepted).

    Returns:
        The model (in training mode, like any fresh module): :class:`ActionFormer` or its subclass
        :class:`~tadformer.model.tridet.TriDet` / :class:`~tadformer.model.temporalmaxer.TemporalMaxer`.
    """
    from tadformer.config_arch import arch_info
    from tadformer.model.conv_gemm import use_half_gemm_convs

    arch = arch_info(str(getattr(cfg, "model_name", "LocPointTransformer"))).key
    if arch == "tridet":
        model: ActionFormer = build_tridet(cfg)
    elif arch == "temporalmaxer":
        model = build_temporalmaxer(cfg)
    else:
        model = build_actionformer(cfg)
    use_half_gemm_convs(model)  # bf16/fp16 work only; float32 is untouched
    return model


def build_actionformer(cfg: Any) -> ActionFormer:
    """Build the detector from an experiment config (official key names).

    Modules are created in the official order (backbone, neck, classification head, regression
    head), so after ``torch.manual_seed(s)`` the initial weights equal the official model's.

    Args:
        cfg: object with ``dataset.{input_dim, num_classes, max_seq_len}``, ``model.<official keys>``
            and ``train_cfg.{cls_prior_prob, dropout, droppath, head_empty_cls}`` attributes
            (``tadformer.config.ExperimentConfig`` or any namespace tree).

    Returns:
        :class:`ActionFormer` (in training mode, like any fresh module).

    Raises:
        ValueError: inconsistent sizes (e.g. max_seq_len not divisible by stride x window).
        NotImplementedError: options outside the supported set (relative PE, multi-feature inputs).
    """
    m, ds, tr = cfg.model, cfg.dataset, cfg.train_cfg
    arch = tuple(int(a) for a in m.backbone_arch)
    if len(arch) != 3:
        raise ValueError(f"model.backbone_arch: expected 3 integers, got {list(arch)}")
    strides = [int(m.scale_factor) ** i for i in range(int(m.fpn_start_level), arch[2] + 1)]
    reg_range = [(float(lo), float(hi)) for lo, hi in m.regression_range]
    if len(strides) != len(reg_range):
        raise ValueError(f"model.regression_range: {len(reg_range)} ranges for {len(strides)} pyramid levels")
    windows = win_sizes(m.n_mha_win_size, arch[2] + 1)
    for s, w in zip(strides, windows):  # zipped from the start level on, like the official model
        div = s * (w // 2) * 2 if w > 1 else s
        if int(ds.max_seq_len) % div != 0:
            raise ValueError(f"dataset.max_seq_len {ds.max_seq_len} must be divisible by "
                             f"stride x window = {div} on every pyramid level")

    backbone: ConvTransformerBackbone | ConvBackbone
    if m.backbone_type == "convTransformer":
        backbone = ConvTransformerBackbone(
            ds.input_dim, m.embd_dim, m.n_head, m.embd_kernel_size, int(ds.max_seq_len), arch, windows,
            int(m.scale_factor), m.embd_with_ln, 0.0, float(tr.dropout), float(tr.droppath),
            m.use_abs_pe, m.use_rel_pe)
    elif m.backbone_type == "conv":
        backbone = ConvBackbone(ds.input_dim, m.embd_dim, m.embd_kernel_size, arch, int(m.scale_factor),
                                m.embd_with_ln)
    else:
        raise ValueError(
            f"model.backbone_type: expected 'convTransformer' or 'conv', got {m.backbone_type!r}")

    in_channels = [backbone.width] * (arch[2] + 1)  # sum of embd_dim for several input streams
    neck: IdentityNeck | FPN1d
    if m.fpn_type == "identity":
        neck = IdentityNeck(in_channels, int(m.fpn_dim), int(m.fpn_start_level), m.fpn_with_ln)
    elif m.fpn_type == "fpn":
        neck = FPN1d(in_channels, int(m.fpn_dim), float(m.scale_factor), int(m.fpn_start_level),
                     m.fpn_with_ln)
    else:
        raise ValueError(f"model.fpn_type: expected 'identity' or 'fpn', got {m.fpn_type!r}")

    cls_head = ClsHead(int(m.fpn_dim), int(m.head_dim), int(ds.num_classes), float(tr.cls_prior_prob),
                       int(m.head_num_layers), int(m.head_kernel_size), m.head_with_ln,
                       [int(c) for c in tr.head_empty_cls])
    reg_head = RegHead(int(m.fpn_dim), int(m.head_dim), len(strides), int(m.head_num_layers),
                       int(m.head_kernel_size), m.head_with_ln)
    return ActionFormer(backbone, neck, cls_head, reg_head, strides, reg_range,
                        pad_multiple=max_div_factor(strides, windows))
