"""1-D non-maximum suppression: Gaussian/linear/hard soft-NMS, hard NMS, score voting, batching.

Pure functions on ``[N, 2]`` segment tensors (any units; ActionFormer runs them on grid units), with
no compiled extension. They reproduce the official ``nms_1d_cpu`` C++ kernels and the Python
``batched_nms`` bit for bit: all arithmetic is float32 in the kernel's order, the overlap uses
``length + 1e-6`` areas, and the Gaussian decay uses :func:`expf`, a NumPy port of glibc's
``expf`` (the function the C++ ``std::exp(float)`` calls), so even the last bit of the decayed
scores agrees.

Soft-NMS is inherently sequential. The C++ loop is reproduced literally (:class:`_SoftNmsState`:
one Python step per pick, the decay of all remaining segments vectorised, the swap into slot ``i``
and the removal below ``min_score`` by moving the last segment into the freed slot), because slot
positions break exact score ties. The Gaussian method, the one ActionFormer uses, normally runs
in :func:`_lockstep_gaussian` instead: slots matter only for exact ties at the maximum, so it
tracks scores alone and advances every class by one pick per vectorised step, handing a class
over to the literal loop when it meets such a tie. :func:`batched_nms` also stops a class once its
picks can no longer reach the output (per-class cap, or a score below the ``max_seg_num``-th best
pick so far). None of this changes the result; it keeps the NMS about as fast as the official
compiled op (see ``bench/bench_nms.py``).

Inputs may live on any device; the work happens on CPU (like the official code) and results are
returned on the input's device.
"""

from __future__ import annotations

from decimal import Decimal, getcontext
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from tadformer.nms_voting import VotingWeights, seg_voting

__all__ = ["expf", "soft_nms_1d", "hard_nms_1d", "seg_voting", "batched_nms"]

SoftNmsMethod = Literal["gaussian", "linear", "hard"]

# ---------------------------------------------------------------------------------------------
# glibc expf (sysdeps/ieee754/flt-32/e_expf.c, table size 32): exp(x) = 2^(k/32) * 2^(r/32)


def _exp2_table(bits: int = 5) -> np.ndarray:
    """``tab[i] = asuint64(2^(i/N)) - (i << (52 - bits))`` with correctly rounded ``2^(i/N)``."""
    n = 1 << bits
    getcontext().prec = 60
    vals = np.array([float(Decimal(2) ** (Decimal(i) / Decimal(n))) for i in range(n)], dtype=np.float64)
    return vals.view(np.int64) - (np.arange(n, dtype=np.int64) << (52 - bits))


_EXP2_TAB = _exp2_table()
_INVLN2N = float.fromhex("0x1.71547652b82fep+0") * 32
_SHIFT = float.fromhex("0x1.8p+52")
_C0 = float.fromhex("0x1.c6af84b912394p-5") / 32 / 32 / 32
_C1 = float.fromhex("0x1.ebfce50fac4f3p-3") / 32 / 32
_C2 = float.fromhex("0x1.62e42ff0c52d6p-1") / 32


def expf(x: np.ndarray) -> np.ndarray:
    """Float32 ``exp`` that returns exactly what glibc's ``expf`` returns.

    NumPy's and PyTorch's float32 ``exp`` are only within 1 ulp of it; this port of glibc's
    algorithm (double-precision table + cubic, then one rounding to float32) matches it bit for bit
    (checked against ``libm`` in the tests). Inputs outside glibc's main range fall back to a
    correctly rounded float64 ``exp``, which gives the same 0/inf/nan there.

    Args:
        x: float32 array of any shape.

    Returns:
        float32 array of the same shape.
    """
    xd = np.asarray(x, dtype=np.float32).astype(np.float64)
    z = _INVLN2N * xd
    kd = z + _SHIFT  # round to the nearest integer (ties to even) in the low mantissa bits
    ki = kd.view(np.int64)
    kd = kd - _SHIFT
    r = z - kd
    with np.errstate(over="ignore", invalid="ignore"):
        s = (_EXP2_TAB[ki & 31] + (ki << 47)).view(np.float64)
        y = ((_C0 * r + _C1) * (r * r) + (_C2 * r + 1.0)) * s
        out = y.astype(np.float32)
        outside = ~((xd > -103.0) & (xd < 88.0))
        if outside.any():
            out[outside] = np.exp(xd[outside]).astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# soft-NMS kernel (nms_1d_cpu.softnms)


