"""Measurements of tadformer, run in the project venv; mirrors :mod:`bench.worker_official` task by task.

Usage (by the driver): ``python -m bench.worker_ours TASK JSON_ARGS``; prints ``RESULT {json}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench import cases
from bench.measure import Peak, matmul_peak_gflops, run_worker
from tadformer.config import ExperimentConfig, load_config, packaged_config
from tadformer.data.collate import collate_eval, collate_train
from tadformer.data.types import VideoSample
from tadformer.engine.ema import ModelEma
from tadformer.engine.optim import build_optimizer, build_scheduler
from tadformer.engine.runtime import make_precision
from tadformer.engine.step import TrainParts, train_step
from tadformer.losses import LossNormalizer
from tadformer.metrics import evaluate_detections
from tadformer.model import ActionFormer, build_model, make_points
from tadformer.model.layers import use_fused_layer_norm
from tadformer.postprocess import postprocess_batch, postprocess_video


def thumos_config(overrides: list[str] | None = None, config: str = "thumos_i3d") -> ExperimentConfig:
    """A packaged THUMOS14 config: ``thumos_i3d`` (ActionFormer), ``thumos_i3d_tridet`` or
    ``thumos_i3d_temporalmaxer``."""
    return load_config(packaged_config(config), overrides or [])


def model_for(cfg: ExperimentConfig, seed: int = 0, fused_ln: bool = False) -> ActionFormer:
    torch.manual_seed(seed)
    model = build_model(cfg)
    if fused_ln:  # opt-in fast path (rounding differs by ~1 ulp from the official formula)
        use_fused_layer_norm(model)
    return model


def sample(idx: int, length: int, with_gt: bool) -> VideoSample:
    segs, labels = cases.ground_truth(idx, length) if with_gt else (None, None)
    return VideoSample(
        video_id=f"video_{idx}", feats=torch.from_numpy(cases.features(idx, length)),
        segments_grid=torch.from_numpy(segs) if segs is not None else torch.zeros(0, 2),
        labels=torch.from_numpy(labels) if labels is not None else torch.zeros(0, dtype=torch.int64),
        fps=cases.FPS, duration_sec=(length * cases.FEAT_STRIDE + 0.5 * cases.NUM_FRAMES) / cases.FPS,
        feat_stride=cases.FEAT_STRIDE, feat_num_frames=cases.NUM_FRAMES)


def task_infer(length: int, repeats: int, fused_ln: bool = False, amp: str = "off",
               config: str = "thumos_i3d") -> dict[str, Any]:
    """End-to-end inference of one video: pad, network, decode, soft-NMS, seconds.

    ``amp="bf16"``: the opt-in mixed-precision path (network under bf16 autocast, as ``--amp bf16``).
    """
    cfg = thumos_config(config=config)
    model = model_for(cfg, fused_ln=fused_ln).eval()
    batch = collate_eval([sample(0, length, with_gt=False)], cfg.dataset.max_seq_len, model.pad_multiple)
    precision = make_precision(amp, "cpu")

    def run() -> None:
        with precision.autocast():
            out = model(batch.feats, batch.mask)
        postprocess_batch(out, batch.metas, cfg.test_cfg)

    with torch.inference_mode():
        with Peak() as peak:
            run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return {"times": times, "peak_mb": peak.mb}


def task_train(length: int, repeats: int, batch_size: int = 2, fused_ln: bool = False,
               amp: str = "off", config: str = "thumos_i3d") -> dict[str, Any]:
    """Training steps through ``engine.train_step`` (zero_grad, forward, target assignment, losses,
    backward, grad clipping, AdamW step, scheduler step, EMA update); ``amp`` as ``--amp``."""
    cfg = thumos_config(config=config)
    model = model_for(cfg, fused_ln=fused_ln).train()
    optimizer = build_optimizer(model, cfg.opt)
    parts = TrainParts(model, optimizer, build_scheduler(optimizer, cfg.opt, 100), ModelEma(model, 0.999),
                       LossNormalizer(float(cfg.train_cfg.init_loss_norm)), make_precision(amp, "cpu"))
    batches = [collate_train([sample(s * batch_size + j, length, with_gt=True) for j in range(batch_size)],
                             cfg.dataset.max_seq_len) for s in range(repeats + 1)]
    device = torch.device("cpu")
    with Peak() as peak:  # first step: optimizer state allocated
        train_step(parts, [batches[0]], cfg, device)
    times = []
    for batch in batches[1:]:
        start = time.perf_counter()
        train_step(parts, [batch], cfg, device)
        times.append(time.perf_counter() - start)
    return {"times": times, "peak_mb": peak.mb}


def task_nms(videos: int, repeats: int) -> dict[str, Any]:
    """Decoding + multiclass soft-NMS + conversion to seconds per video, on seeded head outputs."""
    cfg = thumos_config()
    lengths = [2304 >> lv for lv in range(len(cases.STRIDES))]
    model = model_for(cfg)
    points = make_points(lengths, model.strides, model.regression_range)
    meta = sample(0, 1800, with_gt=False)
    times: list[float] = []
    for v in range(videos):
        logits, offsets, masks = (list(map(torch.from_numpy, x)) for x in cases.head_outputs(v))
        per_video = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            postprocess_video(logits, offsets, masks, points, meta, cfg.test_cfg)
            per_video.append(time.perf_counter() - start)
        times.extend(per_video[1:])
    return {"times": times}


def task_eval(repeats: int, size: str = "thumos") -> dict[str, Any]:
    """``evaluate_detections`` on 213 videos x 200 predictions, or ActivityNet-sized (``size="anet"``: 4,926
    videos x 100 float64 predictions, 10 thresholds); ground truth from the parsed json."""
    anet = size == "anet"
    gt, results = cases.anet_eval_case() if anet else cases.eval_case()
    preds = cases.flat_predictions(results, float64=anet)
    split, thr = ("validation", cases.ANET_TIOU) if anet else ("test", np.linspace(0.3, 0.7, 5))
    times, avg_map = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        avg_map = evaluate_detections(gt, preds, split=split, tiou_thresholds=thr).average_mAP
        times.append(time.perf_counter() - start)
    return {"times": times, "average_mAP": float(avg_map)}


def task_flops(lengths: list[int]) -> dict[str, Any]:
    """Model FLOPs per video (``FlopCounterMode``; convolutions/matmuls) and the sgemm peak."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = thumos_config()
    model = model_for(cfg).eval()
    flops = {}
    with torch.inference_mode():
        for length in lengths:
            batch = collate_eval([sample(0, length, with_gt=False)], cfg.dataset.max_seq_len, model.pad_multiple)
            counter = FlopCounterMode(display=False)
            with counter:
                model(batch.feats, batch.mask)
            flops[str(length)] = counter.get_total_flops()
    return {"flops": flops, "matmul_gflops": matmul_peak_gflops(),
            "matmul_bf16_gflops": matmul_peak_gflops(dtype="bfloat16")}


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "infer": task_infer, "train": task_train, "nms": task_nms, "eval": task_eval, "flops": task_flops}


if __name__ == "__main__":
    run_worker(TASKS)
