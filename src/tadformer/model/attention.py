"""Multi-head convolutional self-attention (port of the official ``MaskedMHCA`` / ``LocalMaskedMHCA``).

Queries, keys and values are made by a depthwise masked conv (kernel 3, or ``stride + 1`` when
downsampling), a channel LayerNorm and a 1x1 conv. :class:`LocalMaskedMHCA` attends within a band
``|i - j| <= window_size // 2``; it is computed with block matmuls and a skew to cut out the band,
so memory is O(T * window) and no ``[T, T]`` matrix (nor the official sliding chunks) is built.
Its masking reproduces the official sliding-chunk code exactly (up to float summation order):

- band slots outside the sequence get ``-inf``;
- keys whose mask is False get an additive ``-1e4`` (not ``-inf``);
- after the softmax, rows of masked queries are set to 0; values are not masked.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tadformer.model.layers import HALF_DTYPES, ChannelLayerNorm, MaskedConv1d, time_window

MASKED_KEY_SCORE = -1e4  # additive score of a padded key inside the band (official value)


def _softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim; half-precision scores (mixed precision) are normalised in float32."""
    return torch.softmax(scores, dim=-1, dtype=torch.float32 if scores.dtype in HALF_DTYPES else None)


def banded_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, window_overlap: int,
                     dropout_p: float = 0.0, training: bool = False, block: int = 32) -> Tensor:
    """Local (banded) masked attention; see :func:`banded_attention_owned` (same result)."""
    return banded_attention_owned([q, k, v], mask, window_overlap, dropout_p, training, block)