def _to_numpy_f32(segs: Tensor, scores: Tensor, name: str) -> tuple[np.ndarray, np.ndarray]:
    if segs.ndim != 2 or segs.shape[-1] != 2 or scores.ndim != 1 or scores.shape[0] != segs.shape[0]:
        raise ValueError(f"{name}: expected segs [N, 2] and scores [N], got {tuple(segs.shape)} and "
                         f"{tuple(scores.shape)}")
    segs_np = segs.detach().to("cpu", torch.float32).numpy()
    scores_np = scores.detach().to("cpu", torch.float32).numpy()
    if not (np.isfinite(segs_np).all() and np.isfinite(scores_np).all()):
        raise ValueError(f"{name}: segments and scores must be finite (got NaN or inf)")
    return segs_np, scores_np


def _decay(ovr: np.ndarray, method: SoftNmsMethod, sigma: np.float32, thr: np.float32) -> np.ndarray:
    """Per-segment weight of the C++ kernel, in float32."""
    if method == "gaussian":
        return expf(-(ovr * ovr) / sigma)
    if method == "linear":
        return np.where(ovr >= thr, np.float32(1.0) - ovr, np.float32(1.0))
    return np.where(ovr >= thr, np.float32(0.0), np.float32(1.0))


def _drop_low(st: np.ndarray, inds: np.ndarray, low_rel: np.ndarray, start: int, n: int) -> int:
    """Remove the segments at ``start + low_rel`` like the C++ loop does; return the new count.

    The C++ scan visits positions in increasing order; a removed slot receives the current LAST
    segment, which is then examined (decayed) in that slot. Since every weight depends only on the
    segment itself, the decays are already applied, and the net effect is: the k-th removed slot
    ``r_k`` (ascending) takes the k-th surviving segment from the end, ``s_k``, as long as
    ``r_k < s_k``; the count then ends at the last ``s_k`` used, or at the first removed slot left
    over, whichever is lower.
    """
    removed = np.zeros(n - start, dtype=bool)
    removed[low_rel] = True
    r = low_rel + start
    s = np.flatnonzero(~removed)[::-1] + start
    m = min(r.shape[0], s.shape[0])
    k = int(np.count_nonzero(r[:m] < s[:m]))  # r ascends and s descends: a prefix holds
    if k:
        st[:, r[:k]] = st[:, s[:k]]
        inds[r[:k]] = inds[s[:k]]
    end = int(s[k - 1]) if k else n
    return min(end, int(r[k])) if k < r.shape[0] else end


