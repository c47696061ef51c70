"""Shared loaders for the TriDet / TemporalMaxer golden files (``tests/golden/variants``, README there).

Each case (``tridet``, ``tridet_icv01``, ``temporalmaxer``) is run once per test session: the three training
steps (with the step-1 gradients, per-module gradient norms of each loss alone, and the step-1 targets) and
the eval forwards with the step-3 weights.
"""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tadformer.config import ExperimentConfig, config_from_dict
from tadformer.data.collate import collate_eval, collate_train
from tadformer.data.types import Batch, VideoSample
from tadformer.engine.ema import ModelEma
from tadformer.engine.optim import build_optimizer, build_scheduler
from tadformer.engine.step import TrainParts, batch_losses, train_step
from tadformer.losses import LossNormalizer
from tadformer.model import HeadOutputs, build_model, forced_droppath_masks

VARIANTS = Path(__file__).resolve().parent / "golden" / "variants"
CASES = ("tridet", "tridet_icv01", "temporalmaxer")


@functools.cache
def npz(name: str) -> dict[str, np.ndarray]:
    """A golden npz, fully read (``name`` without extension, e.g. ``tridet_train_step``)."""
    with np.load(VARIANTS / f"{name}.npz") as f:
        return {k: np.array(f[k]) for k in f.files}


def raw_config(case: str) -> dict[str, Any]:
    return json.loads((VARIANTS / f"{case}_tiny_config.json").read_text())


def config(case: str) -> ExperimentConfig:
    return config_from_dict(raw_config(case))


