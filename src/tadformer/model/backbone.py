"""Backbones: the conv-embedding + transformer pyramid of ActionFormer, and the all-conv variant.

Ports of the official ``TransformerBlock``, ``ConvTransformerBackbone``, ``ConvBlock`` and
``ConvBackbone``. Each backbone maps ``[B, C_in, T]`` features and a ``[B, 1, T]`` mask to one
feature map per pyramid level: level 0 is the stem output (length T), level ``l >= 1`` the output
of branch block ``l - 1`` (length ``T / scale_factor**l``). A level mask is the level-0 mask taken
every ``scale_factor**l`` steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tadformer.model.attention import LocalMaskedMHCA, MaskedMHCA
from tadformer.model.layers import (
    AffineDropPath,
    ChannelLayerNorm,
    MaskedConv1d,
    fill_time_chunks,
    sinusoid_encoding,
)

# eval-mode MLP chunk (time steps): the [B, 4D, T] hidden is built chunk by chunk (1x1 convs are pointwise
# in time, so only float rounding can differ); bounds inference memory on long videos
MLP_CHUNK_STEPS = 1152


class TransformerBlock(nn.Module):
    """Pre-LN transformer block with conv attention, LayerScale + stochastic depth, optional stride.

    Forward: ``(a, m') = attn(ln1(x), m)``; ``y = pool_skip(x) * m' + DP_attn(a)``;
    ``y = y + DP_mlp(mlp(ln2(y)) * m')``. The skip path is max-pooled from the raw ``x``.

    Args:
        n_embd: channels D.
        n_head: attention heads.
        n_ds_strides: (query stride, key/value stride); (2, 2) halves T.
        attn_pdrop / proj_pdrop: attention-weight dropout / projection and MLP dropout.
        path_pdrop: stochastic-depth rate; 0 replaces both drop-path layers (and their LayerScale)
            by identities, like the official code.
        mha_win_size: local window (> 1), or <= 1 for global attention.
        use_rel_pe: relative position encoding (not supported).
    """

    def __init__(self, n_embd: int, n_head: int, n_ds_strides: tuple[int, int] = (1, 1),
                 attn_pdrop: float = 0.0, proj_pdrop: float = 0.0, path_pdrop: float = 0.0,
                 mha_win_size: int = -1, use_rel_pe: bool = False) -> None:
        super().__init__()
        self.ln1 = ChannelLayerNorm(n_embd)
        self.ln2 = ChannelLayerNorm(n_embd)
        self.attn: LocalMaskedMHCA | MaskedMHCA
        if mha_win_size > 1:
            self.attn = LocalMaskedMHCA(n_embd, n_head, mha_win_size, n_ds_strides[0], n_ds_strides[1],
                                        attn_pdrop, proj_pdrop, use_rel_pe)
        else:
            if use_rel_pe:
                raise NotImplementedError("TransformerBlock: use_rel_pe=True is not supported")
            self.attn = MaskedMHCA(n_embd, n_head, n_ds_strides[0], n_ds_strides[1], attn_pdrop, proj_pdrop)
        s = n_ds_strides[0]
        self.pool_skip: nn.Module = (nn.MaxPool1d(s + 1, stride=s, padding=(s + 1) // 2) if s > 1
                                     else nn.Identity())
        self.mlp = nn.Sequential(
            nn.Conv1d(n_embd, 4 * n_embd, 1), nn.GELU(), nn.Dropout(proj_pdrop, inplace=True),
            nn.Conv1d(4 * n_embd, n_embd, 1), nn.Dropout(proj_pdrop, inplace=True),
        )
        self.drop_path_attn: nn.Module
        self.drop_path_mlp: nn.Module
        if path_pdrop > 0.0:
            self.drop_path_attn = AffineDropPath(n_embd, drop_prob=path_pdrop)
            self.drop_path_mlp = AffineDropPath(n_embd, drop_prob=path_pdrop)
        else:
            self.drop_path_attn = nn.Identity()
            self.drop_path_mlp = nn.Identity()

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Args: x ``[B, D, T]``; mask ``[B, 1, T]`` bool. Returns: ``[B, D, T/s]``, ``[B, 1, T/s]``."""
        out, out_mask = self.attn(x, mask, pre_norm=self.ln1)  # = attn(ln1(x)); ln1(x) freed early
        m = out_mask.to(out.dtype)
        out = self.pool_skip(x) * m + self.drop_path_attn(out)
        out = out + self.drop_path_mlp(self._mlp(self.ln2(out)) * m)
        return out, out_mask

    def _mlp(self, x: Tensor) -> Tensor:
        """The pointwise MLP; in eval mode it runs over time chunks so the 4x-wide hidden stays small."""
        t = x.shape[-1]
        if self.training or t <= MLP_CHUNK_STEPS:
            return self.mlp(x)
        return fill_time_chunks(lambda start, end: self.mlp(x[..., start:end]), t, MLP_CHUNK_STEPS)


def _zero_linear_biases(module: nn.Module) -> None:
    """The backbones' ``apply`` init: zero every Conv1d / Linear bias (no RNG draw)."""
    if isinstance(module, (nn.Linear, nn.Conv1d)) and module.bias is not None:
        nn.init.constant_(module.bias, 0.0)


class _Embedding(nn.Module):
    """``embd`` / ``embd_norm``: ``n`` rounds of masked conv -> LayerNorm (or identity) -> ReLU.

    With several input streams (``n_in`` and ``n_embd`` lists, e.g. Ego4D SlowFast + Omnivore + EgoVLP),
    each stream's channels first go through their own 1x1 masked conv (``proj``) to ``n_embd[i]``
    channels, and the concatenation (``sum(n_embd)`` channels, :attr:`width`) is embedded.
    """

    def __init__(self, n_in: int | Sequence[int], n_embd: int | Sequence[int], n_embd_ks: int, n_layers: int,
                 with_ln: bool) -> None:
        super().__init__()
        self.split: list[int] | None = None
        self.proj: nn.ModuleList | None = None
        if not isinstance(n_in, int):
            if isinstance(n_embd, int) or len(n_in) != len(n_embd):
                raise ValueError(f"backbone: a list input_dim {list(n_in)} needs a list embd_dim with one entry per "
                                 f"stream, got {n_embd!r}")
            self.split = [int(c) for c in n_in]
            self.proj = nn.ModuleList(MaskedConv1d(c0, c1, 1) for c0, c1 in zip(self.split, n_embd))
            n_in = n_embd = sum(int(c) for c in n_embd)
        elif not isinstance(n_embd, int):
            raise ValueError(f"backbone: a list embd_dim {list(n_embd)} needs a list input_dim, got {n_in}")
        self.width: int = n_embd
        self.embd = nn.ModuleList()
        self.embd_norm = nn.ModuleList()
        for idx in range(n_layers):
            self.embd.append(MaskedConv1d(n_in if idx == 0 else n_embd, n_embd, n_embd_ks, bias=not with_ln))
            self.embd_norm.append(ChannelLayerNorm(n_embd) if with_ln else nn.Identity())

    def _embed(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.proj is not None and self.split is not None:  # [B, sum C_i, T] -> [B, sum D_i, T]
            x = torch.cat([proj(part, mask)[0] for proj, part in zip(self.proj, x.split(self.split, dim=1))], dim=1)
        for conv, norm in zip(self.embd, self.embd_norm):
            x, mask = conv(x, mask)
            x = F.relu(norm(x))
        return x, mask


class ConvTransformerBackbone(_Embedding):
    """Conv embedding + transformer stem + strided transformer branch (official ``convTransformer``).

    Args:
        n_in: input channels C_in.
        n_embd: model channels D.
        n_head: attention heads.
        n_embd_ks: embedding conv kernel size.
        max_len: max_seq_len (length of the absolute position table).
        arch: (embedding convs, stem blocks, branch blocks); levels = branch blocks + 1.
        mha_win_size: attention window per level (``1 + arch[2]`` entries).
        scale_factor: downsampling between levels.
        with_ln: LayerNorm after the embedding convs (which then have no bias).
        attn_pdrop / proj_pdrop / path_pdrop: dropout rates (see :class:`TransformerBlock`).
        use_abs_pe: add a sinusoidal absolute position encoding after the embedding.
        use_rel_pe: relative position encoding in attention (not supported).

    Example:
        >>> bb = ConvTransformerBackbone(32, 32, 4, 3, 576, mha_win_size=[19] * 6, with_ln=True)
        >>> feats, masks = bb(torch.randn(1, 32, 576), torch.ones(1, 1, 576, dtype=torch.bool))
    """

    def __init__(self, n_in: int | Sequence[int], n_embd: int | Sequence[int], n_head: int, n_embd_ks: int,
                 max_len: int, arch: Sequence[int] = (2, 2, 5), mha_win_size: Sequence[int] = (-1,) * 6,
                 scale_factor: int = 2, with_ln: bool = False, attn_pdrop: float = 0.0,
                 proj_pdrop: float = 0.0, path_pdrop: float = 0.0, use_abs_pe: bool = False,
                 use_rel_pe: bool = False) -> None:
        super().__init__(n_in, n_embd, n_embd_ks, arch[0], with_ln)
        n_embd = self.width
        if len(arch) != 3 or len(mha_win_size) != 1 + arch[2]:
            raise ValueError(f"ConvTransformerBackbone: arch must have 3 entries and mha_win_size "
                             f"1 + arch[2] entries, got arch={list(arch)}, mha_win_size={list(mha_win_size)}")
        self.max_len = max_len
        self.use_abs_pe = use_abs_pe
        if use_abs_pe:
            pe = sinusoid_encoding(max_len, n_embd) / (n_embd**0.5)  # [1, D, max_len]
            self.register_buffer("pos_embd", pe, persistent=False)
        self.stem = nn.ModuleList(
            TransformerBlock(n_embd, n_head, (1, 1), attn_pdrop, proj_pdrop, path_pdrop,
                             mha_win_size[0], use_rel_pe) for _ in range(arch[1])
        )
        self.branch = nn.ModuleList(
            TransformerBlock(n_embd, n_head, (scale_factor, scale_factor), attn_pdrop, proj_pdrop,
                             path_pdrop, mha_win_size[1 + idx], use_rel_pe) for idx in range(arch[2])
        )
        self.apply(_zero_linear_biases)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Args: x ``[B, C_in, T]``; mask ``[B, 1, T]`` bool.

        Returns:
            per-level features ``[B, D, T_l]`` and masks ``[B, 1, T_l]`` (levels 0..arch[2]).
        """
        x, mask = self._embed(x, mask)
        if self.use_abs_pe:
            t = x.shape[-1]
            pe = self.get_buffer("pos_embd")
            if self.training and t > self.max_len:
                raise ValueError(f"ConvTransformerBackbone: T={t} exceeds max_len={self.max_len} in training")
            if not self.training and t >= self.max_len:
                pe = F.interpolate(pe, t, mode="linear", align_corners=False)
            x = x + pe[:, :, :t] * mask.to(x.dtype)
        return _run_pyramid(self.stem, self.branch, x, mask)


class ConvBlock(nn.Module):
    """Residual block of two masked convs (official ``ConvBlock``, expansion 2, ReLU).

    ``out = relu(conv2(relu(conv1(x))) + identity)`` where identity is ``x`` or a strided
    1x1 masked conv of ``x`` when downsampling.
    """

    def __init__(self, n_embd: int, kernel_size: int = 3, n_ds_stride: int = 1) -> None:
        super().__init__()
        width = 2 * n_embd
        self.conv1 = MaskedConv1d(n_embd, width, kernel_size, n_ds_stride)
        self.conv2 = MaskedConv1d(width, n_embd, kernel_size, 1)
        self.downsample = MaskedConv1d(n_embd, n_embd, 1, n_ds_stride) if n_ds_stride > 1 else None

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Args: x ``[B, D, T]``; mask ``[B, 1, T]``. Returns: ``[B, D, T/s]``, ``[B, 1, T/s]``."""
        out, out_mask = self.conv1(x, mask)
        out, out_mask = self.conv2(F.relu(out), out_mask)
        identity = x if self.downsample is None else self.downsample(x, mask)[0]
        return F.relu(out + identity), out_mask


class ConvBackbone(_Embedding):
    """Conv embedding + conv stem + strided conv branch (official ``conv`` backbone)."""

    def __init__(self, n_in: int | Sequence[int], n_embd: int | Sequence[int], n_embd_ks: int,
                 arch: Sequence[int] = (2, 2, 5), scale_factor: int = 2, with_ln: bool = False) -> None:
        super().__init__(n_in, n_embd, n_embd_ks, arch[0], with_ln)
        n_embd = self.width
        self.stem = nn.ModuleList(ConvBlock(n_embd, 3, 1) for _ in range(arch[1]))
        self.branch = nn.ModuleList(ConvBlock(n_embd, 3, scale_factor) for _ in range(arch[2]))
        self.apply(_zero_linear_biases)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Same contract as :meth:`ConvTransformerBackbone.forward`."""
        x, mask = self._embed(x, mask)
        return _run_pyramid(self.stem, self.branch, x, mask)


def _run_pyramid(stem: nn.ModuleList, branch: nn.ModuleList, x: Tensor,
                 mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Stem blocks, then branch blocks; level 0 is the stem output, level l the l-th branch output."""
    for block in stem:
        x, mask = block(x, mask)
    feats, masks = [x], [mask]
    for block in branch:
        x, mask = block(x, mask)
        feats.append(x)  # [B, D, T / 2^l]
        masks.append(mask)
    return feats, masks
