"""One official optimiser step (port of the body of the official ``train_one_epoch`` loop).

zero_grad -> forward -> label assignment -> losses -> backward -> clip (global L2) -> optimizer.step
-> scheduler.step -> EMA update. ``engine.train`` drives it over a whole run; tests and benchmarks
call it directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from tadformer.config import ExperimentConfig
from tadformer.data.types import Batch
from tadformer.engine import distributed as D
from tadformer.engine.ema import ModelEma
from tadformer.engine.runtime import Precision, get_world_size
from tadformer.losses import LossNormalizer, check_finite, compute_losses
from tadformer.model.actionformer import ActionFormer
from tadformer.model.outputs import HeadOutputs

__all__ = ["NonFiniteLoss", "TrainParts", "batch_losses", "train_step"]


class NonFiniteLoss(RuntimeError):
    """A loss term of a batch is NaN/Inf (raised before any weight changed)."""


@dataclass
class TrainParts:
    """Everything one optimiser step touches."""

    model: torch.nn.Module  # the ActionFormer, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: ModelEma
    normalizer: LossNormalizer
    precision: Precision = field(default_factory=Precision)


def batch_losses(model: torch.nn.Module, batch: Batch, cfg: ExperimentConfig,
                 normalizer: LossNormalizer, precision: Precision | None = None) -> dict[str, torch.Tensor]:
    """Forward one padded batch (under autocast if ``precision`` says so), assign targets, and
    compute the official losses (always in float32).

    The architecture's own training rules come from the model (``assign``, ``loss_options``), so this is
    the same for ActionFormer, TriDet and TemporalMaxer.
    """
    with (precision or Precision()).autocast():
        outputs = model(batch.feats, batch.mask)
    bad = _nonfinite_output(outputs)
    if bad is not None:  # e.g. extreme feature values: report it like a non-finite loss (caught per step)
        nan = torch.tensor(float("nan"), device=batch.feats.device)
        return {"cls_loss": nan, "reg_loss": nan, "final_loss": nan, "num_pos": torch.zeros((), dtype=torch.int64),
                "num_pos_weighted": torch.zeros((), dtype=torch.float64),
                "nonfinite_output": torch.tensor(True), "where": torch.tensor(bad)}
    tr = cfg.train_cfg
    core = cast(ActionFormer, getattr(model, "module", model))  # DDP wrapper -> the detector
    targets = core.assign(outputs, batch.segments_grid, batch.labels, cfg.dataset.num_classes, tr)
    return compute_losses(outputs, targets.cls_targets, targets.reg_targets, normalizer, cfg.dataset.num_classes,
                          label_smoothing=tr.label_smoothing, loss_weight=tr.loss_weight, weights=targets.weights,
                          **core.loss_options)


def _nonfinite_output(outputs: HeadOutputs) -> int | None:
    """Index of the first pyramid level whose logits/offsets are NaN/Inf at a valid step, else None."""
    for level, (logits, offsets, mask) in enumerate(zip(outputs.cls_logits, outputs.offsets, outputs.masks)):
        valid = mask.unsqueeze(-1)
        valid_off = mask.reshape(*mask.shape, *([1] * (offsets.dim() - 2)))  # offsets [B, T, 2] or [B, T, NC, 2]
        finite_off = torch.isfinite(offsets).logical_or(~valid_off).all()
        if not (torch.isfinite(logits).logical_or(~valid).all() and finite_off):
            return level
    return None


class _Provisional(LossNormalizer):
    """A fixed divisor for the micro-batches of a step; the real normaliser is updated once per step."""

    def update(self, num_pos: float) -> float:
        return self.value


_STATS = ("cls_loss", "reg_loss", "final_loss", "num_pos", "num_pos_weighted")


def train_step(parts: TrainParts, batches: Sequence[Batch], cfg: ExperimentConfig,
               device: torch.device) -> dict[str, float]:
    """One official iteration: zero_grad, forward+backward of ``batches``, clip, optimizer step,
    scheduler step, EMA update.

    With one batch in one process this is exactly the official step. With ``K = len(batches)``
    accumulated batches and/or ``W`` processes (DDP), the step equals one step on the whole global
    batch: each micro-batch's summed loss is divided by the current normaliser ``n0`` (times ``W``,
    since DDP averages gradients), the normaliser is then updated once with the positives of the
    global batch (``n1``), and the gradients are rescaled by ``n0 / n1``.

    Returns:
        Losses of the global batch, its ``num_pos``, the ``lr`` used, the ``grad_norm`` before
        clipping and the loss normaliser.

    Raises:
        NonFiniteLoss: a loss is NaN/Inf (on any process); the weights, optimiser and EMA are untouched.
    """
    parts.optimizer.zero_grad(set_to_none=True)
    world = get_world_size()
    provisional = _Provisional(parts.normalizer.value) if len(batches) > 1 or world > 1 else None
    sums = [0.0] * len(_STATS)
    for j, batch in enumerate(batches):
        batch = batch.to(device, non_blocking=True)
        no_sync = getattr(parts.model, "no_sync", None)  # DDP: all-reduce gradients on the last backward only
        with no_sync() if no_sync is not None and j < len(batches) - 1 else contextlib.nullcontext():
            losses = batch_losses(parts.model, batch, cfg, provisional or parts.normalizer, parts.precision)
            bad = check_finite(losses)
            stats = D.all_reduce_sum([float(losses[k].item()) for k in _STATS] + [float(bad is not None)])
            if stats[-1] > 0:
                parts.optimizer.zero_grad(set_to_none=True)
                ids = [m.video_id for m in batch.metas]
                if "nonfinite_output" in losses:
                    where = (f"non-finite network output (pyramid level {int(losses['where'])}, before the losses) "
                             f"on videos {ids}")
                elif bad is not None:
                    where = f"non-finite {bad} ({losses[bad].item()}) on videos {ids}"
                else:
                    where = "non-finite loss on another process"
                raise NonFiniteLoss(where)
            loss = losses["final_loss"] * world if provisional is not None else losses["final_loss"]
            scaler = parts.precision.scaler
            (scaler.scale(loss) if scaler is not None else loss).backward()
        sums = [a + b for a, b in zip(sums, stats)]
    params = [p for p in parts.model.parameters() if p.grad is not None]
    if parts.precision.scaler is not None:
        parts.precision.scaler.unscale_(parts.optimizer)
    if provisional is not None:
        factor = provisional.value / parts.normalizer.update(sums[4])  # the count the loss normaliser uses
        for p in params:
            p.grad.mul_(factor)  # type: ignore[union-attr]
        sums[:3] = [v * factor for v in sums[:3]]
    grad_norm = _clip(params, float(cfg.train_cfg.clip_grad_l2norm))
    totals = dict(zip(_STATS, sums))
    totals["lr"] = float(parts.optimizer.param_groups[0]["lr"])
    if parts.precision.scaler is not None:
        parts.precision.scaler.step(parts.optimizer)  # skipped when the gradients overflowed
        parts.precision.scaler.update()
    else:
        parts.optimizer.step()
    parts.scheduler.step()
    parts.ema.update(parts.model)
    totals["grad_norm"] = grad_norm
    totals["loss_normalizer"] = parts.normalizer.value
    return totals


def _clip(params: list[torch.nn.Parameter], clip: float) -> float:
    """Global L2 gradient norm before clipping (clipped in place to ``clip`` when ``clip > 0``)."""
    if clip > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params
                                                       if p.grad is not None])))
