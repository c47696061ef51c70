"""Seeded synthetic inputs shared by both sides of the benchmark (NumPy/torch only, no tadformer import).

Both workers (ours in ``.venv``, the official package in ``bench/.venv-official``) build their inputs
here, so they see bit-identical features, ground truth, head outputs and detections.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# THUMOS14 I3D sizes
INPUT_DIM, NUM_CLASSES, FEAT_STRIDE, NUM_FRAMES, FPS = 2048, 20, 4, 16, 30.0
STRIDES = (1, 2, 4, 8, 16, 32)
LONGEST_TEST_T = 12534  # feature steps of the longest THUMOS14 test video


def features(seed: int, length: int, input_dim: int = INPUT_DIM) -> np.ndarray:
    """``[C, T]`` float32 I3D-like features (non-negative, post-ReLU statistics)."""
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(0.0, 0.5, size=(input_dim, length))).astype(np.float32)


def ground_truth(seed: int, length: int, num_classes: int = NUM_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """THUMOS-like actions on the feature grid: ``[N, 2]`` float32 segments and ``[N]`` int64 labels."""
    rng = np.random.default_rng(seed + 7919)
    n = int(rng.integers(4, 20))
    lens = rng.uniform(4.0, 60.0, n)
    starts = rng.uniform(0.0, length - 61.0, n)
    segs = np.stack([starts, starts + lens], 1).astype(np.float32)
    labels = rng.choice(rng.choice(num_classes, 3, replace=False), n).astype(np.int64)
    return segs, labels


def head_outputs(seed: int, t_pad: int = 2304, t_valid: int = 1800, num_classes: int = NUM_CLASSES
                 ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per-level raw head outputs of one THUMOS-like video, as a trained model produces them.

    A few actions per video whose classes get high logits around them, noise logits elsewhere; decoded
    with the THUMOS test_cfg they give about 4,000-12,000 candidates.

    Returns:
        logits ``[T_l, NC]``, offsets ``[T_l, 2]`` (stride units, >= 0) and masks ``[T_l]`` bool per level.
    """
    rng = np.random.default_rng(seed)
    lengths = [t_pad >> lv for lv in range(len(STRIDES))]
    actions = [(float(rng.uniform(0, t_valid)), float(rng.uniform(5, 120)), int(rng.integers(0, num_classes)))
               for _ in range(int(rng.integers(3, 15)))]
    main_classes = rng.choice(num_classes, size=3, replace=False)
    logits, offsets, masks = [], [], []
    for lv, n in enumerate(lengths):
        s = STRIDES[lv]
        t = np.arange(n, dtype=np.float32) * s
        lg = rng.normal(-7.0, 1.6, size=(n, num_classes)).astype(np.float32)
        lg[:, main_classes] += 1.5
        off = rng.uniform(0.2, 3.0, size=(n, 2)).astype(np.float32)
        for centre, length, cls in actions:
            inside = np.abs(t - centre) < length / 2
            k = int(inside.sum())
            lg[inside, cls] = rng.normal(1.0, 1.5, size=k)
            off[inside, 0] = (t[inside] - (centre - length / 2)) / s * rng.uniform(0.8, 1.2, k)
            off[inside, 1] = ((centre + length / 2) - t[inside]) / s * rng.uniform(0.8, 1.2, k)
        logits.append(lg)
        offsets.append(np.maximum(off, 0).astype(np.float32))
        masks.append(np.arange(n) * s < t_valid)
    return logits, offsets, masks


EVAL_VIDEOS, EVAL_PREDS_PER_VIDEO, EVAL_NUM_GT = 213, 200, 3358


