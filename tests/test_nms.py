"""NMS against the official golden cases (golden/nms_cases.*) and hand-derived numbers."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tadformer.nms import (
    _expf_core,
    _lockstep_gaussian,
    _SoftNmsState,
    batched_nms,
    expf,
    hard_nms_1d,
    seg_voting,
    soft_nms_1d,
)


def _case(golden_dir: Path, i: int) -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((golden_dir / "nms_cases.json").read_text())["cases"][i]
    arrays = np.load(golden_dir / "nms_cases.npz")
    return meta, {k.split("/", 1)[1]: arrays[k] for k in arrays.files if k.startswith(f"case{i}/")}


@pytest.mark.parametrize("i", range(8))
def test_batched_nms_matches_golden(golden_dir: Path, i: int) -> None:
    meta, a = _case(golden_dir, i)
    p = meta["params"]
    segs, scores, labels = batched_nms(
        torch.from_numpy(a["segs"]), torch.from_numpy(a["scores"]), torch.from_numpy(a["labels"]),
        p["iou_threshold"], p["min_score"], p["max_seg_num"], use_soft_nms=p["use_soft_nms"],
        multiclass=p["multiclass"], sigma=p["sigma"], voting_thresh=p["voting_thresh"])
    assert segs.shape == (meta["n_out"], 2) and scores.dtype == torch.float32 and labels.dtype == torch.int64
    seg_atol = 1e-6 if i == 6 else 0.0
    tied = np.zeros(meta["n_out"], dtype=bool)
    for lo, hi in meta["tied_output_ranges"]:
        tied[lo:hi] = True
        got = sorted(zip(labels[lo:hi].tolist(), segs[lo:hi].tolist(), scores[lo:hi].tolist()))
        want = sorted(zip(a["out_labels"][lo:hi].tolist(), a["out_segs"][lo:hi].tolist(),
                          a["out_scores"][lo:hi].tolist()))
        assert got == want
    free = torch.from_numpy(~tied)
    torch.testing.assert_close(scores, torch.from_numpy(a["out_scores"]), atol=1e-6, rtol=0)
    torch.testing.assert_close(segs[free], torch.from_numpy(a["out_segs"])[free], atol=seg_atol, rtol=0)
    assert torch.equal(labels[free], torch.from_numpy(a["out_labels"])[free])


@pytest.mark.parametrize("i", range(4))
def test_soft_nms_raw_pick_order_matches_kernel(golden_dir: Path, i: int) -> None:
    _, a = _case(golden_dir, i)
    inds, segs, scores = soft_nms_1d(torch.from_numpy(a["segs"]), torch.from_numpy(a["scores"]))
    assert inds.tolist() == a["raw_softnms_inds"].tolist()
    torch.testing.assert_close(torch.cat([segs, scores[:, None]], 1), torch.from_numpy(a["raw_softnms_dets"]),
                               atol=0, rtol=0)


def test_expf_matches_libm_bit_for_bit() -> None:
    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no C math library to compare with")
    libm = ctypes.CDLL(name)
    libm.expf.restype, libm.expf.argtypes = ctypes.c_float, [ctypes.c_float]
    rng = np.random.default_rng(0)
    edges = np.array([0.0, -0.0, -2.0], dtype=np.float32)
    x = np.concatenate([-2 * rng.random(20000, dtype=np.float32), -1e-4 * rng.random(2000, dtype=np.float32),
                        (rng.standard_normal(5000) * 30).astype(np.float32), edges])
    want = np.array([libm.expf(float(v)) for v in x], dtype=np.float32)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(expf(x), want)


def _random_sets(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for t in range(count):
        n = int(rng.integers(1, 250))
        if t % 2 == 0:  # integer grid: identical segments and exactly tied scores
            x1 = rng.integers(0, 40, n).astype(np.float32)
            segs = np.stack([x1, x1 + rng.integers(0, 8, n).astype(np.float32)], 1)
            scores = (rng.integers(1, 12, n) / 12).astype(np.float32)
        else:
            x1 = (rng.random(n) * 100).astype(np.float32)
            segs = np.stack([x1, x1 + (rng.random(n) * 20).astype(np.float32)], 1)
            scores = (rng.random(n) * (0.01 if t % 3 == 0 else 1.0)).astype(np.float32)
        out.append((segs, scores))
    return out


def test_expf_core_equals_expf() -> None:
    x = -20 * np.random.default_rng(3).random(50000, dtype=np.float32)
    np.testing.assert_array_equal(_expf_core(x), expf(x))


def test_lockstep_gaussian_equals_cpp_loop() -> None:
    """The score-only, many-sets-at-once Gaussian soft-NMS picks exactly what the literal loop picks."""
    sets = _random_sets(1, 48)
    for start in range(0, len(sets), 4):
        groups = sets[start:start + 4]
        for (segs, scores), (inds, dets) in zip(groups, _lockstep_gaussian(groups, 0.5, 0.001, None, None)):
            exact = _SoftNmsState(segs, scores, 0.5, 0.001, "gaussian", 0.1)
            while exact.peek() is not None:
                exact.pick()
            want_inds, want_dets = exact.result()
            np.testing.assert_array_equal(inds, want_inds)
            np.testing.assert_array_equal(dets, want_dets)


def test_soft_nms_hand_derived_two_segments() -> None:
    # [0,10] and [5,15]: inter 5, areas 10+1e-6 -> iou = 5/(20+2e-6-5); weight exp(-iou^2/0.5)
    segs = torch.tensor([[0.0, 10.0], [5.0, 15.0], [30.0, 31.0]])
    scores = torch.tensor([0.9, 0.8, 0.5])
    inds, out_segs, out_scores = soft_nms_1d(segs, scores)
    iou = np.float32(5.0) / ((np.float32(10.0) + np.float32(1e-6)) * 2 - np.float32(5.0))
    decayed = np.float32(0.8) * np.float32(np.exp(np.float64(-(iou * iou) / np.float32(0.5))))
    assert inds.tolist() == [0, 1, 2]  # 0.8 * 0.64 = 0.51 still beats the untouched 0.5
    assert out_scores.tolist() == pytest.approx([0.9, float(decayed), 0.5], abs=1e-7)
    assert torch.equal(out_segs, segs)


def test_soft_nms_linear_and_hard_methods() -> None:
    segs = torch.tensor([[0.0, 10.0], [0.0, 10.0], [20.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.3])
    inds, _, sc = soft_nms_1d(segs, scores, method="hard", iou_threshold=0.5)
    assert inds.tolist() == [0, 2] and sc.tolist() == pytest.approx([0.9, 0.3])
    inds, _, sc = soft_nms_1d(segs, scores, method="linear", iou_threshold=0.5)
    # iou = 10/(10+2e-6) ~ 1 -> weight 1 - iou ~ 2e-7, below min_score: removed
    assert inds.tolist() == [0, 2]
    with pytest.raises(ValueError, match="method"):
        soft_nms_1d(segs, scores, method="cubic")  # type: ignore[arg-type]


def test_hard_nms_hand_case() -> None:
    segs = torch.tensor([[0.0, 10.0], [1.0, 10.0], [0.0, 4.0], [50.0, 60.0], [0.0, 10.0]])
    scores = torch.tensor([0.5, 0.9, 0.7, 0.001, 0.2])
    keep, out_segs, out_scores = hard_nms_1d(segs, scores, iou_threshold=0.5, min_score=0.001)
    # 0.9 [1,10] suppresses [0,10] (iou 0.9) twice; [0,4] (iou 3/10) stays; 0.001 is not > 0.001
    assert keep.tolist() == [1, 2]
    assert torch.equal(out_segs, segs[[1, 2]]) and torch.equal(out_scores, scores[[1, 2]])


def test_seg_voting_hand_case() -> None:
    nms_segs = torch.tensor([[0.0, 10.0]])
    all_segs = torch.tensor([[0.0, 10.0], [1.0, 10.0], [0.0, 4.0]])
    all_scores = torch.tensor([0.5, 0.25, 0.9])
    out = seg_voting(nms_segs, all_segs, all_scores, 0.7)
    # iou 1.0 and 0.9 pass, 0.4 does not: weights 0.5*1 and 0.25*0.9
    w0, w1 = 0.5, 0.25 * 0.9
    torch.testing.assert_close(out, torch.tensor([[w1 * 1.0 / (w0 + w1), 10.0]]), atol=1e-6, rtol=0)


def test_batched_nms_empty_single_and_bad_input() -> None:
    segs, scores, labels = batched_nms(torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, dtype=torch.int64),
                                       0.1, 0.001, 200)
    assert segs.shape == (0, 2) and scores.shape == (0,) and labels.dtype == torch.int64
    one = batched_nms(torch.tensor([[1.0, 2.0]]), torch.tensor([0.4]), torch.tensor([3]), 0.1, 0.001, 200)
    assert one[0].tolist() == [[1.0, 2.0]] and one[1].tolist() == pytest.approx([0.4]) and one[2].tolist() == [3]
    with pytest.raises(ValueError, match="max_seg_num"):
        batched_nms(torch.tensor([[1.0, 2.0]]), torch.tensor([0.4]), torch.tensor([3]), 0.1, 0.001, 0)
    with pytest.raises(ValueError, match="finite"):
        batched_nms(torch.tensor([[1.0, float("nan")]]), torch.tensor([0.4]), torch.tensor([3]), 0.1, 0.001, 5)


def test_batched_nms_early_stop_equals_full_run() -> None:
    """The k-way merge with its early stop returns what full per-class runs + sort + cut return."""
    rng = np.random.default_rng(7)
    n = 1500
    x1 = (rng.random(n) * 500).astype(np.float32)
    segs = np.stack([x1, x1 + (rng.random(n) * 40 + 0.1).astype(np.float32)], 1)
    scores = rng.random(n).astype(np.float32) * np.float32(0.9) + np.float32(0.002)
    labels = rng.integers(0, 20, n)
    got = batched_nms(torch.from_numpy(segs), torch.from_numpy(scores), torch.from_numpy(labels), 0.1, 0.001, 50)
    parts = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        inds, s, sc = soft_nms_1d(torch.from_numpy(segs[idx]), torch.from_numpy(scores[idx]))
        parts.append((s[:50], sc[:50], torch.full((min(50, len(inds)),), int(c))))
    all_s, all_sc, all_l = (torch.cat([p[k] for p in parts]) for k in range(3))
    order = torch.sort(all_sc, descending=True)[1][:50]
    assert torch.equal(got[0], all_s[order]) and torch.equal(got[1], all_sc[order])
    assert torch.equal(got[2], all_l[order])
