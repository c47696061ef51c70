"""TriDet's Scalable-Granularity Perception (SGP) blocks and backbone.

Port of dingfengshi/TriDet ``SGPBlock`` / ``SGPBackbone`` with its parameter names and construction order
(so ``torch.manual_seed`` gives its initial weights, and its checkpoints load). An SGP block is::

    x = pool(x)                                   # branch blocks: MaxPool1d(3, 2, 1); stem blocks: identity
    u = LN(x)                                     # channel LayerNorm ``ln``
    out = fc(u) * relu(global_fc(mean_T u))       # instant-level branch (mean over the whole padded length)
        + (convw(u) + convkw(u)) * psi(u)         # window-level branch: kernels w and ~k*(w+1), gated
        + u
    out = x * mask + DP_out(out)                  # only the skip term is masked
    out = out + DP_mlp(mlp(GN(out)))              # GroupNorm(16) ``gn``, then 1x1 conv -> GELU -> 1x1 conv

``psi``, ``fc``, ``convw``, ``convkw`` and ``global_fc`` are depthwise convs whose weights are drawn from
``N(0, init_conv_vars**2)`` (the value is used as a standard deviation) and whose biases are 0.

**init_conv_vars 0** (TriDet's default, and its released THUMOS14 recipe): the five convs start at exactly 0,
so both branch products are 0 * 0, every gradient into them has a zero factor (and ReLU'(0) = 0), and AdamW
keeps them at 0: the branches stay dead for the whole run, and a block reduces to
``x * mask + s1 * LN(x)`` then ``+ s2 * MLP(GN(.))``. This is reproduced exactly (it is what TriDet's
published THUMOS number was trained with); a non-zero ``model.init_conv_vars`` turns the branches on.
The normal draw happens even for 0, so the random stream matches TriDet's either way.

Stem blocks use kernel 1, no pooling and no drop path (no LayerScale: their branch and MLP outputs are
added at full scale). Branch blocks have LayerScale + stochastic depth (``drop_path_out``,
``drop_path_mlp``, in that call order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tadformer.model.backbone import _Embedding, _zero_linear_biases
from tadformer.model.layers import AffineDropPath, ChannelLayerNorm, sinusoid_encoding

__all__ = ["SGPBackbone", "SGPBlock", "window_kernel"]

SGP_NORM_GROUPS = 16  # GroupNorm groups of the SGP MLP input


def window_kernel(w: int, k: float) -> int:
    """Kernel of the window-level branch's long conv (``convkw``): ``round((w + 1) * k)``, made odd."""
    size = round((w + 1) * k)
    return size + 1 if size % 2 == 0 else size


