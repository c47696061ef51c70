"""Decoding, NMS and seconds of TriDet and TemporalMaxer (``<case>_postprocess.json`` + ``_forward.npz``).

Candidates are decoded from the STORED head outputs (for TriDet: its boundary logits and centre-head
output through the Trident rule), so this tests post-processing alone; the model's own forward is
compared with the same arrays in ``tests/model``.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tadformer.model.points import make_points
from tadformer.model.tridet import trident_offsets
from tadformer.postprocess import decode_detections, detections_to_seconds, nms_detections, resolve_params
from variants_golden import CASES, VARIANTS, npz

STRIDES = [1, 2, 4, 8, 16, 32]
RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]
NUM_BINS = 16


def _videos() -> list[tuple[str, int]]:
    out = []
    for case in CASES:
        pp = json.loads((VARIANTS / f"{case}_postprocess.json").read_text())
        fwd = npz(f"{case}_forward")
        out += [(case, v) for v in range(len(pp["videos"])) if f"video{v}/pp/pre_nms_scores" in fwd]
    return out


def _stored(case: str, video: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    fwd = npz(f"{case}_forward")
    g = lambda name, lvl: torch.from_numpy(fwd[f"video{video}/{name}_l{lvl}"])  # noqa: E731
    logits = [g("cls_logits", lvl)[0] for lvl in range(6)]
    masks = [g("masks", lvl)[0] for lvl in range(6)]
    if case.startswith("tridet"):
        offsets = [trident_offsets(g("start_logits", lvl), g("end_logits", lvl), g("reg_head_out", lvl),
                                   NUM_BINS)[0] for lvl in range(6)]
    else:
        offsets = [g("offsets", lvl)[0] for lvl in range(6)]
    return logits, offsets, masks


def _assert_same_up_to_ties(scores: torch.Tensor, others: list[torch.Tensor], want_scores: torch.Tensor,
                            want_others: list[torch.Tensor]) -> None:
    """Equal arrays, except that items with exactly tied scores may come in any order (unstable sort)."""
    assert scores.shape == want_scores.shape
    torch.testing.assert_close(scores, want_scores, atol=1e-8, rtol=0)
    for got, want in zip(others, want_others):
        mismatch = ~(got == want).reshape(got.shape[0], -1).all(-1)
        for i in torch.nonzero(mismatch).flatten().tolist():  # only inside a group of exactly tied scores
            tied = torch.nonzero(want_scores == want_scores[i]).flatten()
            assert len(tied) > 1, f"item {i} differs and has no tie: {got[i]} vs {want[i]}"
            assert any(bool((want[j] == got[i]).all()) for j in tied.tolist()), f"item {i} not among its ties"


@pytest.mark.parametrize(("case", "video"), _videos())
def test_decode_nms_and_seconds(case: str, video: int) -> None:
    pp = json.loads((VARIANTS / f"{case}_postprocess.json").read_text())
    meta = pp["videos"][video]
    fwd = npz(f"{case}_forward")
    params = resolve_params(SimpleNamespace(**pp["test_cfg"]))
    logits, offsets, masks = _stored(case, video)
    points = make_points(meta["level_lengths"], STRIDES, RANGES)
    assert [int(m.sum()) for m in masks] == meta["valid_lengths"]
    segs, scores, labels = decode_detections(logits, offsets, masks, points, params.pre_nms_thresh,
                                             params.pre_nms_topk, params.duration_thresh)
    pre = f"video{video}/pp/"
    assert segs.shape[0] == meta["num_pre_nms"]
    _assert_same_up_to_ties(scores, [segs, labels], torch.from_numpy(fwd[pre + "pre_nms_scores"]),
                            [torch.from_numpy(fwd[pre + "pre_nms_segments_grid"]),
                             torch.from_numpy(fwd[pre + "pre_nms_labels"])])
    # per-level candidate counts
    for lvl in range(6):
        one = make_points([meta["level_lengths"][lvl]], [STRIDES[lvl]], [RANGES[lvl]])
        n = decode_detections([logits[lvl]], [offsets[lvl]], [masks[lvl]], one, params.pre_nms_thresh,
                              params.pre_nms_topk, params.duration_thresh)[1].shape[0]
        assert n == meta["candidates_per_level"][lvl]
    # NMS on the golden candidates (so that score ulps of the sigmoid cannot matter), grid units
    want_in = [torch.from_numpy(fwd[pre + k]) for k in ("pre_nms_segments_grid", "pre_nms_scores", "pre_nms_labels")]
    nsegs, nscores, nlabels = nms_detections(*want_in, params)
    assert nscores.shape[0] == meta["num_final"]
    torch.testing.assert_close(nscores, torch.from_numpy(fwd[pre + "nms_scores"]), atol=1e-6, rtol=0)
    assert torch.equal(nsegs, torch.from_numpy(fwd[pre + "nms_segments_grid"]))
    assert torch.equal(nlabels, torch.from_numpy(fwd[pre + "nms_labels"]))
    # seconds, clamped to [0, duration]
    det = detections_to_seconds(nsegs, nscores, nlabels, SimpleNamespace(
        video_id=meta["video_id"], fps=meta["fps"], duration_sec=meta["duration"], feat_stride=meta["feat_stride"],
        feat_num_frames=meta["feat_num_frames"]))
    want = meta["detections"]
    torch.testing.assert_close(det.segments_sec, torch.tensor(want["segments"], dtype=torch.float32), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(det.scores, torch.tensor(want["scores"], dtype=torch.float32), atol=1e-6, rtol=0)
    assert det.labels.tolist() == want["labels"]
    negative_zero = int((torch.signbit(det.segments_sec) & (det.segments_sec == 0)).sum())
    assert negative_zero == meta["num_negative_zero"]
    assert int((det.segments_sec == meta["duration"]).sum()) == meta["num_clamped_to_duration"]


def test_max_seg_num_differs_between_the_recipes() -> None:
    tridet = json.loads((VARIANTS / "tridet_postprocess.json").read_text())["test_cfg"]
    maxer = json.loads((VARIANTS / "temporalmaxer_postprocess.json").read_text())["test_cfg"]
    assert (tridet["max_seg_num"], maxer["max_seg_num"]) == (2000, 200)
    assert np.isclose(tridet["nms_sigma"], 0.5) and tridet["multiclass_nms"] is True


@pytest.mark.parametrize("rule", ["score", "score_iou"])
def test_class_agnostic_voting_rules(rule: str) -> None:
    """TriDet votes with the neighbours' scores; ActionFormer (and TemporalMaxer) with score x IoU."""
    case = json.loads((VARIANTS / "tridet_postprocess.json").read_text())["voting_case"]
    p, inp = case["params"], case["input"]
    from tadformer.nms import batched_nms

    segs, scores, labels = batched_nms(
        torch.tensor(inp["segments"], dtype=torch.float32), torch.tensor(inp["scores"], dtype=torch.float32),
        torch.tensor(inp["labels"]), p["iou_threshold"], p["min_score"], p["max_seg_num"],
        use_soft_nms=p["use_soft_nms"], multiclass=p["multiclass"], sigma=p["sigma"],
        voting_thresh=p["voting_thresh"], voting_weights=rule)  # type: ignore[arg-type]
    want = case["output_repo"]
    assert segs.shape[0] == 25
    torch.testing.assert_close(scores, torch.tensor(want["scores"], dtype=torch.float32), atol=1e-6, rtol=0)
    assert labels.tolist() == want["labels"]
    want_segs = want["segments"] if rule == "score" else case["output_actionformer_segments"]
    torch.testing.assert_close(segs, torch.tensor(want_segs, dtype=torch.float32), atol=1e-5, rtol=0)


def test_raw_outputs_use_their_architecture_voting_rule() -> None:
    from tadformer.config_arch import arch_info

    assert arch_info("TriDet").voting == "score"
    assert arch_info("LocPointTransformer").voting == arch_info("TemporalMaxerArchitecture").voting == "score_iou"