class _SoftNmsState:
    """The C++ soft-NMS loop of one segment set, resumable one pick at a time.

    Working copies live in one float32 array ``st`` (rows x1, x2, score, area = len + 1e-6); slots
    ``[0, i)`` hold the picks in order (they never move again), ``[i, n)`` the remaining segments.
    """

    def __init__(self, segs: np.ndarray, scores: np.ndarray, sigma: float, min_score: float,
                 method: SoftNmsMethod, iou_threshold: float) -> None:
        n = int(scores.shape[0])
        self.st = np.empty((4, n), dtype=np.float32)
        self.st[0] = segs[:, 0]
        self.st[1] = segs[:, 1]
        self.st[2] = scores
        self.st[3] = (segs[:, 1] - segs[:, 0]) + np.float32(1e-6)
        self.inds = np.arange(n, dtype=np.int64)
        self.n, self.i = n, 0
        self.sigma, self.thr, self.min_score = np.float32(sigma), np.float32(iou_threshold), np.float32(min_score)
        self.method = method
        self._next: int | None = None

    def peek(self) -> float | None:
        """Score of the next pick (None when nothing is left); ties go to the lowest slot."""
        if self.i >= self.n:
            return None
        if self._next is None:
            self._next = self.i + int(np.argmax(self.st[2, self.i:self.n]))
        return float(self.st[2, self._next])

    def pick(self) -> None:
        """Swap the maximum into slot ``i``, decay every remaining score, drop those below min_score."""
        if self.peek() is None:
            raise IndexError("soft-NMS: no segment left to pick")
        st, i, n, p = self.st, self.i, self.n, self._next
        assert p is not None
        if p != i:
            st[:, [i, p]] = st[:, [p, i]]
            self.inds[[i, p]] = self.inds[[p, i]]
        self.i, self._next = i + 1, None
        if i + 1 >= n:
            return
        x1, x2, sc, area = st[0, i + 1:n], st[1, i + 1:n], st[2, i + 1:n], st[3, i + 1:n]
        inter = np.minimum(x2, st[1, i])
        inter -= np.maximum(x1, st[0, i])
        if self.method == "gaussian":  # no intersection: weight exp(-0) == 1, skip those
            hit = np.flatnonzero(inter > 0)
            inter_h = inter[hit]
            ovr = inter_h / ((st[3, i] + area[hit]) - inter_h)
            sc[hit] *= expf(-(ovr * ovr) / self.sigma)
        else:
            np.maximum(inter, np.float32(0.0), out=inter)
            den = area + st[3, i]
            den -= inter
            sc *= _decay(np.divide(inter, den, out=inter), self.method, self.sigma, self.thr)
        low = np.flatnonzero(sc < self.min_score)
        if low.size:
            self.n = _drop_low(st, self.inds, low, i + 1, n)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(inds [K] int64, dets [K, 3] float32)`` of the picks so far, in pick order."""
        return self.inds[:self.i].copy(), self.st[:3, :self.i].T.copy()


def _expf_core(x: np.ndarray) -> np.ndarray:
    """:func:`expf` for float32 ``x`` known to lie in ``[-100, 0]`` (no range handling)."""
    z = x.astype(np.float64)
    z *= _INVLN2N
    kd = z + _SHIFT
    ki = kd.view(np.int64)
    r = z - (kd - _SHIFT)
    s = (_EXP2_TAB[ki & 31] + (ki << 47)).view(np.float64)
    y = _C0 * r
    y += _C1
    y *= r * r
    y += _C2 * r + 1.0
    y *= s
    return y.astype(np.float32)


def _lockstep_gaussian(
    groups: list[tuple[np.ndarray, np.ndarray]], sigma: float, min_score: float, max_picks: int | None,
    keep_top: int | None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Gaussian soft-NMS of several independent segment sets at once, one pick per set per step.

    Gives the picks of :class:`_SoftNmsState` for every set. Slots only matter when two remaining
    segments tie exactly for the maximum, so scores alone are tracked, in a padded ``[G, L]`` array;
    a set that meets such a tie is replayed in an exact :class:`_SoftNmsState` and finished there.
    Removal below ``min_score`` is implicit: such scores never rise, so picking stops once the best
    is below ``min_score`` (the very first pick is taken regardless, like the C++ loop).

    With ``keep_top``, a set stops once its last pick is below the ``keep_top``-th best pick made
    so far: its later picks could not survive a final cut to ``keep_top``.

    Returns:
        Per set, ``(inds [K] int64, dets [K, 3] float32)`` in pick order.
    """
    n_groups = len(groups)
    width = max(1, max(g[1].shape[0] for g in groups))
    x1 = np.zeros((n_groups, width), dtype=np.float32)
    x2 = np.zeros_like(x1)
    sc = np.full_like(x1, -np.inf)
    for g, (segs, scores) in enumerate(groups):
        x1[g, :scores.shape[0]] = segs[:, 0]
        x2[g, :scores.shape[0]] = segs[:, 1]
        sc[g, :scores.shape[0]] = scores
    area = (x2 - x1) + np.float32(1e-6)
    sig32, min32 = np.float32(sigma), np.float32(min_score)
    limit = width if max_picks is None else max_picks
    picks: list[list[int]] = [[] for _ in groups]
    pick_scores: list[list[float]] = [[] for _ in groups]
    made: list[float] = []
    exact: dict[int, _SoftNmsState] = {}
    ids = np.arange(n_groups)  # group of each row still active
    step = 0
    while ids.size and step < limit:
        rows = np.arange(ids.size)
        p = np.argmax(sc, axis=1)
        best = sc[rows, p]
        stop = best == -np.inf
        if step:
            stop |= best < min32
        if keep_top is not None and len(made) >= keep_top:
            stop |= best < np.partition(np.asarray(made), len(made) - keep_top)[len(made) - keep_top]
        tie = ~stop & (np.count_nonzero(sc == best[:, None], axis=1) > 1)
        for r in np.flatnonzero(tie).tolist():  # rare: hand over to the exact loop
            g = int(ids[r])
            exact[g] = _SoftNmsState(groups[g][0], groups[g][1], sigma, min_score, "gaussian", 0.0)
            for _ in range(step):
                exact[g].pick()
        go = ~(stop | tie)
        if not go.all():
            ids, p, best = ids[go], p[go], best[go]
            x1, x2, area, sc = x1[go], x2[go], area[go], sc[go]
            rows = np.arange(ids.size)
        for g, col, score in zip(ids.tolist(), p.tolist(), best.tolist()):
            picks[g].append(col)
            pick_scores[g].append(score)
        made.extend(best.tolist())
        inter = np.minimum(x2, x2[rows, p][:, None])
        inter -= np.maximum(x1, x1[rows, p][:, None])
        hit = np.nonzero(inter > 0)  # no intersection: weight exp(-0) == 1
        inter_h = inter[hit]
        ovr = inter_h / ((area[rows, p][hit[0]] + area[hit]) - inter_h)
        sc[hit] *= _expf_core(-(ovr * ovr) / sig32)
        sc[rows, p] = -np.inf
        step += 1
    out = []
    for g, (segs, _) in enumerate(groups):
        if g in exact:
            state = exact[g]
            while state.i < limit and state.peek() is not None:
                state.pick()
            out.append(state.result())
            continue
        cols = np.asarray(picks[g], dtype=np.int64)
        dets = np.concatenate([segs[cols], np.asarray(pick_scores[g], dtype=np.float32)[:, None]], axis=1)
        out.append((cols, dets.astype(np.float32)))
    return out


