"""Time ``evaluate_detections`` on a THUMOS-sized synthetic run.

213 test videos, 20 classes, ~3,358 GT, 200 predictions per video (42,600 in total):
jittered true positives, duplicates, wrong labels and background false positives. The
official pandas/joblib evaluator needs ~45 s for this size; run with
``.venv/bin/python bench/bench_metrics.py``.
"""

from __future__ import annotations

import time

import numpy as np

from tadformer.metrics import evaluate_detections, format_map_table

NUM_VIDEOS, NUM_CLASSES, PREDS_PER_VIDEO, NUM_GT = 213, 20, 200, 3358


def make_case(seed: int = 0) -> tuple[dict, dict]:
    """Synthetic GT database and ActivityNet-format predictions (THUMOS-like)."""
    rng = np.random.default_rng(seed)
    gt_per_video = rng.multinomial(NUM_GT - NUM_VIDEOS, np.full(NUM_VIDEOS, 1 / NUM_VIDEOS)) + 1
    database, results = {}, {}
    for v in range(NUM_VIDEOS):
        vid = f"video_test_{v:07d}"
        duration = float(rng.uniform(60, 600))
        classes = rng.choice(NUM_CLASSES, size=rng.integers(1, 3), replace=False)
        n = int(gt_per_video[v])
        starts = rng.uniform(0, duration - 12, n)
        lens = rng.uniform(1, 10, n)
        labels = rng.choice(classes, n)
        database[vid] = {
            "subset": "Test",
            "duration": duration,
            "fps": 30.0,
            "annotations": [
                {"label": str(l), "label_id": int(l), "segment": [float(s), float(s + d)]}
                for s, d, l in zip(starts, lens, labels)
            ],
        }
        k_tp = min(n * 3, PREDS_PER_VIDEO // 2)
        src = rng.integers(0, n, k_tp)
        jit = rng.normal(0, 0.1, (k_tp, 2)) * lens[src, None]
        p_seg = np.stack([starts[src], starts[src] + lens[src]], 1) + jit
        p_lab = np.where(rng.random(k_tp) < 0.9, labels[src], rng.integers(0, NUM_CLASSES, k_tp))
        n_bg = PREDS_PER_VIDEO - k_tp
        bg_s = rng.uniform(0, duration, n_bg)
        p_seg = np.concatenate([p_seg, np.stack([bg_s, bg_s + rng.uniform(0.5, 15, n_bg)], 1)])
        p_lab = np.concatenate([p_lab, rng.integers(0, NUM_CLASSES, n_bg)])
        score = np.concatenate([rng.uniform(0.2, 1.0, k_tp), rng.uniform(0.0, 0.5, n_bg)]).astype(np.float32)
        p_seg = np.sort(p_seg, axis=1).astype(np.float32)
        results[vid] = [
            {"label": str(l), "label_id": int(l), "score": float(s), "segment": [float(a), float(b)]}
            for (a, b), s, l in zip(p_seg, score, p_lab)
        ]
    return {"database": database}, {"version": "VERSION 1.3", "results": results, "external_data": {}}


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
