"""The half-precision matmul path of dense 1-D convolutions, and the LayerNorm without slow transposes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tadformer.model import build_model
from tadformer.model import conv_gemm as G
from tadformer.model.layers import ChannelLayerNorm, MaskedConv1d, channels_first


@pytest.mark.parametrize(("c_in", "c_out", "k", "t"), [(8, 5, 3, 17), (6, 6, 1, 9), (4, 7, 5, 12), (3, 2, 3, 1)])
def test_matmul_form_equals_conv1d_with_gradients(c_in: int, c_out: int, k: int, t: int) -> None:
    g = torch.Generator().manual_seed(k * 100 + t)
    x = torch.randn(2, c_in, t, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(c_out, c_in, k, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(c_out, dtype=torch.float64, generator=g, requires_grad=True)
    ref = F.conv1d(x, w, b, padding=k // 2)
    out = G.conv1d_as_gemm(x, w, b, k // 2)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(out.square().sum(), (x, w, b))
    ref_grads = torch.autograd.grad(ref.square().sum(), (x, w, b))
    for got, exp in zip(grads, ref_grads):
        torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-12)


def _conv(c_in: int = 16, c_out: int = 12, k: int = 3) -> nn.Conv1d:
    torch.manual_seed(0)
    conv = nn.Conv1d(c_in, c_out, k, padding=k // 2)
    assert G.use_half_gemm_convs(nn.Sequential(conv)) == 1 and type(conv) is G.HalfGemmConv1d
    return conv


def test_float32_calls_are_nn_conv1d_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TADFORMER_CONV_PATH", "gemm")
    conv = _conv()
    x = torch.randn(2, 16, 40)
    assert torch.equal(conv(x), F.conv1d(x, conv.weight, conv.bias, padding=1))


@pytest.mark.parametrize("path", ["gemm", "conv", "auto"])
def test_bf16_paths_agree_at_bf16_precision(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TADFORMER_CONV_PATH", path)
    conv = _conv()
    x = torch.randn(2, 16, 40)
    with torch.no_grad():
        ref = F.conv1d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
    assert out.dtype == torch.bfloat16
    assert float((out.double() - ref).abs().max()) <= 0.02 * float(ref.abs().max())
    with torch.inference_mode():
        out_half = conv(x.bfloat16())  # a bf16 input without autocast takes the same path
    assert out_half.dtype == torch.bfloat16
    assert float((out_half.double() - ref).abs().max()) <= 0.02 * float(ref.abs().max())


def test_cached_half_weights_follow_weight_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TADFORMER_CONV_PATH", "gemm")
    conv = _conv()
    x = torch.randn(1, 16, 20)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        first = conv(x)
    with torch.no_grad():
        conv.weight.mul_(2.0)
        conv.bias.mul_(2.0)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        second = conv(x)
    torch.testing.assert_close(second.float(), 2 * first.float(), rtol=2e-2, atol=2e-2)


def test_bf16_training_through_the_matmul_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TADFORMER_CONV_PATH", "gemm")
    conv = _conv()
    x = torch.randn(2, 16, 30)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = conv(x).float().square().mean()
    loss.backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32
    ref_w = conv.weight.detach().clone().requires_grad_(True)
    F.conv1d(x, ref_w, conv.bias.detach(), padding=1).square().mean().backward()
    assert ref_w.grad is not None
    torch.testing.assert_close(conv.weight.grad, ref_w.grad, rtol=0.05, atol=0.05 * float(ref_w.grad.abs().max()))


def test_dispatch_is_measured_once_per_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TADFORMER_CONV_PATH", "auto")
    monkeypatch.setattr(G, "_CHOICE", {})
    conv = _conv()
    x = torch.randn(1, 16, 64, dtype=torch.bfloat16)
    assert isinstance(G.prefer_gemm(conv, x, torch.bfloat16), bool)
    assert len(G._CHOICE) == 1
    G.prefer_gemm(conv, x, torch.bfloat16)
    G.prefer_gemm(conv, torch.randn(1, 16, 32, dtype=torch.bfloat16), torch.bfloat16)
    assert len(G._CHOICE) == 2
    monkeypatch.setenv("TADFORMER_CONV_PATH", "fast")
    with pytest.raises(ValueError, match="TADFORMER_CONV_PATH must be auto, gemm or conv"):
        G.prefer_gemm(conv, x, torch.bfloat16)


def test_only_dense_stride1_convs_are_switched() -> None:
    dense, depthwise, strided = nn.Conv1d(4, 4, 3, padding=1), nn.Conv1d(4, 4, 3, padding=1, groups=4), \
        nn.Conv1d(4, 4, 3, stride=2, padding=1)
    assert G.use_half_gemm_convs(nn.Sequential(dense, depthwise, strided)) == 1
    assert type(depthwise) is nn.Conv1d and type(strided) is nn.Conv1d


def test_built_models_keep_their_state_dict(tiny_cfg) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    switched = [m for m in model.modules() if type(m) is G.HalfGemmConv1d]
    assert switched and all(isinstance(m, nn.Conv1d) for m in switched)
    keys = set(model.state_dict())
    assert not any("half" in k for k in keys)
    masked = [m for m in model.modules() if isinstance(m, MaskedConv1d) and m.conv.groups == 1]
    assert all(type(m.conv) is G.HalfGemmConv1d for m in masked)


@pytest.mark.parametrize("b", [1, 3])
def test_channels_first_and_half_layer_norm(b: int) -> None:
    y = torch.randn(b, 7, 5)
    assert torch.equal(channels_first(y), y.transpose(1, 2))
    assert channels_first(y).is_contiguous()
    ln = ChannelLayerNorm(5)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(b, 5, 11)
    exact = ln(x)
    ln.exact = False
    torch.testing.assert_close(ln(x), exact, rtol=1e-5, atol=1e-5)
    half = ln(x.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), exact, rtol=0.03, atol=0.03)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = ln(x)
    assert auto.dtype == torch.float32  # a float32 input is normalised in float32 under autocast too
    torch.testing.assert_close(auto, exact, rtol=1e-5, atol=1e-5)
