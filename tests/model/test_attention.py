"""Local (banded) attention against a naive dense float64 reference, and the full conv attention."""

from __future__ import annotations

import time

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tadformer.model.attention import LocalMaskedMHCA, MaskedMHCA, banded_attention, banded_attention_owned
from tadformer.model.layers import ChannelLayerNorm


def _mask(lengths: list[int], t: int) -> torch.Tensor:
    return torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]  # [B, T]


def _dense_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                     w: int) -> torch.Tensor:
    """Naive [T, T] masked attention on ``[N, d, T]``: band |i-j| <= w, -inf for padded keys,
    padded query rows 0."""
    t = q.shape[-1]
    scores = q.transpose(1, 2) @ k  # [N, T, T]
    idx = torch.arange(t)
    band = (idx[:, None] - idx[None, :]).abs() <= w
    allowed = band[None] & mask[:, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    probs = probs.masked_fill(~mask[:, :, None], 0.0)
    return (probs @ v.transpose(1, 2)).transpose(1, 2)


@pytest.mark.parametrize(("t", "w", "lengths"), [(37, 9, [37, 20, 1]), (50, 9, [50, 49, 31]),
                                                  (11, 9, [11, 7, 3]), (18, 2, [18, 9, 17])])
def test_banded_attention_equals_dense_reference(t: int, w: int, lengths: list[int]) -> None:
    g = torch.Generator().manual_seed(t * 100 + w)
    n = len(lengths)
    q, k, v = (torch.randn(n, 5, t, generator=g, dtype=torch.float64) for _ in range(3))
    mask = _mask(lengths, t)
    out = banded_attention(q, k, v, mask, w)
    ref = _dense_reference(q, k, v, mask, w)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    assert torch.all(out.transpose(1, 2)[~mask] == 0)


def test_banded_attention_all_masked_row_has_no_nan() -> None:
    q = k = v = torch.randn(2, 3, 12)
    mask = _mask([12, 0], 12)
    out = banded_attention(q, k, v, mask, 4)
    assert torch.isfinite(out).all() and torch.all(out[1] == 0)


def _module_reference(attn: LocalMaskedMHCA, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The module's projections + the dense reference attention (official semantics)."""
    b = x.shape[0]
    q, qm = attn.query_conv(x, mask)
    k, km = attn.key_conv(x, mask)
    v, _ = attn.value_conv(x, mask)
    q, k, v = attn.query(attn.query_norm(q)), attn.key(attn.key_norm(k)), attn.value(attn.value_norm(v))
    h, d = attn.n_head, attn.n_channels
    q, k, v = (y.reshape(b * h, d, -1) for y in (q, k, v))
    flat = km.expand(b, h, km.shape[-1]).reshape(b * h, -1)
    out = _dense_reference(q * attn.scale, k, v, flat, attn.window_overlap)
    out = out.reshape(b, h * d, -1)
    return attn.proj(out) * qm


@pytest.mark.parametrize("stride", [1, 2])
def test_local_mhca_equals_dense_reference(stride: int) -> None:
    torch.manual_seed(3)
    attn = LocalMaskedMHCA(16, 4, 19, stride, stride).double().eval()
    for p in attn.parameters():  # non-trivial LayerNorm / bias values, so padded steps are not zero
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 16, 46, dtype=torch.float64)
    mask = _mask([46, 29], 46)[:, None, :]
    out, out_mask = attn(x, mask)
    assert out.shape == (2, 16, 46 // stride)
    assert torch.equal(out_mask, mask[..., ::stride])
    torch.testing.assert_close(out, _module_reference(attn, x, mask), atol=1e-12, rtol=1e-12)


def test_local_with_huge_window_equals_global_attention() -> None:
    torch.manual_seed(4)
    local = LocalMaskedMHCA(8, 2, 41).double().eval()
    glob = MaskedMHCA(8, 2).double().eval()
    for p in local.parameters():
        torch.nn.init.normal_(p, std=0.3)
    glob.load_state_dict(local.state_dict())  # same parameter names and shapes
    x = torch.randn(2, 8, 20, dtype=torch.float64)
    mask = _mask([20, 13], 20)[:, None, :]
    torch.testing.assert_close(local(x, mask)[0], glob(x, mask)[0], atol=1e-12, rtol=1e-12)


def test_attention_state_dict_order_key_before_query() -> None:
    keys = list(LocalMaskedMHCA(8, 2, 19).state_dict())
    assert keys == [
        "query_conv.conv.weight", "query_norm.weight", "query_norm.bias",
        "key_conv.conv.weight", "key_norm.weight", "key_norm.bias",
        "value_conv.conv.weight", "value_norm.weight", "value_norm.bias",
        "key.weight", "key.bias", "query.weight", "query.bias", "value.weight", "value.bias",
        "proj.weight", "proj.bias",
    ]


class _MaxNumel(TorchDispatchMode):
    """Records the largest tensor produced by any op."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.max_numel = max(self.max_numel, o.numel())
        return out


def test_long_sequence_is_memory_light() -> None:
    t, d, heads, win = 12672, 32, 4, 19  # the longest THUMOS test video after padding
    attn = LocalMaskedMHCA(d, heads, win).eval()
    x = torch.randn(1, d, t)
    mask = _mask([12500], t)[:, None, :]
    start = time.perf_counter()
    with torch.no_grad(), _MaxNumel() as probe:
        out, _ = attn(x, mask)
    assert time.perf_counter() - start < 10.0
    assert torch.isfinite(out).all()
    # no [T, T] matrix: the largest tensor is the [B*heads, T, window] score band
    assert probe.max_numel <= heads * t * win


def test_owned_variant_empties_its_list_and_gives_the_same_result() -> None:
    torch.manual_seed(5)
    q, k, v = (torch.randn(3, 8, 45, dtype=torch.float64) for _ in range(3))
    mask = _mask([45, 30, 7], 45)
    qkv: list[torch.Tensor | None] = [q.clone(), k.clone(), v.clone()]
    out = banded_attention_owned(qkv, mask, 4)
    assert qkv == [None, None, None]  # the caller's only references are gone
    torch.testing.assert_close(out, banded_attention(q, k, v, mask, 4), atol=0, rtol=0)
    assert out.is_contiguous()


@pytest.mark.parametrize("cls", [LocalMaskedMHCA, MaskedMHCA])
def test_pre_norm_inside_attention_equals_norm_before_it(cls: type) -> None:
    torch.manual_seed(6)
    attn = cls(16, 2, 5) if cls is LocalMaskedMHCA else cls(16, 2)
    norm = ChannelLayerNorm(16)
    x = torch.randn(2, 16, 24)
    mask = _mask([24, 13], 24)[:, None, :].reshape(2, 1, 24)
    with torch.no_grad():
        a, ma = attn(norm(x), mask)
        b, mb = attn(x, mask, pre_norm=norm)
    assert torch.equal(a, b) and torch.equal(ma, mb)
