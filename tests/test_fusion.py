"""External classification-score fusion (ActivityNet): golden parity, hand-derived cases, bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tadformer.fusion import (
    ExtScoreError,
    ExtScores,
    FusedDetections,
    fuse_ext_scores,
    map_class_labels,
    read_ext_scores,
)


def _write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


# ------------------------------------------------------------------ golden parity (official code output)


@pytest.fixture(scope="module")
def golden(golden_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    case = json.loads((golden_dir / "datasets" / "score_fusion_cases.json").read_text())
    with np.load(golden_dir / "datasets" / "score_fusion_cases.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return case, arrays


@pytest.fixture()
def golden_fused(golden, tmp_path: Path) -> tuple[FusedDetections, ExtScores]:
    case, arr = golden
    ext = read_ext_scores(_write(tmp_path / "cuhk.json", case["ext_score_file"]))
    vids = [case["video_ids"][i] for i in arr["input/video_index"]]
    assert arr["input/t_start"].dtype == np.float32 and arr["input/score"].dtype == np.float32
    fused = fuse_ext_scores(vids, arr["input/t_start"], arr["input/t_end"], arr["input/score"], ext,
                            num_pred=case["params"]["num_pred"], topk=case["params"]["topk"])
    return fused, ext


def test_golden_arrays_match(golden, golden_fused) -> None:
    case, arr = golden
    fused, _ = golden_fused
    assert len(fused) == arr["output/label"].shape[0] == 1116
    assert fused.video_ids == [case["video_ids"][i] for i in arr["output/video_index"]]
    for ours, key in ((fused.t_start, "t_start"), (fused.t_end, "t_end")):
        assert ours.dtype == np.float64
        np.testing.assert_array_equal(ours, arr[f"output/{key}"])
    assert fused.labels.dtype == np.int64
    np.testing.assert_array_equal(fused.labels, arr["output/label"])
    assert fused.scores.dtype == np.float64
    np.testing.assert_allclose(fused.scores, arr["output/score"], rtol=1e-12, atol=0)


def test_golden_per_video(golden, golden_fused) -> None:
    case, arr = golden
    fused, ext = golden_fused
    per_video = case["per_video"]
    assert [pv["video_id"] for pv in per_video] == sorted(case["video_ids"])  # code-point order
    assert "notInResults1" in ext.scores and "notInResults1" not in fused.video_ids
    for pv in per_video:
        lo, hi = pv["out_range"]
        vid = pv["video_id"]
        assert fused.video_ids[lo:hi] == [vid] * (hi - lo)
        assert vid not in fused.video_ids[:lo] + fused.video_ids[hi:]
        n = pv["num_kept"]
        assert hi - lo == 2 * n and n == min(pv["num_input"], 200)
        top1, top2 = pv["top2_class_idx"]
        np.testing.assert_array_equal(fused.labels[lo:hi], [top1] * n + [top2] * n)
        np.testing.assert_allclose(ext.scores[vid][[top1, top2]], pv["top2_class_score"], rtol=1e-12)
        # the second block repeats the segments of the first one
        np.testing.assert_array_equal(fused.t_start[lo:lo + n], fused.t_start[lo + n:hi])
        np.testing.assert_array_equal(fused.t_end[lo:lo + n], fused.t_end[lo + n:hi])
        # each block is ordered by score, highest first
        assert np.all(np.diff(fused.scores[lo:lo + n]) <= 0)


def test_golden_num_pred_cut_keeps_best(golden, golden_fused) -> None:
    case, arr = golden
    fused, ext = golden_fused
    vid = "k7Gd2zYQ1aE"
    rows = np.flatnonzero(np.asarray(case["video_ids"])[arr["input/video_index"]] == vid)
    assert rows.size == 250
    best200 = np.sort(arr["input/score"][rows].astype(np.float64))[::-1][:200]
    pv = next(p for p in case["per_video"] if p["video_id"] == vid)
    lo = pv["out_range"][0]
    top1 = ext.scores[vid][pv["top2_class_idx"][0]]
    np.testing.assert_allclose(fused.scores[lo:lo + 200] ** 2 / top1, best200, rtol=1e-12)


# ------------------------------------------------------------------ hand-derived cases


@pytest.fixture()
def small_ext() -> ExtScores:
    scores = {
        "vA": np.array([0.25, 0.04, 0.09]),  # top-2: class 0 (0.25), class 2 (0.09)
        "vB": np.array([0.01, 0.64, 0.16]),  # top-2: class 1 (0.64), class 2 (0.16)
    }
    return ExtScores(class_names=("a", "b", "c"), scores=scores)


def test_hand_two_videos(small_ext: ExtScores) -> None:
    vids = ["vB", "vA", "vA", "vB", "vA"]  # interleaved, vB first: the output still starts with vA
    t_start = np.array([1.0, 10.0, 20.0, 3.0, 30.0])
    t_end = np.array([2.0, 11.0, 21.0, 4.0, 31.0])
    det = np.array([0.25, 0.36, 0.81, 1.0, 0.04])
    out = fuse_ext_scores(vids, t_start, t_end, det, small_ext)
    assert out.video_ids == ["vA"] * 6 + ["vB"] * 4
    # vA by score: 20 (0.81), 10 (0.36), 30 (0.04); vB: 3 (1.0), 1 (0.25)
    np.testing.assert_array_equal(out.t_start, [20, 10, 30, 20, 10, 30, 3, 1, 3, 1])
    np.testing.assert_array_equal(out.t_end, [21, 11, 31, 21, 11, 31, 4, 2, 4, 2])
    np.testing.assert_array_equal(out.labels, [0, 0, 0, 2, 2, 2, 1, 1, 2, 2])
    # sqrt(0.25*0.81)=0.45, sqrt(0.25*0.36)=0.3, sqrt(0.25*0.04)=0.1; with 0.09: 0.27, 0.18, 0.06
    # vB: sqrt(0.64*1)=0.8, sqrt(0.64*0.25)=0.4; sqrt(0.16*1)=0.4, sqrt(0.16*0.25)=0.2
    np.testing.assert_allclose(out.scores, [0.45, 0.3, 0.1, 0.27, 0.18, 0.06, 0.8, 0.4, 0.4, 0.2], rtol=1e-12)
    assert out.labels.dtype == np.int64 and out.scores.dtype == np.float64


def test_hand_num_pred_and_topk(small_ext: ExtScores) -> None:
    vids = ["vA"] * 3
    det = np.array([0.36, 0.81, 0.04])
    out = fuse_ext_scores(vids, np.arange(3.0), np.arange(3.0) + 1, det, small_ext, num_pred=2, topk=3)
    # keep 0.81 and 0.36 (rows 1, 0), then 3 classes by external score: 0 (0.25), 2 (0.09), 1 (0.04)
    np.testing.assert_array_equal(out.t_start, [1, 0] * 3)
    np.testing.assert_array_equal(out.labels, [0, 0, 2, 2, 1, 1])
    np.testing.assert_allclose(out.scores, [0.45, 0.3, 0.27, 0.18, math.sqrt(0.04 * 0.81), 0.12], rtol=1e-12)
    one = fuse_ext_scores(vids, np.arange(3.0), np.arange(3.0) + 1, det, small_ext, topk=1)
    np.testing.assert_array_equal(one.labels, [0, 0, 0])
    np.testing.assert_array_equal(one.t_start, [1, 0, 2])


def test_float32_inputs_are_widened_exactly(small_ext: ExtScores) -> None:
    t_start = np.array([0.1, 0.7], dtype=np.float32)
    det = np.array([0.3, 0.9], dtype=np.float32)
    out = fuse_ext_scores(["vA", "vA"], t_start, t_start + 1, det, small_ext, topk=1)
    np.testing.assert_array_equal(out.t_start, [np.float64(np.float32(0.7)), np.float64(np.float32(0.1))])
    assert out.t_start[1] != 0.1  # the float32 value, not its decimal
    expect = [math.sqrt(0.25 * float(np.float32(0.9))), math.sqrt(0.25 * float(np.float32(0.3)))]
    np.testing.assert_allclose(out.scores, expect, rtol=1e-15)


def test_sorted_order_is_code_point() -> None:
    names = ("x", "y")
    ids = ["b", "_c", "B", "-a"]
    ext = ExtScores(class_names=names, scores={v: np.array([0.5, 0.2]) for v in ids})
    out = fuse_ext_scores(ids, np.zeros(4), np.ones(4), np.full(4, 0.5), ext, topk=1)
    assert out.video_ids == ["-a", "B", "_c", "b"]


def test_ties_follow_reversed_stable_argsort() -> None:
    ext = ExtScores(class_names=("a", "b", "c"), scores={"v": np.array([0.3, 0.3, 0.1])})
    out = fuse_ext_scores(["v", "v", "v"], np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]),
                          np.array([0.5, 0.5, 0.9]), ext)
    # tied detections: the later input row first; tied classes: the higher index first
    np.testing.assert_array_equal(out.t_start, [2, 1, 0, 2, 1, 0])
    np.testing.assert_array_equal(out.labels, [1, 1, 1, 0, 0, 0])


def test_empty_detections(small_ext: ExtScores) -> None:
    out = fuse_ext_scores([], np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32), small_ext)
    assert len(out) == 0 and out.video_ids == []
    assert out.t_start.dtype == np.float64 and out.labels.dtype == np.int64 and out.scores.dtype == np.float64


# ------------------------------------------------------------------ fusion errors


def test_missing_video_names_video_and_file(tmp_path: Path) -> None:
    ext = read_ext_scores(_write(tmp_path / "scores.json", {"results": {"vA": [0.5, 0.5]}, "class": ["a", "b"]}))
    with pytest.raises(ExtScoreError, match=r"'vZ'.*scores\.json"):
        fuse_ext_scores(["vA", "vZ"], np.zeros(2), np.ones(2), np.ones(2), ext)
    with pytest.raises(ExtScoreError, match=r"'v_vA'.*without the 'v_' prefix"):
        fuse_ext_scores(["v_vA"], np.zeros(1), np.ones(1), np.ones(1), ext)


def test_fuse_bad_arguments(small_ext: ExtScores) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        fuse_ext_scores(["vA", "vA"], np.zeros(2), np.ones(1), np.ones(2), small_ext)
    with pytest.raises(ValueError, match="topk"):
        fuse_ext_scores(["vA"], np.zeros(1), np.ones(1), np.ones(1), small_ext, topk=4)
    with pytest.raises(ValueError, match="num_pred"):
        fuse_ext_scores(["vA"], np.zeros(1), np.ones(1), np.ones(1), small_ext, num_pred=0)
    bad = ExtScores(class_names=("a", "b", "c"), scores={"vA": np.array([0.1, 0.2])})
    with pytest.raises(ExtScoreError, match="'vA': 2 external scores for 3 classes"):
        fuse_ext_scores(["vA"], np.zeros(1), np.ones(1), np.ones(1), bad)


# ------------------------------------------------------------------ reading the score file


def test_read_ok(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.json", {"results": {"vA": [1, 0.5], "vB": [0.25, 0.75]}, "class": ["a", "b"],
                                        "version": "x"})
    ext = read_ext_scores(path)
    assert ext.class_names == ("a", "b") and set(ext.scores) == {"vA", "vB"}
    assert ext.scores["vA"].dtype == np.float64
    np.testing.assert_array_equal(ext.scores["vA"], [1.0, 0.5])
    assert ext.source == str(path)


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_ext_scores(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"class": ["a"]}), "missing key 'results'"),
        (json.dumps({"results": {}}), "missing key 'class'"),
        (json.dumps({"results": {"vA": [0.1]}, "class": "a"}), "'class' must be a non-empty list"),
        (json.dumps({"results": {"vA": [0.1, 0.2]}, "class": ["a", "b", "a"]}), "duplicate class names.*'a'"),
        (json.dumps({"results": [0.1], "class": ["a"]}), "'results' must map video ids"),
        (json.dumps({"results": {"vA": [0.1, 0.2], "vB": [0.1]}, "class": ["a", "b"]}),
         "video 'vB' has 1 scores, expected 2"),
        (json.dumps({"results": {"vA": [0.1, "0.2"]}, "class": ["a", "b"]}), "'vA': non-numeric score '0.2'.*'b'"),
        (json.dumps({"results": {"vA": [None, 0.2]}, "class": ["a", "b"]}), "'vA': non-numeric score None"),
        (json.dumps({"results": {"vA": [True, 0.2]}, "class": ["a", "b"]}), "'vA': non-numeric score True"),
        (json.dumps({"results": {"vA": 0.2}, "class": ["a"]}), "'vA': scores must be a list"),
        ('{"results": {"vA": [NaN, 0.2]}, "class": ["a", "b"]}', "'vA': non-finite score nan"),
    ],
)
def test_read_errors(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad_scores.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ExtScoreError, match=fragment) as info:
        read_ext_scores(path)
    assert "bad_scores.json" in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------ class-name mapping


def test_map_class_labels_by_name() -> None:
    names = ("a", "b", "c")
    fused = np.array([2, 2, 0, 1], dtype=np.int64)
    out = map_class_labels(fused, names, {"c": 0, "a": 5, "b": 1})
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [0, 0, 5, 1])
    identity = map_class_labels(fused, names, {"a": 0, "b": 1, "c": 2})
    np.testing.assert_array_equal(identity, fused)
    # only the classes that occur need to be known
    np.testing.assert_array_equal(map_class_labels(np.array([0, 0]), names, {"a": 7}), [7, 7])
    assert map_class_labels(np.zeros(0, np.int64), names, {}).shape == (0,)


def test_map_class_labels_errors() -> None:
    names = ("a", "b", "c")
    with pytest.raises(ExtScoreError, match="'b', 'c'") as info:
        map_class_labels(np.array([0, 1, 2]), names, {"a": 0})
    assert "'a'" not in str(info.value)
    with pytest.raises(ExtScoreError, match="class index 3"):
        map_class_labels(np.array([0, 3]), names, {"a": 0, "b": 1, "c": 2})
    with pytest.raises(ExtScoreError, match="integers"):
        map_class_labels(np.array([0.0, 1.0]), names, {"a": 0, "b": 1, "c": 2})


def test_golden_labels_map_by_name(golden, golden_fused) -> None:
    fused, ext = golden_fused
    name_to_id = {n: i for i, n in enumerate(ext.class_names)}
    np.testing.assert_array_equal(map_class_labels(fused.labels, ext.class_names, name_to_id), fused.labels)
    reversed_ids = {n: len(ext.class_names) - 1 - i for i, n in enumerate(ext.class_names)}
    np.testing.assert_array_equal(map_class_labels(fused.labels, ext.class_names, reversed_ids),
                                  len(ext.class_names) - 1 - fused.labels)
