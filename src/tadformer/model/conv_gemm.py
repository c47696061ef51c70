"""Dense 1-D convolutions as one matrix product, for the bfloat16 path (``--amp bf16``).

On CPUs with AMX or AVX-512 BF16, oneDNN's bf16 matrix product runs several times faster than its bf16
``conv1d`` for this model's shapes (measured on an AMX Xeon, one thread, T = 4608: 512 -> 512 channels
kernel 1: 116 vs 1048 GFLOP/s; kernel 3: 277 vs 725), while float32 convolutions are already at the
float32 GEMM peak. A kernel-``k`` convolution is ``W [O, k*C] @ X [B, k*C, T]`` where ``X`` stacks the
``k`` shifted copies of the zero-padded input; a 1x1 convolution is ``W [O, C] @ x``.

Which of the two runs is decided per shape by measuring both once per process (:func:`prefer_gemm`),
unless ``TADFORMER_CONV_PATH`` is ``gemm`` or ``conv``. Only bfloat16/float16 work takes this path
(a half-precision input, or autocast active): float32 always runs ``F.conv1d``, bit for bit the
official numerics.
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HALF = (torch.bfloat16, torch.float16)
_CHOICE: dict[tuple[int, ...], bool] = {}  # (C, O, k, T, dtype id, device type) -> use the GEMM


def conv1d_as_gemm(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int) -> Tensor:
    """``F.conv1d(x, weight, bias, stride=1, padding=padding)`` (groups 1, dilation 1) as one matmul.

    Args:
        x: ``[B, C, T]``.
        weight: ``[O, C, k]``.
        bias: ``[O]`` or None.
        padding: zeros on each side (``k // 2`` keeps the length).

    Returns:
        ``[B, O, T + 2 * padding - k + 1]`` in the dtype of the product.
    """
    out_ch, in_ch, k = weight.shape
    w2 = weight.permute(0, 2, 1).reshape(out_ch, k * in_ch)  # [O, k*C], tap-major like the stacked input
    if k == 1 and padding == 0:
        cols = x
    else:
        xp = F.pad(x, (padding, padding))
        t_out = xp.shape[-1] - k + 1
        cols = torch.cat([xp[:, :, j:j + t_out] for j in range(k)], dim=1)  # [B, k*C, T_out]
    out = torch.matmul(w2, cols)  # [B, O, T_out]
    if bias is not None:
        out = out + bias.to(out.dtype)[:, None]
    return out


def _half_mode(x: Tensor) -> torch.dtype | None:
    if x.dtype in HALF:
        return x.dtype
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        return dtype if dtype in HALF else None
    return None


def _path_override() -> str:
    path = os.environ.get("TADFORMER_CONV_PATH", "auto").strip().lower()
    if path not in ("auto", "gemm", "conv"):
        raise ValueError(f"TADFORMER_CONV_PATH must be auto, gemm or conv, got {path!r}")
    return path


def prefer_gemm(conv: nn.Conv1d, x: Tensor, dtype: torch.dtype) -> bool:
    """Whether the matmul form is faster than ``F.conv1d`` for this shape and dtype (measured once, cached)."""
    path = _path_override()
    if path != "auto":
        return path == "gemm"
    key = (conv.in_channels, conv.out_channels, conv.kernel_size[0], x.shape[0], x.shape[-1],
           hash(dtype), hash(x.device.type))
    choice = _CHOICE.get(key)
    if choice is None:
        with torch.no_grad():
            xs = x.detach().to(dtype)
            w, b = conv.weight.detach().to(dtype), None if conv.bias is None else conv.bias.detach().to(dtype)
            pad = int(conv.padding[0])
            runs = {"gemm": lambda: conv1d_as_gemm(xs, w, b, pad), "conv": lambda: F.conv1d(xs, w, b, 1, pad)}
            best = {}
            for name, fn in runs.items():
                fn()  # warm-up (oneDNN primitive creation)
                start = time.perf_counter()
                fn()
                best[name] = time.perf_counter() - start
        choice = _CHOICE[key] = best["gemm"] < best["conv"]
    return choice


def gemm_eligible(conv: nn.Conv1d) -> bool:
    """Dense, stride-1, undilated, zero-padded 1-D convolutions."""
    return (conv.groups == 1 and conv.stride[0] == 1 and conv.dilation[0] == 1 and conv.padding_mode == "zeros"
            and isinstance(conv.padding[0], int))


class HalfGemmConv1d(nn.Conv1d):
    """``nn.Conv1d`` that, in bfloat16/float16 work, runs as a matrix product when that is faster here.

    Same parameters and state dict as ``nn.Conv1d``; float32 calls are ``nn.Conv1d.forward`` itself.
    Installed on a built model by :func:`use_half_gemm_convs`.
    """

    def forward(self, x: Tensor) -> Tensor:
        dtype = _half_mode(x)
        if dtype is None or not gemm_eligible(self):
            return super().forward(x)
        weight, bias = self.weight, self.bias
        if not torch.is_grad_enabled():  # inference: the half weights are cast once, not at every call
            cached = getattr(self, "_half_weights", None)
            stamp = (dtype, self.weight._version, self.weight.data_ptr())
            if cached is None or cached[0] != stamp:
                cached = (stamp, weight.detach().to(dtype), None if bias is None else bias.detach().to(dtype))
                self._half_weights = cached
            weight, bias = cached[1], cached[2]
        else:
            weight = weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        if not prefer_gemm(self, x, dtype):  # what autocast's conv1d would do, also for a half input without it
            return F.conv1d(x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype), 1,
                            int(self.padding[0]))
        return conv1d_as_gemm(x.to(dtype), weight, bias, int(self.padding[0]))


def use_half_gemm_convs(model: nn.Module) -> int:
    """Let every dense ``nn.Conv1d`` of ``model`` take the matmul path in half precision; returns how many.

    The modules keep their parameters (and state-dict keys); only their class changes.
    """
    n = 0
    for module in model.modules():
        if type(module) is nn.Conv1d and gemm_eligible(module):
            module.__class__ = HalfGemmConv1d
            n += 1
    return n