def eval_case(seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """THUMOS-sized evaluation: 213 test videos, 20 classes, ~3,358 GT, 200 predictions per video.

    Jittered true positives, duplicates, wrong labels and background false positives.

    Returns:
        (annotation json with ``database``, ActivityNet-format results dict).
    """
    rng = np.random.default_rng(seed)
    gt_per_video = rng.multinomial(EVAL_NUM_GT - EVAL_VIDEOS, np.full(EVAL_VIDEOS, 1 / EVAL_VIDEOS)) + 1
    database, results = {}, {}
    for v in range(EVAL_VIDEOS):
        vid = f"video_test_{v:07d}"
        duration = float(rng.uniform(60, 600))
        classes = rng.choice(NUM_CLASSES, size=rng.integers(1, 3), replace=False)
        n = int(gt_per_video[v])
        starts = rng.uniform(0, duration - 12, n)
        lens = rng.uniform(1, 10, n)
        labels = rng.choice(classes, n)
        database[vid] = {
            "subset": "Test", "duration": duration, "fps": FPS,
            "annotations": [{"label": f"class_{l}", "label_id": int(l), "segment": [float(s), float(s + d)]}
                            for s, d, l in zip(starts, lens, labels)],
        }
        k_tp = min(n * 3, EVAL_PREDS_PER_VIDEO // 2)
        src = rng.integers(0, n, k_tp)
        jit = rng.normal(0, 0.1, (k_tp, 2)) * lens[src, None]
        p_seg = np.stack([starts[src], starts[src] + lens[src]], 1) + jit
        p_lab = np.where(rng.random(k_tp) < 0.9, labels[src], rng.integers(0, NUM_CLASSES, k_tp))
        n_bg = EVAL_PREDS_PER_VIDEO - k_tp
        bg_s = rng.uniform(0, duration, n_bg)
        p_seg = np.concatenate([p_seg, np.stack([bg_s, bg_s + rng.uniform(0.5, 15, n_bg)], 1)])
        p_lab = np.concatenate([p_lab, rng.integers(0, NUM_CLASSES, n_bg)])
        score = np.concatenate([rng.uniform(0.2, 1.0, k_tp), rng.uniform(0.0, 0.5, n_bg)]).astype(np.float32)
        p_seg = np.sort(p_seg, axis=1).astype(np.float32)
        results[vid] = [{"label": f"class_{l}", "label_id": int(l), "score": float(s),
                         "segment": [float(a), float(b)]} for (a, b), s, l in zip(p_seg, score, p_lab)]
    return {"database": database}, {"version": "VERSION 1.3", "results": results, "external_data": {}}


ANET_VIDEOS, ANET_CLASSES, ANET_PREDS_PER_VIDEO = 4926, 200, 100
ANET_TIOU = np.linspace(0.5, 0.95, 10)


def anet_eval_case(seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """ActivityNet-sized evaluation: 4,926 validation videos, 200 classes, ~1.5 long GT per video, 100
    predictions per video laid out like fused output (50 segments, each under the video's top-2 classes)."""
    rng = np.random.default_rng(seed)
    database, results = {}, {}
    for v in range(ANET_VIDEOS):
        vid = f"anet_{v:05d}"
        duration = float(rng.uniform(60, 240))
        n = int(rng.choice([1, 1, 2, 2, 3]))
        cls = int(rng.integers(ANET_CLASSES))
        lens = rng.uniform(0.1, 0.6, n) * duration / n
        starts = rng.uniform(0, duration - lens)
        database[vid] = {"subset": "validation", "duration": duration, "fps": 30.0,
                         "annotations": [{"label": f"class_{cls}", "label_id": cls, "segment": [float(s), float(s + d)]}
                                         for s, d in zip(starts, lens)]}
        k = ANET_PREDS_PER_VIDEO // 2
        src = rng.integers(0, n, k)
        seg = np.stack([starts[src], starts[src] + lens[src]], 1) + rng.normal(0, 0.15, (k, 2)) * lens[src, None]
        seg = np.sort(seg.clip(0, duration), axis=1)
        score = np.sort(rng.uniform(0, 1, k))[::-1]
        other = int((cls + 1 + rng.integers(ANET_CLASSES - 1)) % ANET_CLASSES)
        top = [cls, other] if rng.random() < 0.8 else [other, cls]
        ext = np.sort(rng.uniform(0.05, 1, 2))[::-1]
        results[vid] = [{"label": f"class_{c}", "label_id": c, "score": float(np.sqrt(e * sc)),
                         "segment": [float(a), float(b)]} for c, e in zip(top, ext) for (a, b), sc in zip(seg, score)]
    return {"database": database}, {"version": "VERSION 1.3", "results": results, "external_data": {}}


def flat_predictions(results: dict[str, Any], float64: bool = False) -> dict[str, np.ndarray]:
    """ActivityNet results -> the official flat dict (``video-id``, ``t-start``, ``t-end``, ``label``, ``score``)."""
    vids, starts, ends, labels, scores = [], [], [], [], []
    for vid, dets in results["results"].items():
        for d in dets:
            vids.append(vid)
            starts.append(d["segment"][0])
            ends.append(d["segment"][1])
            labels.append(d["label_id"])
            scores.append(d["score"])
    real = np.float64 if float64 else np.float32  # fused ActivityNet results are float64
    return {"video-id": np.asarray(vids), "t-start": np.asarray(starts, dtype=real),
            "t-end": np.asarray(ends, dtype=real), "label": np.asarray(labels, dtype=np.int64),
            "score": np.asarray(scores, dtype=real)}
