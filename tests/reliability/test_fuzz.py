"""Property-based tests (hypothesis): annotation reader, seconds <-> grid, NMS and the mAP metric."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tadformer.data.annotations import AnnotationError, read_annotations
from tadformer.metrics import evaluate_detections
from tadformer.nms import batched_nms, hard_nms_1d, soft_nms_1d
from tadformer.segments import grid_to_sec, sec_to_grid

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EPS32 = 2.0**-24

# ------------------------------------------------------------------------------------------ annotations

_json_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=4)
_json_any = st.recursive(_json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                          max_size=3), max_leaves=8)


@st.composite
def _valid_video(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 4))
    anns = []
    for _ in range(n):
        start = draw(st.floats(0, 500, allow_nan=False))
        length = draw(st.floats(0.01, 100, allow_nan=False))
        label_id = draw(st.integers(0, 4))
        anns.append({"label": f"class{label_id}", "label_id": label_id, "segment": [start, start + length]})
    return {"subset": draw(st.sampled_from(["Validation", "Test", "test"])),
            "fps": draw(st.floats(1, 120, allow_nan=False)), "duration": draw(st.floats(1, 2000, allow_nan=False)),
            "annotations": anns}


@SETTINGS
@given(videos=st.dictionaries(st.text(min_size=1, max_size=8), _valid_video(), max_size=5))
def test_valid_annotations_round_trip(videos: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"database": videos}))
    ann = read_annotations(path)
    assert ann.video_ids == list(videos)
    for rec in ann.videos:
        entry = videos[rec.video_id]
        np.testing.assert_array_equal(rec.segments_sec.reshape(-1, 2),
                                      np.array([a["segment"] for a in entry["annotations"]]).reshape(-1, 2))
        assert rec.labels.tolist() == [a["label_id"] for a in entry["annotations"]]
        assert rec.fps == entry["fps"] and rec.duration_sec == entry["duration"]
    assert all(ann.label_dict[name] == int(name[5:]) for name in ann.label_dict)


@SETTINGS
@given(videos=st.dictionaries(st.text(min_size=1, max_size=8), _valid_video(), min_size=1, max_size=3),
       garbage=_json_any, where=st.sampled_from(["database", "video", "subset", "fps", "duration", "annotations",
                                                 "annotation", "segment", "start", "label", "label_id"]),
       truncate=st.booleans())
def test_corrupted_annotations_raise_only_annotation_error(videos: dict[str, Any], garbage: Any, where: str,
                                                           truncate: bool, tmp_path: Path) -> None:
    data: dict[str, Any] = {"database": videos}
    vid = next(iter(videos))
    entry = videos[vid]
    anns = entry["annotations"]
    if where == "database":
        data["database"] = garbage
    elif where == "video":
        videos[vid] = garbage
    elif where in ("subset", "fps", "duration", "annotations"):
        entry[where] = garbage
    elif anns and where == "annotation":
        anns[0] = garbage
    elif anns and where in ("label", "label_id", "segment"):
        anns[0][where] = garbage
    elif anns and where == "start":
        anns[0]["segment"][0] = garbage
    text = json.dumps(data)
    path = tmp_path / "ann.json"
    path.write_text(text[: len(text) // 2] if truncate else text)
    try:
        read_annotations(path)
    except AnnotationError as err:
        assert str(path) in str(err)


# ------------------------------------------------------------------------------------------ seconds <-> grid


@SETTINGS
@given(secs=st.lists(st.floats(0, 5000, allow_nan=False), min_size=2, max_size=20),
       fps=st.floats(1, 120, allow_nan=False), stride=st.sampled_from([1, 2, 4, 8, 16, 32]),
       num_frames=st.integers(1, 64))
def test_seconds_grid_round_trip_and_monotone(secs: list[float], fps: float, stride: int, num_frames: int) -> None:
    sec = np.sort(np.asarray(secs, dtype=np.float32)).astype(np.float64)
    segs = np.stack([sec, sec], axis=1)
    grid = sec_to_grid(segs, fps, stride, num_frames)
    assert grid.dtype == torch.float32
    assert bool((grid[1:, 0] >= grid[:-1, 0]).all())  # order preserved
    back = grid_to_sec(grid, fps, stride, num_frames).double().numpy()
    # a few float32 roundings of values up to sec * fps + num_frames (in frames)
    tol = 8 * EPS32 * (sec * fps + num_frames) / fps + 1e-12
    assert np.all(np.abs(back[:, 0] - sec) <= tol)
    duration = float(sec[-1]) / 2
    clamped = grid_to_sec(grid, fps, stride, num_frames, duration_sec=duration).numpy()
    assert (clamped >= 0).all() and (clamped <= np.float32(duration)).all()


# ------------------------------------------------------------------------------------------ NMS


@st.composite
def _candidates(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = draw(st.integers(0, 25))
    starts = draw(st.lists(st.floats(0, 100, allow_nan=False, width=32), min_size=n, max_size=n))
    lens = draw(st.lists(st.floats(0, 30, allow_nan=False, width=32), min_size=n, max_size=n))
    scores = draw(st.lists(st.floats(0, 1, allow_nan=False, width=32), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    s = torch.tensor(starts, dtype=torch.float32)
    segs = torch.stack([s, s + torch.tensor(lens, dtype=torch.float32)], dim=1).reshape(n, 2)
    return segs, torch.tensor(scores, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    inter = max(0.0, min(float(a[1]), float(b[1])) - max(float(a[0]), float(b[0])))
    union = float(a[1] - a[0]) + float(b[1] - b[0]) + 2e-6 - inter
    return inter / union


@SETTINGS
@given(cands=_candidates(), thr=st.floats(0.05, 0.95), max_seg=st.integers(1, 50))
def test_hard_nms_keeps_no_overlapping_pair(cands, thr: float, max_seg: int) -> None:
    segs, scores, _ = cands
    keep, out_segs, out_scores = hard_nms_1d(segs, scores, thr, min_score=0.001, max_num=max_seg)
    assert len(keep) == len(set(keep.tolist())) <= max_seg
    assert torch.equal(out_segs, segs[keep]) and bool((out_scores[:-1] >= out_scores[1:]).all())
    for i in range(len(keep)):
        for j in range(i + 1, len(keep)):
            assert _iou(out_segs[i], out_segs[j]) < thr + 1e-5


@SETTINGS
@given(cands=_candidates(), sigma=st.floats(0.1, 1.0), min_score=st.floats(0.0001, 0.5))
def test_soft_nms_only_decays(cands, sigma: float, min_score: float) -> None:
    segs, scores, _ = cands
    keep, out_segs, out_scores = soft_nms_1d(segs, scores, sigma=sigma, min_score=min_score)
    assert len(keep) == len(set(keep.tolist()))
    assert torch.equal(out_segs, segs[keep])
    assert bool((out_scores <= scores[keep]).all())
    # as in the official kernel, only segments decayed by a pick are removed below min_score: every
    # pick but the first one (which may start below it) scores at least min_score
    assert bool((out_scores[1:] >= np.float32(min_score)).all())
    assert bool((out_scores[:-1] >= out_scores[1:]).all())


@SETTINGS
@given(cands=_candidates(), max_seg=st.integers(1, 30), soft=st.booleans(), multiclass=st.booleans())
def test_batched_nms_output_contract(cands, max_seg: int, soft: bool, multiclass: bool) -> None:
    segs, scores, labels = cands
    out_segs, out_scores, out_labels = batched_nms(segs, scores, labels, 0.5, 0.001, max_seg, use_soft_nms=soft,
                                                   multiclass=multiclass, voting_thresh=0.0)
    assert out_segs.shape[0] == out_scores.shape[0] == out_labels.shape[0] <= max_seg
    assert bool((out_scores[:-1] >= out_scores[1:]).all())
    if len(scores):
        assert bool((out_scores <= scores.max()).all())
    pairs = {(tuple(s.tolist()), int(lab)) for s, lab in zip(segs, labels)}
    assert all((tuple(s.tolist()), int(lab)) in pairs for s, lab in zip(out_segs, out_labels))


# ------------------------------------------------------------------------------------------ metric


@st.composite
def _ground_truth(draw: st.DrawFn) -> dict[str, Any]:
    """Test-split GT; segments on a 0.1 s grid, distinct per video and class, so none is de-duplicated."""
    database = {}
    for v in range(draw(st.integers(1, 5))):
        cells = draw(st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 300), st.integers(0, 3)),
                              min_size=1, max_size=6, unique_by=lambda c: (c[0], c[1], c[2])))
        database[f"video_{v}"] = {"subset": "Test", "annotations": [
            {"label": f"c{lab}", "label_id": lab, "segment": [s / 10, (s + n) / 10]} for s, n, lab in cells]}
    return {"database": database}


def _as_predictions(gt: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    results = {}
    n = sum(len(e["annotations"]) for e in gt["database"].values())
    scores = rng.sample(range(1, 10 * n + 1), n)  # distinct scores
    for vid, entry in gt["database"].items():
        results[vid] = [{"label_id": a["label_id"], "score": scores.pop() / (10 * n + 1), "segment": a["segment"]}
                        for a in entry["annotations"]]
    return {"results": results}


THRESHOLDS = np.array([0.1, 0.5, 0.7, 0.95])


@SETTINGS
@given(gt=_ground_truth(), seed=st.integers(0, 2**16))
def test_perfect_predictions_score_one(gt: dict[str, Any], seed: int) -> None:
    result = evaluate_detections(gt, _as_predictions(gt, random.Random(seed)), "test", THRESHOLDS)
    np.testing.assert_array_equal(result.mAP, np.ones(len(THRESHOLDS)))


@st.composite
def _noisy_predictions(draw: st.DrawFn, gt: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {}
    videos = [*gt["database"], "unknown_video"]
    n = draw(st.integers(0, 25))
    scores = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))
    for score in scores:
        vid = draw(st.sampled_from(videos))
        start = draw(st.floats(-10, 250, allow_nan=False))
        end = draw(st.floats(-10, 250, allow_nan=False))
        results.setdefault(vid, []).append({"label_id": draw(st.integers(0, 4)), "score": score / 10**6,
                                            "segment": [start, end]})
    return {"results": results}


@SETTINGS
@given(data=st.data(), gt=_ground_truth())
def test_map_in_unit_interval_and_invariant_to_video_order(data: st.DataObject, gt: dict[str, Any]) -> None:
    preds = data.draw(_noisy_predictions(gt))
    result = evaluate_detections(gt, preds, "test", THRESHOLDS)
    assert np.all((result.mAP >= 0) & (result.mAP <= 1)) and 0 <= result.average_mAP <= 1
    assert np.all((result.ap_per_class >= 0) & (result.ap_per_class <= 1))
    order = data.draw(st.permutations(list(gt["database"])))
    gt_shuffled = {"database": {v: gt["database"][v] for v in order}}
    pred_order = data.draw(st.permutations(list(preds["results"])))
    preds_shuffled = {"results": {v: preds["results"][v] for v in pred_order}}
    shuffled = evaluate_detections(gt_shuffled, preds_shuffled, "test", THRESHOLDS)
    np.testing.assert_array_equal(shuffled.mAP, result.mAP)
