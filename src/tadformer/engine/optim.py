"""Optimiser parameter groups, optimiser construction and the per-iteration LR schedules.

Mirrors the official ``make_optimizer`` / ``make_scheduler`` (ActionFormer ``libs/utils/train_utils.py``)
and the official ``LinearWarmupCosineAnnealingLR`` / ``LinearWarmupMultiStepLR`` schedulers, whose
*recursive* (chainable) update rule is reproduced exactly (SPEC §5.3-5.4). Written from the spec.

Schedules are stepped once per **iteration**; all lengths below (``warmup_steps``, ``max_steps``,
``milestones``) are in iterations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR

__all__ = [
    "ETA_MIN",
    "WARMUP_START_LR",
    "ParamGroupError",
    "WarmupCosineSchedule",
    "WarmupMultiStepSchedule",
    "build_optimizer",
    "build_scheduler",
    "param_groups",
    "total_epochs",
]

ETA_MIN = 1e-8
"""Final LR of the official warmup + cosine schedule (hard-coded officially)."""
WARMUP_START_LR = 0.0
"""LR at iteration 0 of the official warmup (hard-coded officially)."""

# Module classes (matched by class name anywhere in the MRO, so the model package is not imported here)
_DECAY_WEIGHT_OWNERS = (nn.Linear, nn.Conv1d)
_NORM_CLASS_NAMES = frozenset({"ChannelLayerNorm", "LayerNorm", "GroupNorm"})
_SCALE_OWNER_NAMES = frozenset({"Scale", "AffineDropPath"})


class ParamGroupError(ValueError):
    """A parameter cannot be assigned to exactly one optimiser group."""


def _class_names(module: nn.Module) -> set[str]:
    return {cls.__name__ for cls in type(module).__mro__}


def _decays(module: nn.Module, param_name: str, full_name: str) -> bool:
    """Official rule for one parameter owned directly by ``module``: True = decay, False = no decay."""
    if param_name == "weight" and isinstance(module, _DECAY_WEIGHT_OWNERS):
        return True
    if param_name == "bias":
        return False
    if param_name == "weight" and (
        _class_names(module) & _NORM_CLASS_NAMES or isinstance(module, (nn.LayerNorm, nn.GroupNorm))
    ):
        return False
    if param_name == "scale" and _class_names(module) & _SCALE_OWNER_NAMES:
        return False
    if param_name == "rel_pe":
        return False
    raise ParamGroupError(
        f"parameter {full_name!r} (owned by {type(module).__name__}) matches no optimiser-group rule: "
        "decay = weight of nn.Linear/nn.Conv1d; no decay = bias, norm weight, scale of "
        "Scale/AffineDropPath, rel_pe"
    )


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the model's parameters into the official decay / no-decay groups.

    Group 0 ("decay", ``weight_decay``): the ``weight`` of every ``nn.Linear`` and ``nn.Conv1d``
    (including the convs wrapped inside masked convs). Group 1 ("no_decay", 0.0): every ``bias``,
    norm weights, the ``scale`` of ``Scale`` / ``AffineDropPath`` and ``rel_pe``. Each group lists
    its parameters in sorted full-name order (the order of the official optimiser state).

    Args:
        model: the model (not wrapped in DataParallel/DDP).
        weight_decay: decoupled weight decay of group 0.

    Returns:
        Two param-group dicts with keys ``params``, ``param_names`` (torch's native key) and
        ``weight_decay``.

    Raises:
        ParamGroupError: a parameter matches no rule, or is not covered exactly once.
    """
    decay: dict[str, nn.Parameter] = {}
    no_decay: dict[str, nn.Parameter] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) in seen:  # shared parameter: classified under its first name
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            target = decay if _decays(module, param_name, full_name) else no_decay
            target[full_name] = param
    all_names = {name for name, _ in model.named_parameters()}
    covered = decay.keys() | no_decay.keys()
    if covered != all_names:
        missing = sorted(all_names - covered)
        extra = sorted(covered - all_names)
        raise ParamGroupError(
            f"optimiser groups do not cover the parameters: missing {missing}, extra {extra}"
        )
    groups: list[dict[str, Any]] = []
    for members, wd in ((decay, float(weight_decay)), (no_decay, 0.0)):
        names = sorted(members)
        groups.append({"params": [members[n] for n in names], "param_names": names, "weight_decay": wd})
    return groups


