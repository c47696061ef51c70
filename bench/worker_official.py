"""Measurements of the official implementation (PyPI ``actionformer==1.5.0``), run in ``bench/.venv-official``.

Only the package's own code paths are timed: ``load_config`` on our THUMOS yaml (official key names),
``make_meta_arch``, the model's ``forward`` (which pads, runs the network, decodes and applies NMS in
eval mode, or returns the losses in train mode), ``make_optimizer`` / ``make_scheduler`` / ``ModelEma``
/ ``train_one_epoch`` and ``ANETdetection``. Nothing of tadformer is imported here.

Usage (by the driver): ``python -m bench.worker_official TASK JSON_ARGS``; prints ``RESULT {json}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import cases
from bench.measure import Peak, run_worker

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "thumos_i3d.yaml"


def official_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our THUMOS yaml through the package's own loader and defaults (optionally with overrides)."""
    import actionformer

    cfg: dict[str, Any] = actionformer.load_config(str(CONFIG))
    for key, value in (overrides or {}).items():
        section, name = key.split(".")
        cfg[section][name] = value
    for name in ("input_dim", "num_classes", "max_seq_len"):
        cfg["model"][name] = cfg["dataset"][name]
    return cfg


def build_model(cfg: dict[str, Any], seed: int = 0) -> Any:
    import actionformer

    torch.manual_seed(seed)
    return actionformer.make_meta_arch(cfg["model_name"], **cfg["model"])


def video_dict(idx: int, length: int, with_gt: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "video_id": f"video_{idx}", "feats": torch.from_numpy(cases.features(idx, length)),
        "fps": cases.FPS, "duration": (length * cases.FEAT_STRIDE + 0.5 * cases.NUM_FRAMES) / cases.FPS,
        "feat_stride": cases.FEAT_STRIDE, "feat_num_frames": cases.NUM_FRAMES,
        "segments": None, "labels": None,
    }
    if with_gt:
        segs, labels = cases.ground_truth(idx, length)
        item["segments"], item["labels"] = torch.from_numpy(segs), torch.from_numpy(labels)
    return item


def task_infer(length: int, repeats: int) -> dict[str, Any]:
    """End-to-end inference of one video: pad, network, decode, soft-NMS, seconds."""
    model = build_model(official_config()).eval()
    video = [video_dict(0, length, with_gt=False)]
    with torch.no_grad():
        with Peak() as peak:
            model(video)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(video)
            times.append(time.perf_counter() - start)
    return {"times": times, "peak_mb": peak.mb}


def task_train(length: int, repeats: int, batch_size: int = 2) -> dict[str, Any]:
    """Training steps through the package's own ``train_one_epoch`` (zero_grad, forward+losses,
    backward, grad clipping, AdamW step, scheduler step, EMA update)."""
    import actionformer

    cfg = official_config()
    model = build_model(cfg).train()
    optimizer = actionformer.make_optimizer(model, cfg["opt"])
    scheduler = actionformer.make_scheduler(optimizer, cfg["opt"], 100)
    ema = actionformer.ModelEma(model)
    batches = [[video_dict(s * batch_size + j, length, with_gt=True) for j in range(batch_size)]
               for s in range(repeats + 1)]
    clip = float(cfg["train_cfg"]["clip_grad_l2norm"])
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), Peak() as peak:  # first step: optimizer state allocated
        actionformer.train_one_epoch(batches[:1], model, optimizer, scheduler, 0, ema, clip, print_freq=10**9)
    times = []
    for batch in batches[1:]:
        with contextlib.redirect_stdout(sink):
            start = time.perf_counter()
            actionformer.train_one_epoch([batch], model, optimizer, scheduler, 0, ema, clip, print_freq=10**9)
            times.append(time.perf_counter() - start)
    return {"times": times, "peak_mb": peak.mb}


def task_nms(videos: int, repeats: int) -> dict[str, Any]:
    """Decoding + multiclass soft-NMS + conversion to seconds per video (``inference_single_video`` +
    ``postprocessing``, the compiled ``nms_1d_cpu`` op), on seeded THUMOS-like head outputs."""
    model = build_model(official_config()).eval()
    lengths = [2304 >> lv for lv in range(len(cases.STRIDES))]
    points = model.point_generator([torch.zeros(1, 1, n) for n in lengths])
    times: list[float] = []
    num_candidates = []
    with torch.no_grad():
        for v in range(videos):
            logits, offsets, masks = (list(map(torch.from_numpy, x)) for x in cases.head_outputs(v))
            meta = {"video_id": f"v{v}", "fps": cases.FPS, "duration": 1800 * 4 / cases.FPS,
                    "feat_stride": cases.FEAT_STRIDE, "feat_num_frames": cases.NUM_FRAMES}
            per_video = []
            for _ in range(repeats + 1):
                start = time.perf_counter()
                res = model.inference_single_video(points, masks, logits, offsets)
                res.update(meta)
                model.postprocessing([res])
                per_video.append(time.perf_counter() - start)
            num_candidates.append(int(model.inference_single_video(points, masks, logits, offsets)["scores"]
                                      .shape[0]))
            times.extend(per_video[1:])
    return {"times": times, "candidates": num_candidates}


def task_eval(repeats: int, size: str = "thumos") -> dict[str, Any]:
    """``ANETdetection`` (reads the ground-truth json, pandas + joblib) on 213 videos x 200 predictions, or
    ActivityNet-sized (``size="anet"``)."""
    import actionformer

    anet = size == "anet"
    gt, results = cases.anet_eval_case() if anet else cases.eval_case()
    preds = cases.flat_predictions(results, float64=anet)
    split, thr = ("validation", cases.ANET_TIOU) if anet else ("test", np.linspace(0.3, 0.7, 5))
    times, avg_map = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gt.json")
        Path(path).write_text(json.dumps(gt))
        for _ in range(repeats):
            start = time.perf_counter()
            evaluator = actionformer.ANETdetection(path, split, tiou_thresholds=thr)
            with contextlib.redirect_stdout(io.StringIO()):
                _, avg_map, _ = evaluator.evaluate(preds, verbose=False)
            times.append(time.perf_counter() - start)
    return {"times": times, "average_mAP": float(avg_map)}


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "infer": task_infer, "train": task_train, "nms": task_nms, "eval": task_eval}


if __name__ == "__main__":
    run_worker(TASKS)