def prefixed(d: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """Entries of ``d`` under ``prefix/``, prefix removed, as tensors (in stored order)."""
    return {k[len(prefix) + 1:]: torch.from_numpy(v) for k, v in d.items() if k.startswith(prefix + "/")}


def model_with(case: str, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = build_model(config(case))
    model.load_state_dict(weights, strict=True)
    return model


def initial_model(case: str) -> torch.nn.Module:
    return model_with(case, {k: torch.from_numpy(v) for k, v in npz(f"{case}_weights").items()})


def trained_model(case: str) -> torch.nn.Module:
    return model_with(case, prefixed(npz(f"{case}_train_step"), "weights_after_step3")).eval()


def train_batch(step: int) -> Batch:
    inp = npz("inputs")
    samples = [VideoSample(
        video_id=f"step{step}_video{j}", feats=torch.from_numpy(inp[f"train/step{step}/video{j}/feats"]),
        segments_grid=torch.from_numpy(inp[f"train/step{step}/video{j}/segments"]),
        labels=torch.from_numpy(inp[f"train/step{step}/video{j}/labels"]), fps=30.0, duration_sec=100.0,
        feat_stride=4, feat_num_frames=16) for j in range(2)]
    return collate_train(samples, 576)


def eval_batch(case: str, video: int) -> Batch:
    inp = npz("inputs")
    sample = VideoSample(
        video_id=f"fwd_video{video}", feats=torch.from_numpy(inp[f"forward/video{video}/feats"]),
        segments_grid=torch.zeros(0, 2), labels=torch.zeros(0, dtype=torch.int64),
        fps=float(inp[f"forward/video{video}/fps"]), duration_sec=float(inp[f"forward/video{video}/duration"]),
        feat_stride=4, feat_num_frames=16)
    cfg = config(case)
    return collate_eval([sample], cfg.dataset.max_seq_len, cfg.model.max_div_factor)


def droppath_context(case: str, model: torch.nn.Module, step: int) -> Any:
    key = f"step{step}/droppath_keep_mask"
    steps = npz(f"{case}_train_step")
    if key not in steps:
        return contextlib.nullcontext()
    return forced_droppath_masks(model, torch.from_numpy(steps[key]))


def _module_grad_norms(model: torch.nn.Module, groups: list[str]) -> list[float]:
    out = []
    for g in groups:
        sq = sum(float((p.grad.double() ** 2).sum()) for n, p in model.named_parameters()
                 if n.split(".")[0] == g and p.grad is not None)
        out.append(sq ** 0.5)
    return out


@functools.cache
def three_steps(case: str) -> dict[str, Any]:
    """The golden recipe: three optimiser steps from the initial weights through ``engine.step``."""
    torch.set_num_threads(1)
    cfg = config(case)
    model = initial_model(case).train()
    steps = npz(f"{case}_train_step")
    if "input_noise_used" in steps:  # the golden steps ran without TriDet's input noise (to stay deterministic)
        model.input_noise = float(steps["input_noise_used"])
    optimizer = build_optimizer(model, cfg.opt)
    scheduler = build_scheduler(optimizer, cfg.opt, iters_per_epoch=3)
    parts = TrainParts(model, optimizer, scheduler, ModelEma(model, 0.999),
                       LossNormalizer(float(cfg.train_cfg.init_loss_norm)))
    groups = [str(g) for g in npz(f"{case}_train_step")["diag/module_groups"]]
    records, grads1, diag, step1 = [], {}, {}, {}
    for s in (1, 2, 3):
        batch = train_batch(s)
        if s == 1:  # probes on the step-1 forward (the same draws), each from a fresh normaliser
            for what in ("final_loss", "cls_loss", "reg_loss"):
                model.zero_grad(set_to_none=True)
                with droppath_context(case, model, 1):
                    outputs = model(batch.feats, batch.mask)
                    core_targets = model.assign(outputs, batch.segments_grid, batch.labels,
                                                cfg.dataset.num_classes, cfg.train_cfg)
                    losses = batch_losses_from(model, outputs, core_targets, cfg)
                losses[what].backward()
                if what == "final_loss":
                    grads1 = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
                    step1 = {"outputs": _detached(outputs), "targets": core_targets, "losses": losses}
                else:
                    diag[what] = _module_grad_norms(model, groups)
            model.zero_grad(set_to_none=True)
        with droppath_context(case, model, s):
            records.append(train_step(parts, [batch], cfg, torch.device("cpu")))
    return {"records": records, "grads1": grads1, "diag": diag, "step1": step1, "groups": groups,
            "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "ema": {k: v.detach().clone() for k, v in parts.ema.state_dict().items()},
            "optimizer": optimizer, "cfg": cfg}


def batch_losses_from(model: torch.nn.Module, outputs: HeadOutputs, targets: Any,
                      cfg: ExperimentConfig) -> dict[str, torch.Tensor]:
    """The loss of ``engine.step.batch_losses`` from an already computed forward and targets."""
    from tadformer.losses import compute_losses

    tr = cfg.train_cfg
    return compute_losses(outputs, targets.cls_targets, targets.reg_targets,
                          LossNormalizer(float(tr.init_loss_norm)), cfg.dataset.num_classes,
                          label_smoothing=tr.label_smoothing, loss_weight=tr.loss_weight, weights=targets.weights,
                          **model.loss_options)


def _detached(outputs: HeadOutputs) -> HeadOutputs:
    return HeadOutputs([x.detach() for x in outputs.cls_logits], [x.detach() for x in outputs.offsets],
                       outputs.masks, outputs.points,
                       {k: [x.detach() for x in v] for k, v in outputs.extras.items()})


@functools.cache
def eval_forward(case: str, video: int) -> tuple[Batch, HeadOutputs, list[torch.Tensor]]:
    """Eval forward of a golden video with the step-3 weights; also the neck features."""
    torch.set_num_threads(1)
    model = trained_model(case)
    batch = eval_batch(case, video)
    with torch.no_grad():
        out = model(batch.feats, batch.mask)
        fpn, _ = model.forward_features(batch.feats, batch.mask)
    return batch, out, fpn


__all__ = ["CASES", "VARIANTS", "batch_losses", "batch_losses_from", "config", "droppath_context", "eval_batch",
           "eval_forward", "initial_model", "model_with", "npz", "prefixed", "raw_config", "three_steps",
           "train_batch", "trained_model"]
