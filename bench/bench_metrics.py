"""Time ``evaluate_detections`` on a THUMOS-sized synthetic run.

213 test videos, 20 classes, ~3,358 GT, 200 predictions per video (42,600 in total):
jittered true positives, duplicates, wrong labels and background false positives. The
official pandas/joblib evaluator needs ~45 s for this size; run with
``.venv/bin/python -m bench.bench_metrics`` (ours only; side by side: ``python -m bench eval``).
"""

from __future__ import annotations

import time

import numpy as np

from bench import cases
from tadformer.metrics import evaluate_detections, format_map_table


def make_case(seed: int = 0) -> tuple[dict, dict]:
    """Synthetic GT database and ActivityNet-format predictions (THUMOS-like), see :func:`bench.cases.eval_case`."""
    return cases.eval_case(seed)


def main() -> None:
    gt, preds = make_case()
    evaluate_detections(gt, preds)  # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        result = evaluate_detections(gt, preds)
        times.append(time.perf_counter() - t0)
    print(format_map_table(result))
    print(
        f"{result.num_predictions} predictions, {result.num_gt} GT, {len(result.class_ids)} classes: "
        f"best {min(times):.3f} s, median {np.median(times):.3f} s over {len(times)} runs"
    )


if __name__ == "__main__":
    main()
