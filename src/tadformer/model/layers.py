"""Basic layers of ActionFormer (port of the official ``libs/modeling/blocks.py`` building blocks).

Every layer works on ``[B, C, T]`` tensors with a ``[B, 1, T]`` bool mask (True = valid step),
exactly like the official code, so that padded positions carry the same (non-zero) values as
there: masked convs zero their *output* but read their input unmasked, and LayerNorm / ReLU run
after the masking. Parameter names and construction order follow the official modules, so the
state-dict keys match and the torch CPU generator is consumed identically at init.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# True (default): the official op-by-op LayerNorm formula, bit for bit; False: the fused kernel
# (see :func:`use_fused_layer_norm`).
EXACT_LAYER_NORM = True


# dtypes of mixed precision: LayerNorm statistics and softmax are computed in float32 for them
HALF_DTYPES = (torch.float16, torch.bfloat16)


def time_window(x: Tensor, start: int, stop: int) -> Tensor:
    """Steps ``start .. stop - 1`` of ``x [..., T]`` (a copy), zeros outside ``0 .. T - 1``."""
    t = x.shape[-1]
    lo, hi = max(start, 0), min(stop, t)
    return F.pad(x[..., lo:hi], (lo - start, stop - hi))


# Without autograd, stride-1 convolutions over longer sequences run over time chunks of this many steps
# (see :func:`conv1d_in_time_chunks`).
CONV_CHUNK_STEPS = 1152


def conv1d_in_time_chunks(conv: nn.Conv1d, x: Tensor, chunk_steps: int) -> Tensor:
    """``conv(x)`` for a stride-1, 'same'-padded ``nn.Conv1d``, computed over time chunks.

    Each chunk reads its ``padding`` neighbours on both sides (zeros only at the sequence ends), so
    every output step sees exactly the inputs of the one-shot convolution; only the convolution
    kernel's internal blocking (float summation order) can differ. The backend's transient copies of
    the input (layout reorders, e.g. of the 2048-channel features) are then chunk-sized instead of
    sequence-sized.

    Args:
        conv: the convolution (stride 1, padding ``kernel_size // 2``, dilation 1).
        x: ``[B, C_in, T]``.
        chunk_steps: output steps per chunk.

    Returns:
        ``[B, C_out, T]``.
    """
    if conv.stride[0] != 1 or conv.dilation[0] != 1 or conv.padding[0] != conv.kernel_size[0] // 2:
        raise ValueError("conv1d_in_time_chunks: needs stride 1, dilation 1 and 'same' padding")
    pad, t = conv.kernel_size[0] // 2, x.shape[-1]

    def chunk(start: int, end: int) -> Tensor:  # inputs start - pad .. end + pad, zeros beyond the ends
        return F.conv1d(time_window(x, start - pad, end + pad), conv.weight, conv.bias, 1, 0, 1, conv.groups)

    return fill_time_chunks(chunk, t, chunk_steps)


def fill_time_chunks(chunk: Callable[[int, int], Tensor], t: int, chunk_steps: int) -> Tensor:
    """Concatenate ``chunk(start, end)`` (each ``[..., end - start]``) over ``0 .. t`` along time.

    The output is allocated once (dtype and device of the first chunk) and filled chunk by chunk, so
    at most one chunk exists besides it (a ``torch.cat`` of a list would hold all of them as well).
    """
    first = chunk(0, min(chunk_steps, t))
    if first.shape[-1] == t:
        return first
    out = first.new_empty((*first.shape[:-1], t))
    out[..., : first.shape[-1]] = first
    del first
    for start in range(chunk_steps, t, chunk_steps):
        end = min(start + chunk_steps, t)
        out[..., start:end] = chunk(start, end)
    return out


class MaskedConv1d(nn.Module):
    """1-D convolution whose output is multiplied by the (subsampled) mask (official ``MaskedConv1D``).

    The wrapped ``nn.Conv1d`` is stored as ``.conv`` (state-dict key ``<name>.conv.weight``). Any
    bias is zeroed at construction, after PyTorch's default init has drawn it from the RNG.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: odd kernel size K; the padding is always ``K // 2``.
        stride: 1 or the downsampling factor; the output mask is ``mask[..., ::stride]``
            (the nearest-neighbour interpolation of the official code).
        groups: conv groups (``in_channels`` for a depthwise conv).
        bias: whether the conv has a (zero-initialised) bias.

    Example:
        >>> conv = MaskedConv1d(8, 16, 3)
        >>> y, m = conv(torch.randn(2, 8, 10), torch.ones(2, 1, 10, dtype=torch.bool))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"MaskedConv1d: kernel_size must be odd, got {kernel_size}")
        self.stride = stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, groups=groups, bias=bias)
        if self.conv.bias is not None:
            nn.init.constant_(self.conv.bias, 0.0)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Args: x ``[B, C_in, T]``; mask ``[B, 1, T]`` bool.

        Returns:
            ``([B, C_out, T // stride], [B, 1, T // stride] bool)``.
        """
        if x.shape[-1] % self.stride != 0:
            raise ValueError(
                f"MaskedConv1d: sequence length {x.shape[-1]} is not divisible by stride {self.stride}"
            )
        half_gemm = x.dtype in HALF_DTYPES or torch.is_autocast_enabled(x.device.type)
        if self.stride == 1 and x.shape[-1] > CONV_CHUNK_STEPS and not torch.is_grad_enabled() and not (
                half_gemm and type(self.conv) is not nn.Conv1d):  # (half precision: conv_gemm's matmul path)
            out = conv1d_in_time_chunks(self.conv, x, CONV_CHUNK_STEPS)  # inference: bounded transient memory
        else:
            out = self.conv(x)
        out_mask = mask[..., :: self.stride] if self.stride > 1 else mask
        # multiply (not masked_fill), like the official code: negative values become -0.0
        out = out * out_mask.to(out.dtype).detach()
        return out, out_mask.bool()


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of ``[B, C, T]`` (official ``LayerNorm``).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance; weight/bias have
    shape ``[1, C, 1]`` (init 1 and 0). By default the official formula runs op by op (bit for bit).
    Opt-in fast path (:func:`use_fused_layer_norm`, attribute ``exact = False``): the fused
    ``F.layer_norm`` kernel on the channel-last view, one pass instead of nine elementwise ops
    (about 10x faster on CPU); its rounding differs by about one ulp, inside the golden tolerances.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(1, num_channels, 1))
            self.bias = nn.Parameter(torch.zeros(1, num_channels, 1))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.exact = EXACT_LAYER_NORM

    def forward(self, x: Tensor) -> Tensor:
        """Args: x ``[B, C, T]``. Returns: ``[B, C, T]``."""
        if x.dim() != 3 or x.shape[1] != self.num_channels:
            raise ValueError(f"ChannelLayerNorm: expected [B, {self.num_channels}, T], got {list(x.shape)}")
        # mixed precision (half input, or under autocast) always takes the fused kernel: it accumulates in
        # float32, and the op-by-op formula exists only for bit-exact float32 parity
        mixed = x.dtype in HALF_DTYPES or torch.is_autocast_enabled(x.device.type)
        if self.exact and not mixed:
            mu = torch.mean(x, dim=1, keepdim=True)
            res = x - mu
            var = torch.mean(res**2, dim=1, keepdim=True)
            if torch.is_grad_enabled():
                out = res / torch.sqrt(var + self.eps)
                if self.affine:
                    out = out * self.weight + self.bias
                return out
            # inference: the same elementwise ops (identical bits), in place, so no extra [B, C, T] copies
            out = res.div_(torch.sqrt(var + self.eps))
            if self.affine:
                out = out.mul_(self.weight).add_(self.bias)
            return out
        # fused kernel on the channel-last view: one pass instead of nine; same formula, float rounding
        # differs by ~1 ulp (well inside the golden tolerances). Half inputs stay half (float32 statistics
        # inside the kernel), outside autocast's float32 cast of layer_norm.
        weight = self.weight.view(-1) if self.weight is not None else None
        bias = self.bias.view(-1) if self.bias is not None else None
        with torch.autocast(x.device.type, enabled=False):
            out = F.layer_norm(x.transpose(1, 2).contiguous(), (self.num_channels,), weight, bias, self.eps)
        return channels_first(out)


def channels_first(x_btc: Tensor) -> Tensor:
    """``[B, T, C] -> [B, C, T]`` contiguous, one 2-D transpose per item.

    On the CPU a batched ``transpose(1, 2).contiguous()`` in this direction runs ~8x slower than the
    2-D transposes of its items (measured: 16 ms against 1.9 ms for 4608 x 512 bfloat16).
    """
    if x_btc.dim() != 3:
        raise ValueError(f"channels_first: expected [B, T, C], got {list(x_btc.shape)}")
    out = x_btc.new_empty(x_btc.shape[0], x_btc.shape[2], x_btc.shape[1])
    for i in range(x_btc.shape[0]):
        out[i].copy_(x_btc[i].t())
    return out


def use_fused_layer_norm(model: nn.Module, enabled: bool = True) -> int:
    """Switch every :class:`ChannelLayerNorm` in ``model`` to the fused kernel (or back to exact).

    Returns:
        The number of LayerNorm modules switched.
    """
    layers = [m for m in model.modules() if isinstance(m, ChannelLayerNorm)]
    for layer in layers:
        layer.exact = not enabled
    return len(layers)


class Scale(nn.Module):
    """Multiply by a learnable scalar (0-dim parameter ``scale``, init 1.0)."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(init_value, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        """Args: x any shape. Returns: ``x * scale``."""
        return x * self.scale


def drop_path(x: Tensor, drop_prob: float = 0.0, training: bool = False,
              keep_mask: Tensor | None = None) -> Tensor:
    """Stochastic depth per sample: ``x / keep * floor(keep + U[0, 1))`` in training, else ``x``.

    Args:
        x: ``[B, ...]``.
        drop_prob: probability of dropping a whole sample's residual branch.
        training: no-op when False.
        keep_mask: optional forced ``[B]`` keep mask (1 keep, 0 drop) used instead of a random draw.

    Returns:
        Tensor with the shape of ``x``.
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    if keep_mask is None:
        mask = (keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device)).floor_()
    else:
        if keep_mask.numel() != x.shape[0]:
            raise ValueError(f"drop_path: forced keep mask has {keep_mask.numel()} entries, "
                             f"expected one per sample ({x.shape[0]})")
        mask = keep_mask.to(dtype=x.dtype, device=x.device).reshape(shape)
    return x.div(keep_prob) * mask


class AffineDropPath(nn.Module):
    """LayerScale followed by stochastic depth (official ``AffineDropPath``).

    ``scale`` is a ``[1, C, 1]`` parameter initialised to ``init_scale`` (1e-4). The output is
    ``drop_path(scale * x)``.

    Attributes:
        forced_keep_mask: when set (see :func:`forced_droppath_masks`), a ``[B]`` keep mask used
            in training instead of a random draw.
    """

    def __init__(self, num_dim: int, drop_prob: float = 0.0, init_scale: float = 1e-4) -> None:
        super().__init__()
        self.scale = nn.Parameter(init_scale * torch.ones((1, num_dim, 1)))
        self.drop_prob = drop_prob
        self.forced_keep_mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        """Args: x ``[B, C, T]``. Returns: ``[B, C, T]``."""
        return drop_path(self.scale * x, self.drop_prob, self.training, self.forced_keep_mask)


@contextmanager
def forced_droppath_masks(model: nn.Module, masks: Tensor) -> Iterator[None]:
    """Force the stochastic-depth keep masks of every ``AffineDropPath`` inside ``model``.

    Row ``r`` of ``masks`` goes to the r-th ``AffineDropPath`` in module order, which is also the
    call order of a forward: stem.0 attn, stem.0 mlp, stem.1 attn, ..., branch.4 mlp.

    Args:
        model: any module containing ``AffineDropPath`` layers.
        masks: ``[n_calls, B]`` (1 keep, 0 drop), e.g. ``droppath_keep_mask`` of the golden files.

    Raises:
        ValueError: if the number of rows differs from the number of drop-path layers.
    """
    layers = [m for m in model.modules() if isinstance(m, AffineDropPath)]
    if masks.dim() != 2 or masks.shape[0] != len(layers):
        raise ValueError(f"forced_droppath_masks: expected masks of shape [{len(layers)}, B] "
                         f"(one row per drop-path layer), got {list(masks.shape)}")
    try:
        for layer, row in zip(layers, masks):
            layer.forced_keep_mask = row
        yield
    finally:
        for layer in layers:
            layer.forced_keep_mask = None


def sinusoid_encoding(n_position: int, d_hid: int) -> Tensor:
    """Sinusoidal position table (official ``get_sinusoid_encoding``), computed in float64.

    Returns:
        ``[1, d_hid, n_position]`` float32: channel ``2i`` is ``sin(p / 10000^(2i/d))`` and
        channel ``2i+1`` is ``cos(p / 10000^(2i/d))``.
    """
    pos = np.arange(n_position, dtype=np.float64)[:, None]
    expo = 2 * (np.arange(d_hid) // 2) / d_hid
    table = pos / np.power(10000, expo)[None, :]
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table).float().unsqueeze(0).transpose(1, 2)


def prior_bias(prior_prob: float) -> float:
    """Classifier bias ``-log((1 - p) / p)`` giving an initial sigmoid output of ``p``."""
    return -math.log((1.0 - prior_prob) / prior_prob)
