"""ActivityNet-style mAP (tIoU 0.5:0.05:0.95, float64 fused predictions) against the golden
``datasets/anet_metrics_cases.json``, at atol 1e-6 (the README's tolerance)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tadformer.metrics import evaluate_detections

NAMES = ["edge_cases", "tied_scores", "reversed_zero_union", "label_collision", "realistic"]


def _cases(golden_dir: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((golden_dir / "datasets" / "anet_metrics_cases.json").read_text())
    return {c["name"]: c for c in data["cases"]}


def _flat(rows: list[list[Any]]) -> dict[str, Any]:
    return {"video-id": [r[0] for r in rows], "t-start": np.array([r[1] for r in rows], dtype=np.float64),
            "t-end": np.array([r[2] for r in rows], dtype=np.float64),
            "label": np.array([r[3] for r in rows], dtype=np.int64),
            "score": np.array([r[4] for r in rows], dtype=np.float64)}


@pytest.mark.parametrize("name", NAMES)
def test_anet_metrics_cases(golden_dir: Path, name: str) -> None:
    case = _cases(golden_dir)[name]
    assert case["prediction_columns"] == ["video_id", "t_start", "t_end", "label", "score"]
    thresholds = np.asarray(case["tiou_thresholds"], dtype=np.float64)
    assert thresholds[8] == 0.8999999999999999  # linspace(0.5, 0.95, 10)
    result = evaluate_detections(case["ground_truth"], _flat(case["predictions"]), split=case["split"],
                                 tiou_thresholds=thresholds)
    exp = case["expected"]
    assert result.num_gt == exp["num_gt_after_dedup"]
    np.testing.assert_allclose(result.mAP, exp["mAP"], atol=1e-6, rtol=0)
    assert result.average_mAP == pytest.approx(exp["average_mAP"], abs=1e-6)
    np.testing.assert_allclose(result.ap_per_class, np.asarray(exp["ap_per_class"]), atol=1e-6, rtol=0)