def banded_attention_owned(qkv: list[Tensor | None], mask: Tensor, window_overlap: int,
                           dropout_p: float = 0.0, training: bool = False, block: int = 32) -> Tensor:
    """Local (banded) masked attention, official semantics, O(T * (block + window)) memory.

    Queries are cut into blocks of ``block`` steps; each block is multiplied with the
    ``block + 2w`` keys it can see (one batched matmul), and the band of every query row is cut
    out by a skew (pad + reshape, no gather). The weighted sum of the values is the reverse:
    the band probabilities are skewed back into ``[block, block + 2w]`` rows and multiplied with
    the value windows. Blocks are processed in groups whose key/value windows are cut straight
    from ``k`` / ``v`` (no padded copy of the whole sequence), and the output is written group by
    group into one ``[N, d, T]`` tensor. Only float summation order differs from a per-offset loop.

    Args:
        qkv: ``[q, k, v]``, each ``[N, d, T]`` (N = B * heads): queries already multiplied by the
            softmax scale, keys, values (not masked). The list is emptied (set to ``None``) at once
            and q, k are dropped after the scores, so a caller passing its only references lets them
            be freed early (inference memory).
        mask: ``[N, T]`` bool, True at valid steps; used for the keys and to zero masked query rows.
        window_overlap: w; query i sees keys ``i - w .. i + w``.
        dropout_p: dropout on the attention weights (active only when ``training``).
        training: whether dropout is active.
        block: query block length (speed only; the result does not depend on it).

    Returns:
        ``[N, d, T]`` attention output (contiguous); masked queries (time steps) are 0.
    """
    q, k, v = qkv
    qkv[:] = [None, None, None]
    assert q is not None and k is not None and v is not None, "banded_attention_owned: q, k, v expected"
    n, d, t = q.shape
    w = window_overlap
    n_slots = 2 * w + 1
    c = min(block, t)
    n_blocks = -(-t // c)
    t_blocks = n_blocks * c
    span = c + 2 * w  # keys seen by one query block
    # groups of blocks keep every intermediate no larger than the [N, T, W] band itself
    group = max(1, (t * n_slots) // (c * (span + 1)))
    starts = range(0, n_blocks, group)
    bands = []
    for g in starts:
        nbg = min(group, n_blocks - g)
        s0, s1 = g * c, (g + nbg) * c  # query steps of the group (beyond T: zero queries)
        q_blk = time_window(q, s0, s1).view(n, d, nbg, c).permute(0, 2, 3, 1)  # [N, g, c, d]
        k_win = time_window(k, s0 - w, s1 + w).unfold(2, span, c).transpose(1, 2)  # [N, g, d, span]
        full = torch.matmul(q_blk, k_win)  # [N, g, c, span]; row a holds keys a-w..a+w at columns a..a+2w
        band = F.pad(full.reshape(n, nbg, c * span), (0, c)).reshape(n, nbg, c, span + 1)  # unskew
        bands.append(band[..., :n_slots])
    scores = torch.cat(bands, 1).reshape(n, t_blocks, n_slots)[:, :t]  # [N, T, W]; slot j = key i + j - w
    del bands, full, band, q_blk, k_win, q, k

    # additive -1e4 for padded keys (keys beyond the sequence are handled by -inf below)
    key_valid = F.pad(mask, (w, w), value=True).unfold(1, n_slots, 1)  # [N, T, W]
    scores = scores + torch.where(key_valid, 0.0, MASKED_KEY_SCORE).to(scores.dtype)
    key_pos = torch.arange(t, device=mask.device)[:, None] + torch.arange(-w, w + 1, device=mask.device)[None, :]
    scores = scores.masked_fill((key_pos < 0) | (key_pos >= t), float("-inf"))

    probs = _softmax(scores).masked_fill(~mask[:, :, None], 0.0)  # [N, T, W]
    probs = F.dropout(probs, dropout_p, training)
    del scores

    # skew back: [N, nb, c, W] -> [N, nb, c, span] with row a shifted right by a
    p_blk = F.pad(probs, (0, 0, 0, t_blocks - t)).reshape(n, n_blocks, c, n_slots)
    out: Tensor | None = None
    for g in starts:
        p_g = p_blk[:, g : g + group]
        nbg = p_g.shape[1]
        s0, s1 = g * c, (g + nbg) * c
        p_full = F.pad(p_g, (0, span + 1 - n_slots)).reshape(n, nbg, c * (span + 1))[..., : c * span]
        v_win = time_window(v, s0 - w, s1 + w).unfold(2, span, c).permute(0, 2, 3, 1)  # [N, g, span, d]
        res = torch.matmul(p_full.reshape(n, nbg, c, span), v_win).reshape(n, nbg * c, d)  # [N, g*c, d]
        if out is None:  # dtype of the products (bfloat16 under autocast)
            out = torch.empty(n, d, t, dtype=res.dtype, device=res.device)
        stop = min(s1, t)
        out[:, :, s0:stop] = res[:, : stop - s0].transpose(1, 2)
    assert out is not None
    return out  # [N, d, T]


class _ConvQKV(nn.Module):
    """Shared construction of the conv projections (registration order = official order)."""

    def __init__(self, n_embd: int, n_head: int, n_qx_stride: int, n_kv_stride: int,
                 attn_pdrop: float, proj_pdrop: float) -> None:
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"attention: n_embd {n_embd} is not divisible by n_head {n_head}")
        for s in (n_qx_stride, n_kv_stride):
            if s != 1 and s % 2 != 0:
                raise ValueError(f"attention: strides must be 1 or even, got {s}")
        if n_qx_stride != n_kv_stride:
            # the official code builds the query conv with the kv stride (latent bug); only equal
            # strides are ever used, so we refuse the ambiguous case instead of guessing
            raise NotImplementedError("attention: n_qx_stride != n_kv_stride is not supported")
        self.n_embd = n_embd
        self.n_head = n_head
        self.n_channels = n_embd // n_head
        self.scale = 1.0 / math.sqrt(self.n_channels)
        self.stride = n_kv_stride
        ks = self.stride + 1 if self.stride > 1 else 3
        self.query_conv = MaskedConv1d(n_embd, n_embd, ks, stride=self.stride, groups=n_embd, bias=False)
        self.query_norm = ChannelLayerNorm(n_embd)
        self.key_conv = MaskedConv1d(n_embd, n_embd, ks, stride=self.stride, groups=n_embd, bias=False)
        self.key_norm = ChannelLayerNorm(n_embd)
        self.value_conv = MaskedConv1d(n_embd, n_embd, ks, stride=self.stride, groups=n_embd, bias=False)
        self.value_norm = ChannelLayerNorm(n_embd)
        # key before query: this order is the official one (state-dict order and RNG draws)
        self.key = nn.Conv1d(n_embd, n_embd, 1)
        self.query = nn.Conv1d(n_embd, n_embd, 1)
        self.value = nn.Conv1d(n_embd, n_embd, 1)
        self.attn_drop = nn.Dropout(attn_pdrop)
        self.proj = nn.Conv1d(n_embd, n_embd, 1)
        self.proj_drop = nn.Dropout(proj_pdrop)

    def _project(self, x: Tensor, mask: Tensor, pre_norm: nn.Module | None = None
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Returns q, k, v as ``[B, heads, d, T']`` (q already scaled), qx_mask, kv_mask ``[B,1,T']``.

        ``pre_norm`` (the block's LayerNorm) is applied to ``x`` here, so its output is freed as soon
        as the three depthwise convs have read it.
        """
        b = x.shape[0]
        if pre_norm is not None:
            x = pre_norm(x)
        q, qx_mask = self.query_conv(x, mask)
        k, kv_mask = self.key_conv(x, mask)
        v, _ = self.value_conv(x, mask)
        del x
        q = self.query(self.query_norm(q))
        k = self.key(self.key_norm(k))
        v = self.value(self.value_norm(v))
        # [B, C, T'] -> [B, heads, d, T'] with channel c = head * d + i (a view, no copy)
        q, k, v = (y.view(b, self.n_head, self.n_channels, -1) for y in (q, k, v))
        q = q * self.scale  # scaled BEFORE the dot product, like the official code
        return q, k, v, qx_mask, kv_mask

    def _output(self, out: Tensor, qx_mask: Tensor) -> Tensor:
        """``[B, C, T']`` attention output -> masked projection ``[B, C, T']``."""
        return self.proj_drop(self.proj(out)) * qx_mask.to(out.dtype)


class LocalMaskedMHCA(_ConvQKV):
    """Local multi-head conv self-attention with a band of ``window_size`` keys per query.

    Args:
        n_embd: channels D.
        n_head: heads; the head size is ``D // n_head``.
        window_size: odd band width (> 1); query i sees keys ``|i - j| <= window_size // 2``.
        n_qx_stride / n_kv_stride: 1, or 2 to halve T (must be equal).
        attn_pdrop / proj_pdrop: dropout on the attention weights / the output projection.
        use_rel_pe: relative position encoding (not supported).

    Example:
        >>> attn = LocalMaskedMHCA(32, 4, 19)
        >>> y, m = attn(torch.randn(1, 32, 36), torch.ones(1, 1, 36, dtype=torch.bool))
    """

    def __init__(self, n_embd: int, n_head: int, window_size: int, n_qx_stride: int = 1,
                 n_kv_stride: int = 1, attn_pdrop: float = 0.0, proj_pdrop: float = 0.0,
                 use_rel_pe: bool = False) -> None:
        if window_size <= 1:
            raise ValueError(f"LocalMaskedMHCA: window_size must be > 1, got {window_size}")
        if use_rel_pe:
            raise NotImplementedError("LocalMaskedMHCA: use_rel_pe=True is not supported")
        super().__init__(n_embd, n_head, n_qx_stride, n_kv_stride, attn_pdrop, proj_pdrop)
        self.window_size = window_size
        self.window_overlap = window_size // 2

    def forward(self, x: Tensor, mask: Tensor, pre_norm: nn.Module | None = None) -> tuple[Tensor, Tensor]:
        """Args: x ``[B, D, T]``; mask ``[B, 1, T]`` bool; ``pre_norm`` applied to x first (optional).

        Returns:
            ``([B, D, T / stride], [B, 1, T / stride] bool)``; masked steps of the output are 0.
        """
        q, k, v, qx_mask, kv_mask = self._project(x, mask, pre_norm)
        b, h, d, t = q.shape
        flat_mask = kv_mask.expand(b, h, t).reshape(b * h, t)  # [B*heads, T']
        qkv: list[Tensor | None] = [y.reshape(b * h, d, t) for y in (q, k, v)]
        del q, k, v  # the list holds the only references: banded_attention_owned frees q, k early
        out = banded_attention_owned(qkv, flat_mask, self.window_overlap, self.attn_drop.p, self.training)
        return self._output(out.reshape(b, h * d, t), qx_mask), qx_mask


class MaskedMHCA(_ConvQKV):
    """Global multi-head conv self-attention (official ``MaskedMHCA``, used when window <= 1).

    Padded keys get ``-inf`` and padded values are zeroed. Builds a ``[T, T]`` score matrix per
    head, so it is only meant for short sequences.
    """

    def __init__(self, n_embd: int, n_head: int, n_qx_stride: int = 1, n_kv_stride: int = 1,
                 attn_pdrop: float = 0.0, proj_pdrop: float = 0.0) -> None:
        super().__init__(n_embd, n_head, n_qx_stride, n_kv_stride, attn_pdrop, proj_pdrop)

    def forward(self, x: Tensor, mask: Tensor, pre_norm: nn.Module | None = None) -> tuple[Tensor, Tensor]:
        """Args: x ``[B, D, T]``; mask ``[B, 1, T]`` bool; optional ``pre_norm``. Returns: output and mask."""
        q, k, v, qx_mask, kv_mask = self._project(x, mask, pre_norm)
        att = q.transpose(2, 3) @ k  # [B, heads, T', T']
        att = att.masked_fill(~kv_mask[:, :, None, :], float("-inf"))
        att = self.attn_drop(_softmax(att))
        out = att @ (v * kv_mask[:, :, None, :].to(v.dtype)).transpose(2, 3)  # [B, heads, T', d]
        return self._output(out.transpose(2, 3).reshape(x.shape[0], self.n_embd, -1), qx_mask), qx_mask