def build_optimizer(model: nn.Module, opt_cfg: Any) -> Optimizer:
    """Build the official optimiser over :func:`param_groups`.

    Args:
        model: the model.
        opt_cfg: object with ``type`` ("AdamW" or "SGD"), ``learning_rate``, ``weight_decay`` and
            ``momentum`` (SGD only).

    Returns:
        ``AdamW(groups, lr)`` with default betas (0.9, 0.999) and eps 1e-8, or
        ``SGD(groups, lr, momentum)``.
    """
    groups = param_groups(model, opt_cfg.weight_decay)
    kind = str(opt_cfg.type)
    if kind.lower() == "adamw":
        return torch.optim.AdamW(groups, lr=opt_cfg.learning_rate)
    if kind.lower() == "sgd":
        return torch.optim.SGD(groups, lr=opt_cfg.learning_rate, momentum=opt_cfg.momentum)
    raise ValueError(f"opt.type must be 'AdamW' or 'SGD', got {kind!r}")


def total_epochs(opt_cfg: Any) -> int:
    """Number of training epochs: ``early_stop_epochs`` if set, else ``epochs + warmup_epochs``.

    As officially, ``warmup_epochs`` is added even when ``warmup`` is False.
    """
    early_stop = getattr(opt_cfg, "early_stop_epochs", None)
    if early_stop is not None:
        return int(early_stop)
    return int(opt_cfg.epochs) + int(opt_cfg.warmup_epochs)


