"""Test helper: a small fake run directory whose error analysis is worked out by hand.

Classes: 0 Jump, 1 Run, 2 Throw. Test-split GT (seconds):

- v1 (60 s): Jump [10, 20] (M), Run [30, 40] (M)
- v2 (50 s): Throw [5, 10] (S), Jump [20, 40] (XL)
- v3 (30 s): Run [2, 4] (XS)
- v4 is a validation video (ignored).

EMA predictions and their outcome at tIoU 0.5:

- v1 a Jump [10, 20] 0.90: TP (tIoU 1)
- v1 b Jump [11, 20] 0.80: double detection (tIoU 0.9 with the Jump GT matched by a)
- v1 c Run [10, 19] 0.70: wrong label (tIoU 0.9 with the Jump GT, 0 with the Run GT)
- v1 d Run [30, 34] 0.60: localization (tIoU 0.4 with the Run GT; a TP at 0.3 and 0.4)
- v1 e Throw [45, 55] 0.50: background (overlaps nothing)
- v2 f Throw [15, 25] 0.85: confusion (tIoU 5/25 = 0.2 with the Jump GT, 0 with the Throw GT)
- v2 g Jump [20, 40] 0.40: TP
- v5 h Jump [0, 10] 0.95: background (a video without GT)

Missed at 0.5: Run v1 (M), Throw v2 (S), Run v3 (XS).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tadformer.metrics import evaluate_detections

CLASS_NAMES = ["Jump", "Run", "Throw"]
GT_SEGMENTS: dict[str, tuple[str, float, list[tuple[int, float, float]]]] = {
    "v1": ("test", 60.0, [(0, 10.0, 20.0), (1, 30.0, 40.0)]),
    "v2": ("test", 50.0, [(2, 5.0, 10.0), (0, 20.0, 40.0)]),
    "v3": ("test", 30.0, [(1, 2.0, 4.0)]),
    "v4": ("validation", 20.0, [(0, 0.0, 5.0)]),
}
PREDICTIONS: dict[str, list[tuple[int, float, float, float]]] = {  # label, start, end, score
    "v1": [(0, 10.0, 20.0, 0.9), (0, 11.0, 20.0, 0.8), (1, 10.0, 19.0, 0.7), (1, 30.0, 34.0, 0.6),
           (2, 45.0, 55.0, 0.5)],
    "v2": [(2, 15.0, 25.0, 0.85), (0, 20.0, 40.0, 0.4)],
    "v5": [(0, 0.0, 10.0, 0.95)],
}


def ground_truth_dict() -> dict[str, Any]:
    db = {
        vid: {"subset": subset, "duration": dur, "fps": 30.0,
              "annotations": [{"label": CLASS_NAMES[c], "label_id": c, "segment": [s, e]} for c, s, e in anns]}
        for vid, (subset, dur, anns) in GT_SEGMENTS.items()
    }
    return {"version": "thumos14-fake", "database": db}


def predictions_dict(preds: dict[str, list[tuple[int, float, float, float]]]) -> dict[str, Any]:
    results = {vid: [{"label": CLASS_NAMES[c], "label_id": c, "score": p, "segment": [s, e]}
                     for c, s, e, p in rows] for vid, rows in preds.items()}
    return {"version": "VERSION 1.3", "results": results, "external_data": {}}


def _write_eval(folder: Path, gt: dict[str, Any], preds: dict[str, Any]) -> None:
    folder.mkdir(parents=True)
    metrics = evaluate_detections(gt, preds, split="test").to_dict(CLASS_NAMES)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (folder / "predictions.json").write_text(json.dumps(preds), encoding="utf-8")


def make_fake_run(root: Path) -> Path:
    """Write the fake run directory under ``root`` and return it."""
    run = root / "run"
    run.mkdir(parents=True)
    gt = ground_truth_dict()
    gt_path = root / "annotations.json"
    gt_path.write_text(json.dumps(gt), encoding="utf-8")
    config = {"dataset_name": "thumos", "train_split": ["validation"], "val_split": ["test"],
              "dataset": {"json_file": str(gt_path), "num_classes": 3, "feat_stride": 4},
              "opt": {"learning_rate": 1e-4, "epochs": 2, "warmup_epochs": 1}, "loader": {"batch_size": 2}}
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (run / "class_names.json").write_text(json.dumps(CLASS_NAMES), encoding="utf-8")
    log = [{"epoch": i // 20, "step": i + 1, "time_sec": 0.1, "cls_loss": 1.0 / (1 + 0.1 * i) + 0.05 * (i % 3),
            "reg_loss": 0.8 / (1 + 0.05 * i) + 0.03 * (i % 2), "final_loss": 1.8 / (1 + 0.08 * i),
            "num_pos": 10.0, "lr": 1e-4 * min(1.0, (i + 1) / 20), "grad_norm": 0.5 + 0.1 * (i % 4),
            "loss_normalizer": 100.0} for i in range(60)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log), encoding="utf-8")
    _write_eval(run / "eval", gt, predictions_dict(PREDICTIONS))
    regular = {vid: [r for r in rows if r[3] != 0.8] for vid, rows in PREDICTIONS.items()}  # drops b
    _write_eval(run / "eval_regular", gt, predictions_dict(regular))
    return run