def _lockstep_ok(segs: np.ndarray, sigma: float, min_score: float, method: str) -> bool:
    """Whether :func:`_lockstep_gaussian` is exact here (Gaussian, no negative lengths, sane sigma)."""
    return method == "gaussian" and min_score > 0 and sigma >= 0.05 and bool(np.all(segs[:, 1] >= segs[:, 0]))


def _soft_nms_core(
    segs: np.ndarray, scores: np.ndarray, sigma: float, min_score: float, method: SoftNmsMethod,
    iou_threshold: float, max_picks: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the C++ soft-NMS loop (at most ``max_picks`` picks); ``(inds [K], dets [K, 3])`` in pick order."""
    if _lockstep_ok(segs, sigma, min_score, method):
        return _lockstep_gaussian([(segs, scores)], sigma, min_score, max_picks, None)[0]
    state = _SoftNmsState(segs, scores, sigma, min_score, method, iou_threshold)
    limit = scores.shape[0] if max_picks is None else max_picks
    while state.i < limit and state.peek() is not None:
        state.pick()
    return state.result()


def soft_nms_1d(
    segs: Tensor,
    scores: Tensor,
    sigma: float = 0.5,
    min_score: float = 0.001,
    method: SoftNmsMethod = "gaussian",
    iou_threshold: float = 0.1,
    max_picks: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Soft-NMS of one set of segments, exactly as the official ``nms_1d_cpu.softnms``.

    Repeatedly picks the highest current score (ties: lowest current slot), then multiplies every
    remaining score by ``exp(-iou^2 / sigma)`` (``method="gaussian"``; ``iou_threshold`` is ignored),
    by ``1 - iou`` when ``iou >= iou_threshold`` (``"linear"``) or by 0 when ``iou >= iou_threshold``
    (``"hard"``), and removes segments whose score falls below ``min_score``. IoU uses lengths
    ``+ 1e-6``. All float32.

    Args:
        segs: ``[N, 2]`` (start, end), any units.
        scores: ``[N]`` scores.
        sigma: Gaussian width.
        min_score: removal threshold (strict ``<`` removes).
        method: decay function.
        iou_threshold: overlap threshold of the linear and hard methods.
        max_picks: stop after this many picks (the result is the prefix of a full run).

    Returns:
        ``keep_inds`` ``[K]`` int64 input indices in pick order, ``segs_out`` ``[K, 2]`` and
        ``scores_out`` ``[K]`` (decayed, non-increasing for the Gaussian method) float32.
    """
    if method not in ("gaussian", "linear", "hard"):
        raise ValueError(f"soft_nms_1d: method must be 'gaussian', 'linear' or 'hard', got {method!r}")
    segs_np, scores_np = _to_numpy_f32(segs, scores, "soft_nms_1d")
    inds, dets = _soft_nms_core(segs_np, scores_np, sigma, min_score, method, iou_threshold, max_picks)
    dev = segs.device
    return (torch.from_numpy(inds).to(dev), torch.from_numpy(dets[:, :2].copy()).to(dev),
            torch.from_numpy(dets[:, 2].copy()).to(dev))


# ---------------------------------------------------------------------------------------------
# hard NMS (nms_1d_cpu.nms + NMSop) and score voting


def hard_nms_1d(
    segs: Tensor, scores: Tensor, iou_threshold: float, min_score: float = 0.001, max_num: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Greedy NMS as the official ``NMSop``: keep ``score > min_score``, sort, suppress ``iou >= thr``.

    The score filter is evaluated in float32 (``min_score`` rounded to float32, so a score equal to
    ``float32(0.001)`` is dropped); the sort is ``torch.sort`` descending; IoU uses lengths ``+ 1e-6``.

    Args:
        segs: ``[N, 2]`` (start, end).
        scores: ``[N]`` scores.
        iou_threshold: a later segment with IoU ``>=`` this with a kept one is suppressed.
        min_score: pre-filter threshold (skipped when ``<= 0``).
        max_num: keep at most this many (``<= 0``: all).

    Returns:
        ``keep_inds`` ``[K]`` int64 input indices by descending score, ``segs_out`` ``[K, 2]``,
        ``scores_out`` ``[K]`` (unchanged scores).
    """
    _to_numpy_f32(segs, scores, "hard_nms_1d")
    segs_c = segs.detach().to("cpu", torch.float32)
    scores_c = scores.detach().to("cpu", torch.float32)
    valid = torch.arange(segs_c.shape[0])
    if min_score > 0:
        valid = torch.nonzero(scores_c > min_score).squeeze(1)
    order = valid[torch.sort(scores_c[valid], descending=True)[1]].numpy()
    x1 = segs_c[:, 0].numpy()[order]
    x2 = segs_c[:, 1].numpy()[order]
    area = (x2 - x1) + np.float32(1e-6)
    thr = np.float32(iou_threshold)
    select = np.ones(order.shape[0], dtype=bool)
    for a in range(order.shape[0]):
        if not select[a]:
            continue
        inter = np.minimum(x2[a + 1:], x2[a]) - np.maximum(x1[a + 1:], x1[a])
        np.maximum(inter, np.float32(0.0), out=inter)
        ovr = inter / ((area[a] + area[a + 1:]) - inter)
        select[a + 1:] &= ~(ovr >= thr)
    keep = torch.from_numpy(order[select].copy())
    if max_num > 0:
        keep = keep[:max_num]
    dev = segs.device
    return keep.to(dev), segs_c[keep].to(dev), scores_c[keep].to(dev)


# ---------------------------------------------------------------------------------------------
# batched NMS (official batched_nms)


def _empty_result(labels: Tensor, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    return (torch.zeros((0, 2), dtype=torch.float32, device=device),
            torch.zeros((0,), dtype=torch.float32, device=device),
            torch.zeros((0,), dtype=labels.dtype, device=device))


def _multiclass_soft(
    segs_np: np.ndarray, scores_np: np.ndarray, labels_c: Tensor, min_score: float, max_seg_num: int,
    sigma: float, iou_threshold: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class Gaussian soft-NMS, each capped at ``max_seg_num``, concatenated by class id.

    Classes stop early once their picks fall below the ``max_seg_num``-th best pick: those picks
    could not survive the final sort and cut. Only the choice among picks tied exactly at the cut
    score can differ, which the official unstable sort leaves open too.
    """
    classes = torch.unique(labels_c).tolist()
    members = [torch.nonzero(labels_c == c).squeeze(1).numpy() for c in classes]
    groups = [(segs_np[idx], scores_np[idx]) for idx in members]
    if all(_lockstep_ok(g[0], sigma, min_score, "gaussian") for g in groups):
        parts = _lockstep_gaussian(groups, sigma, min_score, max_seg_num, max_seg_num)
    else:
        parts = [_soft_nms_core(g[0], g[1], sigma, min_score, "gaussian", iou_threshold, max_seg_num)
                 for g in groups]
    src = np.concatenate([idx[inds] for idx, (inds, _) in zip(members, parts)])
    dets_all = np.concatenate([dets for _, dets in parts])
    return (torch.from_numpy(dets_all[:, :2].copy()), torch.from_numpy(dets_all[:, 2].copy()),
            labels_c[torch.from_numpy(src)])


def batched_nms(
    segs: Tensor,
    scores: Tensor,
    labels: Tensor,
    iou_threshold: float,
    min_score: float,
    max_seg_num: int,
    use_soft_nms: bool = True,
    multiclass: bool = True,
    sigma: float = 0.5,
    voting_thresh: float = 0.75,
    voting_weights: VotingWeights = "score_iou",
) -> tuple[Tensor, Tensor, Tensor]:
    """NMS of one video's candidates, as the official ``batched_nms``.

    Multiclass: each class (ascending id) gets Gaussian soft-NMS (``iou_threshold`` unused) or hard
    NMS, keeping at most ``max_seg_num``; the classes are concatenated, sorted by score (descending,
    ``torch.sort``) and cut to ``max_seg_num``. Class-agnostic: one NMS over everything, then score
    voting of the kept segments when ``voting_thresh > 0``; labels follow their segments.

    Args:
        segs: ``[N, 2]`` candidate segments (grid units in ActionFormer).
        scores: ``[N]`` candidate scores.
        labels: ``[N]`` integer class ids.
        iou_threshold: hard-NMS threshold (ignored by the Gaussian soft-NMS).
        min_score: soft-NMS removal / hard-NMS pre-filter threshold.
        max_seg_num: per-class and per-video cap (>= 1).
        use_soft_nms: Gaussian soft-NMS (True) or hard NMS (False).
        multiclass: per-class NMS (True) or class-agnostic (False).
        sigma: Gaussian width.
        voting_thresh: IoU threshold of score voting (class-agnostic only; ``<= 0`` disables it).
        voting_weights: ``'score_iou'`` (ActionFormer, TemporalMaxer) or ``'score'`` (TriDet), see
            :func:`~tadformer.nms_voting.seg_voting`.

    Returns:
        ``segs`` ``[M, 2]`` float32, ``scores`` ``[M]`` float32 and ``labels`` ``[M]`` (input dtype),
        ``M <= max_seg_num``, by descending score, on the input's device.
    """
    if max_seg_num < 1:
        raise ValueError(f"batched_nms: max_seg_num must be >= 1, got {max_seg_num}")
    if labels.shape != scores.shape:
        raise ValueError(f"batched_nms: labels {tuple(labels.shape)} must match scores {tuple(scores.shape)}")
    device = segs.device
    segs_np, scores_np = _to_numpy_f32(segs, scores, "batched_nms")
    if segs_np.shape[0] == 0:
        return _empty_result(labels, device)
    labels_c = labels.detach().cpu()
    if multiclass and use_soft_nms:
        new_segs, new_scores, new_labels = _multiclass_soft(segs_np, scores_np, labels_c, min_score,
                                                            max_seg_num, sigma, iou_threshold)
    elif multiclass:
        parts = []
        for c in torch.unique(labels_c).tolist():
            idx = torch.nonzero(labels_c == c).squeeze(1)
            keep, _, _ = hard_nms_1d(torch.from_numpy(segs_np)[idx], torch.from_numpy(scores_np)[idx],
                                     iou_threshold, min_score, max_seg_num)
            parts.append(idx[keep])
        src = torch.cat(parts)
        new_segs, new_scores = torch.from_numpy(segs_np)[src], torch.from_numpy(scores_np)[src]
        new_labels = labels_c[src]
    else:
        if use_soft_nms:
            inds, dets = _soft_nms_core(segs_np, scores_np, sigma, min_score, "gaussian", iou_threshold,
                                        max_picks=max_seg_num)
            src = torch.from_numpy(inds)
            new_segs, new_scores = torch.from_numpy(dets[:, :2].copy()), torch.from_numpy(dets[:, 2].copy())
        else:
            src, new_segs, new_scores = hard_nms_1d(torch.from_numpy(segs_np), torch.from_numpy(scores_np),
                                                    iou_threshold, min_score, max_seg_num)
        new_labels = labels_c[src]
        if voting_thresh > 0:
            new_segs = seg_voting(new_segs, torch.from_numpy(segs_np), torch.from_numpy(scores_np), voting_thresh,
                                  voting_weights)
    order = torch.sort(new_scores, descending=True)[1][:max_seg_num]
    return new_segs[order].to(device), new_scores[order].to(device), new_labels[order].to(device)