class _WarmupSchedule(LRScheduler):
    """Shared official linear warmup: k=0 -> 0; 0<k<W -> lr += base/(W-1) (recursive); k=W -> base."""

    # official state-dict key -> ours (for resuming official scheduler states)
    _OFFICIAL_KEYS = {"warmup_epochs": "warmup_steps", "max_epochs": "max_steps"}

    def __init__(self, optimizer: Optimizer, warmup_steps: int, last_epoch: int = -1) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = int(warmup_steps)
        self.warmup_start_lr = WARMUP_START_LR
        super().__init__(optimizer, last_epoch)

    def _warmup_lrs(self) -> list[float] | None:
        """LRs for k <= W, or None when k > W (the subclass decides)."""
        k, w = self.last_epoch, self.warmup_steps
        if k == 0:
            return [self.warmup_start_lr for _ in self.base_lrs]
        if k < w:
            return [
                float(group["lr"]) + (float(base) - self.warmup_start_lr) / (w - 1)
                for base, group in zip(self.base_lrs, self.optimizer.param_groups)
            ]
        if k == w:
            return [float(base) for base in self.base_lrs]
        return None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load our own or an official scheduler state (official names are translated)."""
        renamed = {self._OFFICIAL_KEYS.get(key, key): value for key, value in state_dict.items()}
        super().load_state_dict(renamed)


class WarmupCosineSchedule(_WarmupSchedule):
    """Official ``LinearWarmupCosineAnnealingLR`` (recursive form), stepped every iteration.

    LR at iteration k (after k ``step()`` calls): k=0 -> 0; 0<k<W -> k*base/(W-1); k=W -> base;
    k>W -> eta + (base-eta)/2 * (1 + cos(pi*(k-W)/(M-W))), computed recursively, eta = 1e-8.

    Args:
        optimizer: the optimiser; each group's initial ``lr`` is its base LR.
        warmup_steps: W, warmup length in iterations.
        max_steps: M, total iterations (warmup included); must exceed W.
        eta_min: final LR.
        last_epoch: -1 for a fresh schedule (torch convention).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        max_steps: int,
        eta_min: float = ETA_MIN,
        last_epoch: int = -1,
    ) -> None:
        if max_steps <= warmup_steps:
            raise ValueError(f"max_steps ({max_steps}) must exceed warmup_steps ({warmup_steps})")
        self.max_steps = int(max_steps)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, warmup_steps, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Next LRs from the current ones (official chainable form)."""
        warm = self._warmup_lrs()
        if warm is not None:
            return warm
        k, w, m, eta = self.last_epoch, self.warmup_steps, self.max_steps, self.eta_min
        groups = self.optimizer.param_groups
        if (k - 1 - m) % (2 * (m - w)) == 0:  # official restart branch; only reachable past max_steps
            return [
                float(g["lr"]) + (float(base) - eta) * (1 - math.cos(math.pi / (m - w))) / 2
                for base, g in zip(self.base_lrs, groups)
            ]
        ratio = (1 + math.cos(math.pi * (k - w) / (m - w))) / (1 + math.cos(math.pi * (k - w - 1) / (m - w)))
        return [ratio * (float(g["lr"]) - eta) + eta for g in groups]


class WarmupMultiStepSchedule(_WarmupSchedule):
    """Official ``LinearWarmupMultiStepLR``: the same warmup, then LR *= gamma at each milestone.

    Milestones count iterations **after** the warmup: the LR is multiplied by ``gamma`` at
    iteration ``W + milestone``.

    Args:
        optimizer: the optimiser.
        warmup_steps: W, warmup length in iterations.
        milestones: iterations after warmup at which the LR decays (repeats multiply again).
        gamma: decay factor.
        last_epoch: -1 for a fresh schedule.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer, warmup_steps, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Next LRs from the current ones (official chainable form)."""
        warm = self._warmup_lrs()
        if warm is not None:
            return warm
        hits = self.milestones.count(self.last_epoch - self.warmup_steps)
        lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        return [lr * self.gamma**hits for lr in lrs] if hits else lrs


def build_scheduler(optimizer: Optimizer, opt_cfg: Any, iters_per_epoch: int) -> LRScheduler:
    """Build the official per-iteration schedule (``make_scheduler``).

    Args:
        optimizer: the optimiser (its group LRs are the base LRs).
        opt_cfg: object with ``warmup``, ``warmup_epochs``, ``epochs``, ``schedule_type``
            ("cosine" or "multistep"), ``schedule_steps`` (epochs), ``schedule_gamma`` and optionally
            ``eta_min`` (final LR of the warmup + cosine schedule, default 1e-8).
        iters_per_epoch: optimiser steps per epoch (``len(train_loader)``).

    Returns:
        With warmup: :class:`WarmupCosineSchedule` (W = warmup_epochs*N, M = (epochs+warmup_epochs)*N)
        or :class:`WarmupMultiStepSchedule`. Without warmup: torch ``CosineAnnealingLR(T_max =
        epochs*N)`` or ``MultiStepLR`` (the official non-warmup multistep branch crashes; ours works).
    """
    if iters_per_epoch <= 0:
        raise ValueError(f"iters_per_epoch must be positive, got {iters_per_epoch}")
    kind = str(opt_cfg.schedule_type).lower()
    if kind not in ("cosine", "multistep"):
        raise ValueError(f"opt.schedule_type must be 'cosine' or 'multistep', got {opt_cfg.schedule_type!r}")
    steps = [int(s) * iters_per_epoch for s in opt_cfg.schedule_steps]
    gamma = float(opt_cfg.schedule_gamma)
    if opt_cfg.warmup:
        warmup_steps = int(opt_cfg.warmup_epochs) * iters_per_epoch
        max_steps = (int(opt_cfg.epochs) + int(opt_cfg.warmup_epochs)) * iters_per_epoch
        if kind == "cosine":  # eta_min: TriDet's config key (1e-8, hard-coded in ActionFormer and TemporalMaxer)
            return WarmupCosineSchedule(optimizer, warmup_steps, max_steps,
                                        eta_min=float(getattr(opt_cfg, "eta_min", ETA_MIN)))
        return WarmupMultiStepSchedule(optimizer, warmup_steps, steps, gamma=gamma)
    if kind == "cosine":
        return CosineAnnealingLR(optimizer, T_max=int(opt_cfg.epochs) * iters_per_epoch)
    return MultiStepLR(optimizer, milestones=steps, gamma=gamma)
