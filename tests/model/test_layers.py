"""Tests of the basic layers: masked conv, channel LayerNorm, Scale, LayerScale + drop path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tadformer.model.layers import (
    AffineDropPath,
    ChannelLayerNorm,
    MaskedConv1d,
    Scale,
    conv1d_in_time_chunks,
    drop_path,
    fill_time_chunks,
    forced_droppath_masks,
    prior_bias,
    sinusoid_encoding,
)


def _mask(lengths: list[int], t: int) -> torch.Tensor:
    return (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None])[:, None, :]


def test_masked_conv_hand_computed() -> None:
    conv = MaskedConv1d(1, 1, 3, bias=True)
    assert conv.conv.bias is not None
    assert torch.equal(conv.conv.bias, torch.zeros(1))  # bias zeroed at construction
    with torch.no_grad():
        conv.conv.weight.copy_(torch.tensor([[[1.0, 2.0, 3.0]]]))
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]])
    y, m = conv(x, _mask([4], 6))
    # y[i] = x[i-1] + 2 x[i] + 3 x[i+1] with zero padding, then times the mask; x[4] leaks into y[3]
    assert y.tolist() == [[[8.0, 14.0, 20.0, 26.0, 0.0, 0.0]]]
    assert m.dtype == torch.bool and m.tolist() == _mask([4], 6).tolist()


def test_masked_conv_stride2_mask_and_values() -> None:
    conv = MaskedConv1d(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        conv.conv.weight.copy_(torch.tensor([[[1.0, 10.0, 100.0]]]))
    x = torch.arange(1.0, 9.0)[None, None, :]  # 1..8
    mask = _mask([5], 8)
    y, m = conv(x, mask)
    # output i is centred on input 2i; the mask is the nearest-neighbour subsample mask[2i]
    assert m.tolist() == [[[True, True, True, False]]]
    assert y.tolist() == [[[0 + 10 + 200, 2 + 30 + 400, 4 + 50 + 600, 0.0]]]


def test_masked_conv_padded_tail_only_leaks_into_boundary() -> None:
    torch.manual_seed(0)
    conv = MaskedConv1d(4, 6, 3)
    x = torch.randn(1, 4, 20)
    mask = _mask([13], 20)
    y1, _ = conv(x, mask)
    x2 = x.clone()
    x2[..., 13:] = torch.randn(1, 4, 7) * 100
    y2, _ = conv(x2, mask)
    assert torch.equal(y1[..., :12], y2[..., :12])  # k//2 = 1: only the last valid step sees the tail
    assert not torch.allclose(y1[..., 12], y2[..., 12])  # the documented leak
    assert torch.equal(y2[..., 13:], torch.zeros(1, 6, 7))


@pytest.mark.parametrize(("c_in", "c_out", "k", "groups", "t"), [(6, 5, 3, 1, 23), (8, 8, 3, 8, 17), (4, 7, 5, 1, 9),
                                                              (4, 3, 1, 1, 10)])
def test_conv_in_time_chunks_equals_the_one_shot_conv(c_in: int, c_out: int, k: int, groups: int, t: int) -> None:
    torch.manual_seed(3)
    conv = torch.nn.Conv1d(c_in, c_out, k, padding=k // 2, groups=groups)
    x = torch.randn(2, c_in, t, dtype=torch.float64)
    conv = conv.double()
    for chunk in (1, 2, 4, t - 1, t, t + 5):
        torch.testing.assert_close(conv1d_in_time_chunks(conv, x, chunk), conv(x), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="stride 1"):
        conv1d_in_time_chunks(torch.nn.Conv1d(2, 2, 3, stride=2, padding=1), x[:, :2], 4)


def test_fill_time_chunks_concatenates_in_place() -> None:
    full = torch.arange(2 * 3 * 10, dtype=torch.float32).reshape(2, 3, 10)
    calls: list[tuple[int, int]] = []

    def chunk(start: int, end: int) -> torch.Tensor:
        calls.append((start, end))
        return full[..., start:end] * 1.0

    assert torch.equal(fill_time_chunks(chunk, 10, 4), full)
    assert calls == [(0, 4), (4, 8), (8, 10)]
    calls.clear()
    assert torch.equal(fill_time_chunks(chunk, 10, 16), full) and calls == [(0, 10)]


def test_masked_conv_chunks_long_sequences_only_without_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    import tadformer.model.layers as layers

    monkeypatch.setattr(layers, "CONV_CHUNK_STEPS", 4)
    calls: list[int] = []
    real = layers.conv1d_in_time_chunks
    monkeypatch.setattr(layers, "conv1d_in_time_chunks", lambda c, x, n: calls.append(n) or real(c, x, n))
    torch.manual_seed(4)
    conv = MaskedConv1d(3, 5, 3)
    x, mask = torch.randn(1, 3, 11), torch.ones(1, 1, 11, dtype=torch.bool)
    y_grad, _ = conv(x, mask)
    assert calls == []  # autograd on: one conv (training keeps the original graph)
    with torch.no_grad():
        y_chunked, _ = conv(x, mask)
    assert calls == [4]
    torch.testing.assert_close(y_chunked, y_grad.detach(), atol=1e-6, rtol=1e-6)


def test_masked_conv_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="odd"):
        MaskedConv1d(2, 2, 4)
    conv = MaskedConv1d(2, 2, 3, stride=2)
    with pytest.raises(ValueError, match="divisible"):
        conv(torch.zeros(1, 2, 7), _mask([7], 7))


def test_channel_layernorm_hand_values() -> None:
    ln = ChannelLayerNorm(4)
    assert ln.weight.shape == (1, 4, 1) and ln.bias.shape == (1, 4, 1)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1)
    y = ln(x)
    # mean 2.5, biased variance 1.25
    expect = (torch.tensor([1.0, 2.0, 3.0, 4.0]) - 2.5) / math.sqrt(1.25 + 1e-5)
    torch.testing.assert_close(y.view(4), expect, atol=0, rtol=1e-6)
    with torch.no_grad():
        ln.weight.fill_(2.0)
        ln.bias.fill_(0.5)
    torch.testing.assert_close(ln(x).view(4), expect * 2 + 0.5, atol=0, rtol=1e-6)


def test_channel_layernorm_formula_is_the_official_one() -> None:
    torch.manual_seed(1)
    ln = ChannelLayerNorm(16)
    x = torch.randn(2, 16, 9) * 3 + 1
    mu = x.mean(dim=1, keepdim=True)
    res = x - mu
    expect = res / torch.sqrt((res**2).mean(dim=1, keepdim=True) + 1e-5)
    assert torch.equal(ln(x), expect)  # bit for bit, the same op sequence
    with torch.no_grad():  # inference runs the same ops in place: still bit for bit
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
        expect_affine = expect * ln.weight + ln.bias
        assert torch.equal(ln(x), expect_affine)
    assert torch.equal(ln(x), expect_affine)  # and with autograd on
    ref = F.layer_norm(x.transpose(1, 2), (16,), ln.weight.view(-1), ln.bias.view(-1)).transpose(1, 2)
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="expected"):
        ln(torch.zeros(2, 8, 3))


def test_channel_layernorm_under_mixed_precision_normalises_in_float32() -> None:
    """bf16 input or an active autocast: the fused kernel (float32 statistics), close to the formula on
    the same values; the bit-exact op-by-op formula is only for float32 outside autocast."""
    torch.manual_seed(2)
    ln = ChannelLayerNorm(64)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 2.0)
        ln.bias.uniform_(-1.0, 1.0)
    x = (torch.randn(2, 64, 33) * 50 + 300).bfloat16()  # a large mean: bf16 statistics would lose it
    ref = ln(x.float())
    y = ln(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, atol=0.02, rtol=0.01)  # one bf16 rounding of the output
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y32 = ln(x.float())
    assert y32.dtype == torch.float32  # fused kernel on float32 input under autocast
    torch.testing.assert_close(y32, ref, atol=1e-5, rtol=1e-5)


def test_scale_is_a_scalar_parameter() -> None:
    s = Scale()
    assert s.scale.dim() == 0 and s.scale.item() == 1.0
    with torch.no_grad():
        s.scale.fill_(3.0)
    assert s(torch.tensor([1.0, -2.0])).tolist() == [3.0, -6.0]


def test_drop_path_formula() -> None:
    x = torch.ones(3, 2, 4)
    assert drop_path(x, 0.1, training=False) is x
    assert drop_path(x, 0.0, training=True) is x
    forced = drop_path(x, 0.1, training=True, keep_mask=torch.tensor([1.0, 0.0, 1.0]))
    assert torch.equal(forced[0], x[0] / 0.9) and torch.equal(forced[1], torch.zeros(2, 4))
    # random mode: mask = floor(0.9 + u) with u drawn as a [B, 1, 1] float tensor
    torch.manual_seed(5)
    u = torch.rand(3, 1, 1)
    torch.manual_seed(5)
    out = drop_path(x, 0.1, training=True)
    assert torch.equal(out, x.div(0.9) * torch.floor(0.9 + u))


def test_droppath_draw_matches_golden_keep_masks(golden_dir) -> None:
    f = np.load(golden_dir / "train_step.npz")
    for s in (1, 2, 3):
        u = f[f"step{s}/droppath_uniform_draws"]
        keep = f[f"step{s}/droppath_keep_mask"]
        mine = torch.floor(0.9 + torch.from_numpy(u))  # the float32 computation of drop_path
        assert torch.equal(mine, torch.from_numpy(keep))


def test_affine_drop_path_layerscale() -> None:
    layer = AffineDropPath(5, drop_prob=0.1)
    assert layer.scale.shape == (1, 5, 1) and torch.all(layer.scale == torch.tensor(1e-4))
    layer.eval()
    x = torch.randn(2, 5, 3)
    assert torch.equal(layer(x), layer.scale * x)


def test_forced_droppath_masks_sets_rows_in_module_order() -> None:
    model = torch.nn.Sequential(AffineDropPath(2, 0.1), torch.nn.Identity(), AffineDropPath(2, 0.1))
    model.train()
    x = torch.ones(2, 2, 1)
    with forced_droppath_masks(model, torch.tensor([[1.0, 0.0], [0.0, 1.0]])):
        assert model[0](x)[:, 0, 0].tolist() == pytest.approx([1e-4 / 0.9, 0.0])
        assert model[2](x)[:, 0, 0].tolist() == pytest.approx([0.0, 1e-4 / 0.9])
    assert model[0].forced_keep_mask is None and model[2].forced_keep_mask is None
    with pytest.raises(ValueError, match="one row per drop-path layer"):
        with forced_droppath_masks(model, torch.ones(3, 2)):
            pass


def test_sinusoid_encoding_and_prior_bias() -> None:
    pe = sinusoid_encoding(5, 4)
    assert pe.shape == (1, 4, 5)
    p = torch.arange(5, dtype=torch.float64)
    torch.testing.assert_close(pe[0, 0], torch.sin(p).float())
    torch.testing.assert_close(pe[0, 1], torch.cos(p).float())
    torch.testing.assert_close(pe[0, 2], torch.sin(p / 100.0).float())  # 10000 ** (2/4) = 100
    assert prior_bias(0.01) == pytest.approx(-4.59512, abs=1e-5)
