"""Decoding, NMS and seconds against golden/postprocess.* (staged) plus hand-made cases."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tadformer.model.outputs import HeadOutputs
from tadformer.model.points import Points, make_points
from tadformer.postprocess import (
    decode_detections,
    detections_to_seconds,
    nms_detections,
    postprocess_batch,
    postprocess_video,
    resolve_params,
)

STRIDES = [1, 2, 4, 8, 16, 32]
RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]


def _load(golden_dir: Path, case: str) -> tuple[dict, dict, list, list, list, Points]:
    js = json.loads((golden_dir / "postprocess.json").read_text())
    pp = dict(np.load(golden_dir / "postprocess.npz"))
    src, prefix = (dict(np.load(golden_dir / "forward_eval.npz")), "video1/") if case == "forward" \
        else (pp, "synthetic/")
    logits = [torch.from_numpy(src[f"{prefix}cls_logits_l{lv}"][0]) for lv in range(6)]
    offsets = [torch.from_numpy(src[f"{prefix}offsets_l{lv}"][0]) for lv in range(6)]
    masks = [torch.from_numpy(src[f"{prefix}masks_l{lv}"][0]) for lv in range(6)]
    points = make_points(js[case]["level_lengths"], STRIDES, RANGES)
    return js, {k.split("/", 1)[1]: v for k, v in pp.items() if k.startswith(case + "/")}, logits, offsets, \
        masks, points


def _meta(m: dict) -> SimpleNamespace:
    return SimpleNamespace(video_id=m["video_id"], fps=m["fps"], duration_sec=m["duration"],
                           feat_stride=m["feat_stride"], feat_num_frames=m["feat_num_frames"])


@pytest.mark.parametrize("case", ["forward", "synthetic"])
def test_postprocess_staged_against_golden(golden_dir: Path, case: str) -> None:
    js, g, logits, offsets, masks, points = _load(golden_dir, case)
    m, params = js[case], resolve_params(SimpleNamespace(**js["test_cfg"]))
    # stage 1: decoding, exact set and order
    segs, scores, labels = decode_detections(logits, offsets, masks, points, params.pre_nms_thresh,
                                             params.pre_nms_topk, params.duration_thresh)
    assert torch.equal(segs, torch.from_numpy(g["pre_nms_segments_grid"]))
    assert torch.equal(labels, torch.from_numpy(g["pre_nms_labels"]))
    # scores are sigmoids of the golden logits. The golden file came from PyTorch's AVX2 kernels (with
    # ATEN_CPU_CAPABILITY=avx2 every golden score is reproduced bit for bit); the AVX-512 sigmoid kernel
    # differs by one float32 ulp on some inputs (seen: 1 of 4,016, 8.5e-8 relative), exactly as the
    # official code would on that CPU. So: exact on AVX2, one ulp elsewhere, and on every CPU each score
    # is exactly this machine's torch.sigmoid of a golden logit of its class.
    golden_scores = torch.from_numpy(g["pre_nms_scores"])
    if torch.backends.cpu.get_cpu_capability() == "AVX2":
        assert torch.equal(scores, golden_scores)
    else:
        torch.testing.assert_close(scores, golden_scores, atol=0, rtol=1.2e-7)  # <= 1 ulp
    probs = torch.cat([torch.sigmoid(lg)[mk] for lg, mk in zip(logits, masks, strict=True)])  # [P, C]
    assert all(bool((probs[:, lab] == sc).any()) for sc, lab in zip(scores.tolist(), labels.tolist(), strict=True))
    # per-level counts: decode each level alone, with and without the duration filter
    for lv in range(6):
        one = make_points([m["level_lengths"][lv]], [STRIDES[lv]], [RANGES[lv]])
        args = ([logits[lv]], [offsets[lv]], [masks[lv]], one, params.pre_nms_thresh)
        kept = decode_detections(*args, pre_nms_topk=10**9, duration_thresh=-np.inf)[1].shape[0]
        topk = decode_detections(*args, pre_nms_topk=params.pre_nms_topk, duration_thresh=-np.inf)[1].shape[0]
        final = decode_detections(*args, pre_nms_topk=params.pre_nms_topk,
                                  duration_thresh=params.duration_thresh)[1].shape[0]
        assert kept == m["above_thresh_per_level"][lv] == g["above_thresh_per_level"][lv]
        assert final == m["candidates_per_level"][lv]
        assert topk - final == m["dropped_by_duration_per_level"][lv]
    # stage 2: NMS, grid units, exact order
    nsegs, nscores, nlabels = nms_detections(segs, scores, labels, params)
    assert torch.equal(nsegs, torch.from_numpy(g["nms_segments_grid"]))
    torch.testing.assert_close(nscores, torch.from_numpy(g["nms_scores"]), atol=1e-6, rtol=0)
    assert torch.equal(nlabels, torch.from_numpy(g["nms_labels"]))
    # stage 3: seconds, clamps (including -0.0)
    det = detections_to_seconds(nsegs, nscores, nlabels, _meta(m))
    sec = det.segments_sec.numpy()
    np.testing.assert_allclose(sec, g["segments_sec"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(np.signbit(sec), np.signbit(g["segments_sec"]))
    assert int(np.sum(np.signbit(sec))) == m["num_negative_zero"]
    assert int(np.sum(sec == np.float32(m["duration"]))) == m["num_clamped_to_duration"]
    # end to end through the public entry points
    full = postprocess_video(logits, offsets, masks, points, _meta(m), SimpleNamespace(**js["test_cfg"]))
    assert full.video_id == m["video_id"] and len(full) == m["num_final"]
    assert torch.equal(full.segments_sec, det.segments_sec) and torch.equal(full.labels, torch.from_numpy(g["labels"]))
    outputs = HeadOutputs([x[None] for x in logits], [x[None] for x in offsets], [x[None] for x in masks], points)
    (batched,) = postprocess_batch(outputs, [_meta(m)], **js["test_cfg"])
    assert torch.equal(batched.segments_sec, det.segments_sec) and torch.equal(batched.scores, det.scores)


def _tiny_inputs(logit_value: float) -> tuple[list, list, list, Points]:
    points = make_points([8, 4], [1, 2], [(0, 4), (4, 10000)])
    logits = [torch.full((8, 3), -20.0), torch.full((4, 3), -20.0)]
    logits[1][1, 2] = logit_value  # level 1, point t=2, class 2
    offsets = [torch.ones(8, 2), torch.tensor([[0.0, 0.0], [0.5, 1.5], [0.0, 0.0], [0.0, 0.0]])]
    masks = [torch.ones(8, dtype=torch.bool), torch.tensor([True, True, True, False])]
    return logits, offsets, masks, points


def test_decode_one_candidate_hand_derived() -> None:
    logits, offsets, masks, points = _tiny_inputs(0.0)
    segs, scores, labels = decode_detections(logits, offsets, masks, points)
    # t = 1 * 2 = 2, stride 2: (2 - 0.5*2, 2 + 1.5*2) = (1, 5); sigmoid(0) = 0.5
    assert segs.tolist() == [[1.0, 5.0]] and scores.tolist() == [0.5] and labels.tolist() == [2]
    meta = SimpleNamespace(video_id="v", fps=25.0, duration_sec=1.0, feat_stride=4, feat_num_frames=16)
    det = postprocess_video(logits, offsets, masks, points, meta)
    # seconds = (grid*4 + 8)/25 -> (0.48, 1.12) clamped to the 1.0 s duration
    torch.testing.assert_close(det.segments_sec, torch.tensor([[0.48, 1.0]]), atol=1e-6, rtol=0)


def test_empty_and_masked_inputs() -> None:
    logits, offsets, masks, points = _tiny_inputs(-20.0)
    logits[1][3, 0] = 5.0  # a confident logit at a padded step is removed by the mask
    segs, scores, labels = decode_detections(logits, offsets, masks, points)
    assert segs.shape == (0, 2) and scores.shape == (0,) and labels.dtype == torch.int64
    meta = SimpleNamespace(video_id="v", fps=25.0, duration_sec=10.0, feat_stride=4, feat_num_frames=16)
    for method in ("soft", "hard", "none"):
        det = postprocess_video(logits, offsets, masks, points, meta, nms_method=method)
        assert det.segments_sec.shape == (0, 2) and det.labels.dtype == torch.int64


def test_settings_resolution_and_errors() -> None:
    cfg = SimpleNamespace(pre_nms_topk=5, max_seg_num=3, ext_score_file=None)
    params = resolve_params(cfg, min_score=0.01)
    assert (params.pre_nms_topk, params.max_seg_num, params.min_score, params.nms_sigma) == (5, 3, 0.01, 0.5)
    with pytest.raises(ValueError, match="unknown"):
        resolve_params(None, max_segs=3)
    with pytest.raises(ValueError, match="nms_method"):
        resolve_params(None, nms_method="greedy")
    logits, offsets, masks, points = _tiny_inputs(0.0)
    with pytest.raises(ValueError, match="level"):
        decode_detections(logits[:1], offsets, masks, points)
    outputs = HeadOutputs([x[None] for x in logits], [x[None] for x in offsets], [x[None] for x in masks], points)
    with pytest.raises(ValueError, match="metas"):
        postprocess_batch(outputs, [])


def test_accepts_the_project_test_config() -> None:
    config = pytest.importorskip("tadformer.config")
    params = resolve_params(config.TestConfig())
    assert params.nms_method == "soft" and params.pre_nms_thresh == 0.001