class SGPBlock(nn.Module):
    """One SGP block (see the module docstring).

    Args:
        n_embd: channels D.
        kernel_size: window w of ``psi`` / ``convw`` (odd).
        n_ds_stride: 1 (stem) or the downsampling factor (branch).
        k: scale of the long kernel, see :func:`window_kernel`.
        n_hidden: MLP hidden width (``sgp_mlp_dim``).
        path_pdrop: stochastic-depth rate; 0 means no LayerScale and no drop path (identities).
        downsample_type: ``'max'`` (``MaxPool1d(s + 1, s, (s + 1) // 2)``) or ``'avg'``
            (``AvgPool1d(s)`` + a 1x1 conv).
        init_conv_vars: standard deviation of the depthwise conv weights at init.
    """

    def __init__(self, n_embd: int, kernel_size: int = 3, n_ds_stride: int = 1, k: float = 1.5,
                 n_hidden: int | None = None, path_pdrop: float = 0.0, downsample_type: str = "max",
                 init_conv_vars: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"SGPBlock: kernel_size must be odd, got {kernel_size}")
        self.ln = ChannelLayerNorm(n_embd)
        self.gn = nn.GroupNorm(SGP_NORM_GROUPS, n_embd)
        long = window_kernel(kernel_size, k)
        # creation order = TriDet's (the RNG draws of the default Conv1d init follow it)
        self.psi = nn.Conv1d(n_embd, n_embd, kernel_size, padding=kernel_size // 2, groups=n_embd)
        self.fc = nn.Conv1d(n_embd, n_embd, 1, groups=n_embd)
        self.convw = nn.Conv1d(n_embd, n_embd, kernel_size, padding=kernel_size // 2, groups=n_embd)
        self.convkw = nn.Conv1d(n_embd, n_embd, long, padding=long // 2, groups=n_embd)
        self.global_fc = nn.Conv1d(n_embd, n_embd, 1, groups=n_embd)
        self.downsample: nn.Module
        if n_ds_stride > 1 and downsample_type == "max":
            self.downsample = nn.MaxPool1d(n_ds_stride + 1, stride=n_ds_stride, padding=(n_ds_stride + 1) // 2)
        elif n_ds_stride > 1 and downsample_type == "avg":
            self.downsample = nn.Sequential(nn.AvgPool1d(n_ds_stride, stride=n_ds_stride),
                                            nn.Conv1d(n_embd, n_embd, 1))
        elif n_ds_stride > 1:
            raise ValueError(f"SGPBlock: downsample_type must be 'max' or 'avg', got {downsample_type!r}")
        else:
            self.downsample = nn.Identity()
        self.stride = max(int(n_ds_stride), 1)
        hidden = n_hidden if n_hidden is not None else 4 * n_embd
        self.mlp = nn.Sequential(nn.Conv1d(n_embd, hidden, 1), nn.GELU(), nn.Conv1d(hidden, n_embd, 1))
        self.drop_path_out: nn.Module
        self.drop_path_mlp: nn.Module
        if path_pdrop > 0.0:
            self.drop_path_out = AffineDropPath(n_embd, drop_prob=path_pdrop)
            self.drop_path_mlp = AffineDropPath(n_embd, drop_prob=path_pdrop)
        else:
            self.drop_path_out = nn.Identity()
            self.drop_path_mlp = nn.Identity()
        self.reset_branches(init_conv_vars)

    def reset_branches(self, std: float) -> None:
        """Depthwise branch convs: weights ~ N(0, std^2) (drawn even for std 0), biases 0."""
        for conv in (self.psi, self.fc, self.convw, self.convkw, self.global_fc):
            nn.init.normal_(conv.weight, 0.0, std)
        for conv in (self.psi, self.fc, self.convw, self.convkw, self.global_fc):
            assert conv.bias is not None
            nn.init.constant_(conv.bias, 0.0)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Args: x ``[B, D, T]``; mask ``[B, 1, T]`` bool. Returns: ``[B, D, T/s]``, ``[B, 1, T/s]``."""
        if x.shape[-1] % self.stride:
            raise ValueError(f"SGPBlock: sequence length {x.shape[-1]} is not divisible by stride {self.stride}")
        x = self.downsample(x)
        out_mask = mask[..., :: self.stride] if self.stride > 1 else mask  # nearest downsampling
        u = self.ln(x)
        phi = torch.relu(self.global_fc(u.mean(dim=-1, keepdim=True)))
        out = self.fc(u) * phi + (self.convw(u) + self.convkw(u)) * self.psi(u) + u
        out = x * out_mask.to(x.dtype) + self.drop_path_out(out)
        out = out + self.drop_path_mlp(self.mlp(self.gn(out)))
        return out, out_mask


class SGPBackbone(_Embedding):
    """Conv embedding + SGP stem + strided SGP branch (TriDet's ``SGP`` backbone).

    Args:
        n_in: input channels.
        n_embd: model channels D.
        sgp_mlp_dim: MLP hidden width of every block.
        n_embd_ks: embedding conv kernel size.
        max_len: max_seq_len (length of the absolute position table).
        arch: (embedding convs, stem blocks, branch blocks).
        scale_factor: downsampling between levels.
        with_ln: LayerNorm after the embedding convs.
        path_pdrop: stochastic depth of the branch blocks.
        downsample_type: ``'max'`` or ``'avg'``.
        sgp_win_size: window per level (``1 + arch[2]`` entries; the stem always uses 1).
        k: long-kernel scale.
        init_conv_vars: std of the depthwise branch weights at init (0: dead branches, see module docstring).
        use_abs_pe: add a sinusoidal position encoding after the embedding.
    """

    def __init__(self, n_in: int, n_embd: int, sgp_mlp_dim: int, n_embd_ks: int, max_len: int,
                 arch: Sequence[int] = (2, 2, 5), scale_factor: int = 2, with_ln: bool = False,
                 path_pdrop: float = 0.0, downsample_type: str = "max", sgp_win_size: Sequence[int] = (-1,) * 6,
                 k: float = 1.5, init_conv_vars: float = 0.0, use_abs_pe: bool = False) -> None:
        if len(arch) != 3 or len(sgp_win_size) != 1 + arch[2]:
            raise ValueError(f"SGPBackbone: arch must have 3 entries and sgp_win_size 1 + arch[2], got "
                             f"arch={list(arch)}, sgp_win_size={list(sgp_win_size)}")
        super().__init__(n_in, n_embd, n_embd_ks, arch[0], with_ln)
        self.max_len = max_len
        self.use_abs_pe = use_abs_pe
        if use_abs_pe:
            self.register_buffer("pos_embd", sinusoid_encoding(max_len, n_embd) / (n_embd**0.5), persistent=False)
        self.stem = nn.ModuleList(
            SGPBlock(n_embd, 1, 1, k=k, n_hidden=sgp_mlp_dim, init_conv_vars=init_conv_vars)
            for _ in range(arch[1]))
        self.branch = nn.ModuleList(
            SGPBlock(n_embd, int(sgp_win_size[1 + idx]), scale_factor, k=k, n_hidden=sgp_mlp_dim,
                     path_pdrop=path_pdrop, downsample_type=downsample_type, init_conv_vars=init_conv_vars)
            for idx in range(arch[2]))
        self.apply(_zero_linear_biases)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Args: x ``[B, C_in, T]``; mask ``[B, 1, T]`` bool. Returns per-level ``[B, D, T_l]``, ``[B, 1, T_l]``."""
        x, mask = self._embed(x, mask)
        if self.use_abs_pe:
            t = x.shape[-1]
            pe = self.get_buffer("pos_embd")
            if self.training and t > self.max_len:
                raise ValueError(f"SGPBackbone: T={t} exceeds max_len={self.max_len} in training")
            if not self.training and t >= self.max_len:
                pe = F.interpolate(pe, t, mode="linear", align_corners=False)
            x = x + pe[:, :, :t] * mask.to(x.dtype)
        for block in self.stem:
            x, mask = block(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks
