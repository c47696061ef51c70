"""ActivityNet-style mAP: golden cases of the official evaluator, hand-derived toys, a naive reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tadformer.metrics import (
    EvalResult,
    evaluate_detections,
    format_map_table,
    format_official_summary,
    load_ground_truth,
)
from tadformer.results_io import ResultsFormatError, flatten_results

ATOL = 1e-6  # golden README tolerance for mAP, average mAP and per-class AP
CASE_NAMES = ["edge_cases", "tied_scores", "realistic", "perfect_and_zero"]


@pytest.fixture(scope="module")
def metrics_cases(golden_dir: Path) -> dict[str, dict[str, Any]]:
    cases = json.loads((golden_dir / "metrics_cases.json").read_text())["cases"]
    return {c["name"]: c for c in cases}


def _run(case: dict[str, Any], predictions: dict[str, Any] | None = None) -> EvalResult:
    return evaluate_detections(
        case["ground_truth"],
        case["predictions"] if predictions is None else predictions,
        split=case["split"],
        tiou_thresholds=case["tiou_thresholds"],
    )


def _gt(videos: dict[str, list[tuple[float, float, int]]], subset: str = "Test") -> dict[str, Any]:
    return {
        "database": {
            v: {
                "subset": subset,
                "annotations": [{"label": str(l), "label_id": l, "segment": [s, e]} for s, e, l in anns],
            }
            for v, anns in videos.items()
        }
    }


def _preds(videos: dict[str, list[tuple[float, float, int, float]]]) -> dict[str, Any]:
    return {
        "results": {
            v: [{"label_id": l, "score": sc, "segment": [s, e]} for s, e, l, sc in dets]
            for v, dets in videos.items()
        }
    }


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden_cases(metrics_cases: dict[str, dict[str, Any]], name: str) -> None:
    case = metrics_cases[name]
    expected = case["expected"]
    result = _run(case)
    np.testing.assert_allclose(result.mAP, expected["mAP"], rtol=0, atol=ATOL)
    assert result.average_mAP == pytest.approx(expected["average_mAP"], rel=0, abs=ATOL)
    np.testing.assert_allclose(result.ap_per_class, expected["ap_per_class"], rtol=0, atol=ATOL)
    assert result.class_ids.tolist() == expected["class_ids"]
    assert result.num_gt == expected["num_gt_after_dedup"]
    assert list(result.top_k) == expected["recall_topk_x"]["top_k"]
    np.testing.assert_allclose(result.recall_topk, expected["recall_topk_x"]["values"], rtol=0, atol=ATOL)
    printed = [line for line in expected["printed"] if not line.startswith("Warning")]
    assert format_official_summary(result, "gt") == printed


def test_tied_scores_visit_order(metrics_cases: dict[str, dict[str, Any]]) -> None:
    from tadformer.metrics import score_visit_order

    case = metrics_cases["tied_scores"]
    flat = flatten_results(case["predictions"])
    for label, expected in case["visit_order_flat_index"].items():
        rows = np.flatnonzero(flat.labels == int(label))
        assert rows[score_visit_order(flat.scores[rows])].tolist() == expected


def test_tied_scores_depend_on_input_order(metrics_cases: dict[str, dict[str, Any]]) -> None:
    case = metrics_cases["tied_scores"]
    results = case["predictions"]["results"]
    reversed_preds = {"results": {v: results[v][::-1] for v in reversed(list(results))}}
    expected = case["if_input_order_reversed"]
    result = _run(case, reversed_preds)
    np.testing.assert_allclose(result.mAP, expected["mAP"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(result.ap_per_class, expected["ap_per_class"], rtol=0, atol=ATOL)
    assert result.average_mAP == pytest.approx(expected["average_mAP"], rel=0, abs=ATOL)


def test_video_order_invariance_without_ties(metrics_cases: dict[str, dict[str, Any]]) -> None:
    case = metrics_cases["realistic"]  # no tied scores within a class
    results = case["predictions"]["results"]
    order = np.random.default_rng(0).permutation(len(results))
    names = list(results)
    shuffled = {"results": {names[i]: results[names[i]] for i in order}}
    np.testing.assert_array_equal(_run(case, shuffled).ap_per_class, _run(case).ap_per_class)


def test_flat_official_dict_equals_results_format(metrics_cases: dict[str, dict[str, Any]]) -> None:
    case = metrics_cases["realistic"]
    flat = flatten_results(case["predictions"])
    official = {
        "video-id": [flat.video_names[i] for i in flat.video_index],
        "t-start": flat.t_start_sec.astype(np.float32),
        "t-end": flat.t_end_sec.astype(np.float32),
        "label": flat.labels,
        "score": flat.scores.astype(np.float32),
    }
    np.testing.assert_array_equal(_run(case, official).ap_per_class, _run(case).ap_per_class)


def test_hand_derived_toy_ap() -> None:
    # GT [0,10], [20,30]. A=[0,10] TP; B=[1,10] (tIoU .9 with the locked GT, 0 with the other) FP;
    # C=[20,26] tIoU .6: TP up to 0.6, FP at 0.7.
    # thr<=.6: P=[1,.5,2/3], R=[.5,.5,1] -> AP = .5*1 + .5*(2/3); thr .7: P=[1,.5,1/3], R=.5 -> AP .5
    gt = _gt({"v": [(0.0, 10.0, 0), (20.0, 30.0, 0)]})
    preds = _preds({"v": [(0.0, 10.0, 0, 0.9), (1.0, 10.0, 0, 0.8), (20.0, 26.0, 0, 0.7)]})
    result = evaluate_detections(gt, preds)
    expected = [0.5 + 0.5 * 2 / 3] * 4 + [0.5]
    np.testing.assert_allclose(result.ap_per_class[:, 0], expected, rtol=0, atol=1e-12)
    assert result.average_mAP == pytest.approx(np.mean(expected), abs=1e-12)


def test_second_choice_gt_when_first_is_locked() -> None:
    # GT g0=[0,10], g1=[2,12]. A=[2,12] takes g1. B=[2,11.5]: g1 (tIoU .95) is locked, so B falls back
    # to g0 (tIoU 8/12=.667): TP for thr<=.6, FP at .7 -> AP 1,1,1,1,.5.
    gt = _gt({"v": [(0.0, 10.0, 0), (2.0, 12.0, 0)]})
    preds = _preds({"v": [(2.0, 12.0, 0, 0.9), (2.0, 11.5, 0, 0.8)]})
    result = evaluate_detections(gt, preds)
    np.testing.assert_allclose(result.ap_per_class[:, 0], [1, 1, 1, 1, 0.5], rtol=0, atol=1e-12)


def test_perfect_predictions_on_thumos(thumos_json: Path) -> None:
    data = json.loads(thumos_json.read_text())
    preds = {
        "results": {
            v: [{"label_id": a["label_id"], "score": 0.5, "segment": a["segment"]} for a in e["annotations"]]
            for v, e in data["database"].items()
            if e["subset"].lower() == "test"
        }
    }
    result = evaluate_detections(data, preds)
    assert result.num_gt == 3358
    assert result.class_ids.tolist() == list(range(20))
    np.testing.assert_array_equal(result.ap_per_class, 1.0)
    np.testing.assert_array_equal(result.recall_topk, 1.0)


@pytest.mark.parametrize(
    "preds", [{"results": {}}, {"video-id": [], "t-start": [], "t-end": [], "label": [], "score": []}]
)
def test_empty_predictions_give_zero(preds: dict[str, Any]) -> None:
    result = evaluate_detections(_gt({"v": [(0.0, 10.0, 0), (5.0, 8.0, 1)]}), preds)
    assert result.average_mAP == 0.0
    np.testing.assert_array_equal(result.ap_per_class, 0.0)
    assert result.num_predictions == 0 and result.num_gt == 2


def test_dedup_compares_with_kept_events_only() -> None:
    # b is within 1e-3 of a (dropped); c is within 1e-3 of b but not of a, and b was dropped: c is kept.
    # d has another label (kept); e is shorter than 1e-3 (dropped); the Validation video is ignored.
    gt = _gt(
        {"v": [(0.0, 10.0, 0), (0.0008, 10.0008, 0), (0.0016, 10.0016, 0), (0.0, 10.0, 1), (3.0, 3.0009, 0)]}
    )
    gt["database"]["w"] = {"subset": "Validation", "annotations": [{"label_id": 0, "segment": [1.0, 2.0]}]}
    loaded = load_ground_truth(gt, "test")
    assert loaded.video_names == ["v"]
    np.testing.assert_array_equal(loaded.t_start_sec, [0.0, 0.0016, 0.0])
    np.testing.assert_array_equal(loaded.labels, [0, 0, 1])


def _naive_ap(gt: dict[str, Any], preds: dict[str, Any], thresholds: np.ndarray) -> np.ndarray:
    """Straight per-prediction transcription of SPEC §7 (slow; a reference for the vectorised code)."""
    g = load_ground_truth(gt, "test")
    flat = flatten_results(preds)
    pvid = np.array([flat.video_names[i] for i in flat.video_index])
    gvid = np.array([g.video_names[i] for i in g.video_index])
    classes = np.unique(g.labels)
    # the official activity index: GT ids -> their rank; a predicted id without GT keeps its value
    index = {int(cid): rank for rank, cid in enumerate(classes)}
    p_labels = np.array([index.get(int(lab), int(lab)) for lab in flat.labels], dtype=np.int64)
    ap = np.zeros((len(thresholds), len(classes)))
    for c, cid in enumerate(classes):
        g_rows = np.flatnonzero(g.labels == cid)
        p_rows = np.flatnonzero(p_labels == c)
        if len(p_rows) == 0:
            continue
        p_rows = p_rows[np.argsort(flat.scores[p_rows])[::-1]]
        lock = np.full((len(thresholds), len(g_rows)), False)
        tp = np.zeros((len(thresholds), len(p_rows)))
        for i, p in enumerate(p_rows):
            cand = np.flatnonzero(gvid[g_rows] == pvid[p])
            if len(cand) == 0:
                continue
            s, e = flat.t_start_sec[p], flat.t_end_sec[p]
            gs, ge = g.t_start_sec[g_rows[cand]], g.t_end_sec[g_rows[cand]]
            inter = (np.minimum(e, ge) - np.maximum(s, gs)).clip(0)
            tiou = inter / ((ge - gs) + (e - s) - inter)
            for t, thr in enumerate(thresholds):
                for j in tiou.argsort()[::-1]:
                    if tiou[j] < thr:
                        break
                    if not lock[t, cand[j]]:
                        lock[t, cand[j]] = True
                        tp[t, i] = 1
                        break
        for t in range(len(thresholds)):
            tpc, fpc = np.cumsum(tp[t]), np.cumsum(1 - tp[t])
            prec = np.hstack([[0], tpc / (tpc + fpc), [0]])
            rec = np.hstack([[0], tpc / len(g_rows), [1]])
            for k in range(len(prec) - 2, -1, -1):
                prec[k] = max(prec[k], prec[k + 1])
            idx = np.where(rec[1:] != rec[:-1])[0] + 1
            ap[t, c] = np.sum((rec[idx] - rec[idx - 1]) * prec[idx])
    return ap


_seg = st.tuples(st.integers(0, 12), st.integers(1, 6), st.integers(0, 2))


@settings(max_examples=60, deadline=None)
@given(
    gt_segs=st.lists(st.tuples(st.sampled_from(["a", "b"]), _seg), min_size=1, max_size=10),
    pred_segs=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), _seg, st.sampled_from([0.25, 0.5, 0.75])), max_size=25
    ),
)
def test_matches_naive_reference(gt_segs: list[Any], pred_segs: list[Any]) -> None:
    # integer grids and 3 score values create tied scores, tied tIoUs and multi-candidate predictions
    gt_videos: dict[str, list[tuple[float, float, int]]] = {}
    for v, (s, d, l) in gt_segs:
        gt_videos.setdefault(v, []).append((float(s), float(s + d), l))
    pred_videos: dict[str, list[tuple[float, float, int, float]]] = {}
    for v, (s, d, l), score in pred_segs:
        pred_videos.setdefault(v, []).append((float(s), float(s + d), l, score))
    gt, preds = _gt(gt_videos), _preds(pred_videos)
    thresholds = np.linspace(0.3, 0.7, 5)
    result = evaluate_detections(gt, preds, tiou_thresholds=thresholds)
    np.testing.assert_array_equal(result.ap_per_class, _naive_ap(gt, preds, thresholds))


def test_to_dict_and_table() -> None:
    gt = _gt({"v": [(0.0, 10.0, 0), (20.0, 30.0, 1)]})
    result = evaluate_detections(gt, _preds({"v": [(0.0, 10.0, 0, 0.9)]}))
    out = result.to_dict(["Run", "Jump"])
    assert out["ap_per_class"] == {"Run": [1.0] * 5, "Jump": [0.0] * 5}
    assert out["average_mAP"] == 0.5 and out["mAP_by_tiou"]["0.50"] == 0.5
    json.dumps(out)
    table = format_map_table(result).splitlines()
    assert table[0] == "| tIoU | 0.30 | 0.40 | 0.50 | 0.60 | 0.70 | Avg |"
    assert table[2] == "| mAP (%) | 50.00 | 50.00 | 50.00 | 50.00 | 50.00 | 50.00 |"


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="database"):
        evaluate_detections({"videos": {}}, {"results": {}})
    with pytest.raises(ValueError, match="'v'"):
        load_ground_truth({"database": {"v": {"subset": "test", "annotations": [{"segment": [0, 1]}]}}})
    preds = {
        "results": {
            "v": [{"label_id": 0, "score": 0.5, "segment": [0, 1]}, {"label_id": 0, "segment": [0, 1]}]
        }
    }
    with pytest.raises(ResultsFormatError, match=r"results\['v'\]\[1\] is missing key 'score'"):
        evaluate_detections(_gt({"v": [(0.0, 1.0, 0)]}), preds)
    with pytest.raises(ResultsFormatError, match="ActivityNet result format"):
        evaluate_detections(_gt({"v": [(0.0, 1.0, 0)]}), {"predictions": []})


def test_eval_predictions_keeps_float64_at_a_threshold(tmp_path: Path, capsys) -> None:
    """A result file whose float64 end time puts the tIoU just above 0.5; rounding that end time to
    float32 (1.40000007 -> 1.4000000954) would drop it just below 0.5 and lose the match.

    By hand: GT [0, 0.70000004], prediction [0, 1.40000007]; tIoU = 0.70000004 / 1.40000007
    = 0.5 + 3.6e-9, so the one prediction is a TP at tIoU 0.3, 0.4 and 0.5 (AP 1) and a FP at 0.6
    and 0.7 (AP 0): mAP [1, 1, 1, 0, 0], average 0.6 (float32 rounding would give 0.4)."""
    from tadformer.cli import main

    assert 0.70000004 / 1.40000007 >= 0.5 > 0.70000004 / float(np.float32(1.40000007))
    gt = {"database": {"v1": {"subset": "test", "duration": 5.0, "fps": 30.0,
                              "annotations": [{"label": "A", "label_id": 0, "segment": [0.0, 0.70000004]}]}}}
    preds = {"version": "VERSION 1.3", "external_data": {},
             "results": {"v1": [{"label": "A", "label_id": 0, "score": 0.9, "segment": [0.0, 1.40000007]}]}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    assert main(["eval", "--predictions", str(tmp_path / "preds.json"), "--annotations",
                 str(tmp_path / "gt.json"), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["mAP"] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert metrics["average_mAP"] == pytest.approx(0.6, abs=1e-15)
