"""Class-agnostic soft-NMS + score voting and the ActivityNet end-to-end post-processing against the golden
``datasets/agnostic_nms_cases``, at the tolerances of its README."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tadformer.model.points import make_points
from tadformer.nms import batched_nms
from tadformer.postprocess import decode_detections, detections_to_seconds, nms_detections, resolve_params

RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]


def _golden(golden_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((golden_dir / "datasets" / "agnostic_nms_cases.json").read_text())
    return meta, dict(np.load(golden_dir / "datasets" / "agnostic_nms_cases.npz"))


def _tied_mask(n: int, ranges: list[list[int]]) -> np.ndarray:
    tied = np.zeros(n, dtype=bool)
    for lo, hi in ranges:
        tied[lo:hi] = True
    return tied


@pytest.mark.parametrize("i", range(6))
def test_class_agnostic_soft_nms_with_voting(golden_dir: Path, i: int) -> None:
    meta, a = _golden(golden_dir)
    p, case = meta["params"], meta["cases"][i]
    key = f"case{i}/"
    segs, scores, labels = batched_nms(
        torch.from_numpy(a[key + "segs"]), torch.from_numpy(a[key + "scores"]), torch.from_numpy(a[key + "labels"]),
        p["iou_threshold"], p["min_score"], p["max_seg_num"], use_soft_nms=p["use_soft_nms"],
        multiclass=p["multiclass"], sigma=p["sigma"], voting_thresh=p["voting_thresh"])
    assert segs.shape == (case["n_out"], 2)
    tied = _tied_mask(case["n_out"], case["tied_output_ranges"])
    for lo, hi in case["tied_output_ranges"]:  # tied items compared as a set
        got = sorted(zip(labels[lo:hi].tolist(), scores[lo:hi].tolist()))
        want = sorted(zip(a[key + "out_labels"][lo:hi].tolist(), a[key + "out_scores"][lo:hi].tolist()))
        assert got == want
    free = torch.from_numpy(~tied)
    torch.testing.assert_close(scores, torch.from_numpy(a[key + "out_scores"]), atol=1e-6, rtol=0)
    assert torch.equal(labels[free], torch.from_numpy(a[key + "out_labels"])[free])
    torch.testing.assert_close(segs[free], torch.from_numpy(a[key + "out_segs"])[free], atol=1e-4, rtol=0)


def test_anet_end_to_end(golden_dir: Path) -> None:
    meta, a = _golden(golden_dir)
    e2e = meta["end_to_end"]
    model = np.load(golden_dir / "datasets" / "anet_tiny_model.npz")
    logits = [torch.from_numpy(model[f"video0/cls_logits_l{lv}"][0]) for lv in range(6)]
    offsets = [torch.from_numpy(model[f"video0/offsets_l{lv}"][0]) for lv in range(6)]
    masks = [torch.from_numpy(model[f"video0/masks_l{lv}"][0]) for lv in range(6)]
    points = make_points([x.shape[0] for x in logits], [2**lv for lv in range(6)], RANGES)
    params = resolve_params(SimpleNamespace(**e2e["test_cfg"]))
    segs, scores, labels = decode_detections(logits, offsets, masks, points, params.pre_nms_thresh,
                                             params.pre_nms_topk, params.duration_thresh)
    g = {k.split("/", 1)[1]: v for k, v in a.items() if k.startswith("end_to_end/")}
    assert segs.shape[0] == e2e["num_pre_nms"]
    assert torch.equal(segs, torch.from_numpy(g["pre_nms_segments_grid"]))
    assert torch.equal(labels, torch.from_numpy(g["pre_nms_labels"]))
    torch.testing.assert_close(scores, torch.from_numpy(g["pre_nms_scores"]), atol=0, rtol=1.2e-7)  # <= 1 ulp
    nsegs, nscores, nlabels = nms_detections(segs, scores, labels, params)
    assert nsegs.shape[0] == e2e["num_final"]
    torch.testing.assert_close(nscores, torch.from_numpy(g["nms_scores"]), atol=1e-6, rtol=0)
    assert torch.equal(nlabels, torch.from_numpy(g["nms_labels"]))
    torch.testing.assert_close(nsegs, torch.from_numpy(g["nms_segments_grid"]), atol=1e-4, rtol=0)
    video = SimpleNamespace(video_id=e2e["video_id"], fps=e2e["fps"], duration_sec=e2e["duration"],
                            feat_stride=e2e["feat_stride"], feat_num_frames=e2e["feat_num_frames"])
    det = detections_to_seconds(nsegs, nscores, nlabels, video)
    torch.testing.assert_close(det.segments_sec, torch.from_numpy(g["segments_sec"]), atol=2e-4, rtol=0)
    assert torch.equal(det.labels, torch.from_numpy(g["labels"]))
