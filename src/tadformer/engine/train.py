"""The training engine: ``fit(cfg, run_dir)`` (port of the official ``train.py``/``train_one_epoch``).

Per iteration, in the official order: zero_grad -> forward -> label assignment -> losses ->
backward -> clip (global L2) -> optimizer.step -> scheduler.step -> EMA update.

Differences from the official loop, all about robustness (none changes the per-step math):
- Randomness is explicit. The shuffle of epoch ``e`` and the crop of item ``i`` in epoch ``e`` come
  from generators seeded by ``(seed, e)`` and ``(seed, e, i)``, so a resumed run (even one stopped
  mid-epoch) sees exactly the batches an uninterrupted run sees.
- The loss normaliser and RNG states are checkpointed, so ``--resume`` continues exactly.
- Checkpoints are written atomically; ``last.pth.tar`` is refreshed every epoch and on SIGINT/SIGTERM.
- A non-finite loss stops training with a diagnostic (or, opt-in, the step is skipped).

Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DistributedDataParallel, each process
takes its slice of every global batch, and only rank 0 writes files (``engine.distributed``). With
``loader.accum_steps = K`` or several processes, the loss normaliser is updated once per optimiser
step with the positives of the whole (global, accumulated) batch, so a step equals one step on the
whole batch in one process. Mixed precision (``FitOptions.amp``) is off by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from tadformer.config import ExperimentConfig, config_to_dict, dump_config, with_empty_classes
from tadformer.data.types import Batch
from tadformer.engine import distributed as D
from tadformer.engine.batch_order import (
    BATCH_ORDER_FILE,
    read_batch_order,
    resolve_batch_order,
    write_batch_order,
)
from tadformer.engine.batches import (
    Key,
    SeededItems,
    Window,
    batch_keys,
    build_train_dataset,
    empty_class_ids,
    epoch_batches,
    seed_of,
    train_loader,
    usable_cpus,
    usable_workers,
)
from tadformer.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model_weights,
    restore_rng_state,
    save_checkpoint,
)
from tadformer.engine.ema import ModelEma
from tadformer.engine.optim import build_optimizer, build_scheduler, total_epochs
from tadformer.engine.resume import LAST_CKPT, find_resume_checkpoint, remove_stale_temp_files
from tadformer.engine.runtime import (
    StopFlag,
    configure_cuda,
    make_precision,
    resolve_device,
    seed_everything,
)
from tadformer.engine.step import NonFiniteLoss, TrainParts, train_step
from tadformer.losses import LossNormalizer
from tadformer.model import ActionFormer, build_model
from tadformer.results_io import atomic_write_text


class TrainingDiverged(RuntimeError):
    """A loss became NaN/Inf; the message names the step, the loss term and the videos."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a resumable checkpoint was saved (its path is ``.checkpoint``)."""

    def __init__(self, message: str, checkpoint: Path) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclass
class FitOptions:
    """Knobs of :func:`fit` that are about the run, not the recipe (so not in the config)."""

    device: str = "auto"
    resume: bool = False
    ckpt_freq: int = 5  # also save epoch_XXX.pth.tar every this many epochs (and at the end)
    progress: bool = True
    skip_nonfinite: bool = False  # skip a step whose loss is NaN/Inf instead of stopping
    max_steps: int | None = None  # stop after this many optimiser steps (tests; saves last.pth.tar)
    log_every: int = 1  # write a train_log.jsonl record every this many optimiser steps
    amp: str = "off"  # mixed precision: 'off' (float32, official numerics), 'bf16' (CUDA/CPU), 'fp16' (CUDA)
    tf32: bool = False  # allow TF32 matmuls on Ampere+ GPUs
    scale_lr: str = "none"  # opt.learning_rate rule for the global batch: 'none', 'linear' or 'sqrt'
    batch_order: str | Path | None = None  # replay this batch-order file (engine.batch_order)


@dataclass
class _Progress:
    epoch: int = 0  # epoch in progress (0-based)
    iter_in_epoch: int = 0  # batches of this epoch already consumed
    global_step: int = 0  # optimiser steps done
    skipped_steps: list[int] = field(default_factory=list)


class Trainer:
    """Holds the model, optimiser, scheduler, EMA and loss normaliser of one run (one process of it)."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, opts: FitOptions, env: D.DistEnv | None = None) -> None:
        self.cfg, self.run_dir, self.opts, self.env = cfg, run_dir, opts, env
        self.rank, self.world = (env.rank, env.world_size) if env is not None else (0, 1)
        self.is_main = self.rank == 0
        self.device = env.device if env is not None else resolve_device(opts.device)
        if self.device.type == "cuda":
            configure_cuda(opts.tf32)
        self.ckpt_dir = run_dir / "checkpoints"
        empty = empty_class_ids(cfg)
        if empty and tuple(cfg.train_cfg.head_empty_cls) != empty:  # as the official train.py does
            cfg = self.cfg = with_empty_classes(cfg, empty)
        seed_everything(cfg.init_rand_seed)
        self.dataset, self.class_names = build_train_dataset(cfg, self.world)
        # the model is built right after seeding, so its init equals the official one for this seed
        self.model: ActionFormer = build_model(cfg).to(self.device)
        if self.world > 1:  # distinct drop-path draws per process (rank 0 is not special)
            torch.manual_seed(seed_of(cfg.init_rand_seed, self.rank, 0xD15))
        net = D.wrap_model(self.model, env) if env is not None else self.model
        self.optimizer = build_optimizer(self.model, cfg.opt)
        self.accum = max(1, int(cfg.loader.accum_steps))
        self.batches_per_epoch = len(self.dataset) // (cfg.loader.batch_size * self.world)
        self.steps_per_epoch = self.batches_per_epoch // self.accum
        if self.steps_per_epoch < 1:
            raise ValueError(f"loader.accum_steps={self.accum} exceeds the {self.batches_per_epoch} batches per epoch")
        self.scheduler = build_scheduler(self.optimizer, cfg.opt, self.steps_per_epoch)
        self.ema = ModelEma(self.model, decay=float(cfg.opt.ema_decay))
        self.normalizer = LossNormalizer(float(cfg.train_cfg.init_loss_norm))
        self.precision = make_precision(opts.amp, self.device)
        self.parts = TrainParts(net, self.optimizer, self.scheduler, self.ema, self.normalizer, self.precision)
        self.max_epochs = total_epochs(cfg.opt)
        self.state = _Progress()
        self.step_batch_size = cfg.loader.batch_size * self.world * self.accum  # videos per optimiser step
        self.replay, self.replay_windows = self._read_replay(opts.batch_order)
        self.order_prior: list[tuple[list[str], list[Window]]] = []  # steps before a resume (rank 0)
        self.order_new: list[list[list[tuple[str, Window]]]] = []  # this process's items per step, per micro-batch
        self.num_workers = usable_workers(cfg.loader.num_workers)  # config.yaml keeps the configured value
        if self.num_workers < cfg.loader.num_workers:
            self.log(f"loader.num_workers={cfg.loader.num_workers} lowered to {self.num_workers}: this process "
                     f"may run on {usable_cpus()} CPU(s)")

    def _read_replay(self, path: str | Path | None) -> tuple[list[list[int]] | None, Any]:
        """Dataset indices (and crop windows, if recorded) of every step of a ``--batch-order`` file."""
        if path is None:
            return None, None
        order = read_batch_order(path)
        needed = self.max_epochs * self.steps_per_epoch
        if self.opts.max_steps is not None:
            needed = min(needed, self.opts.max_steps)
        ids = [rec.video_id for rec in self.dataset.records]
        steps = resolve_batch_order(order, ids, self.step_batch_size, needed, str(path))
        if len(order) > needed:
            self.log(f"--batch-order: {path} has {len(order)} steps; this run uses the first {needed}")
        return steps, order.crop_windows

    def log(self, message: str) -> None:
        """Print a progress message (rank 0 only)."""
        if self.is_main:
            tqdm.write(f"[tadformer] {message}")

    # ---------------------------------------------------------------- checkpoints
    def save(self, path: Path) -> Path:
        """Write a resumable checkpoint atomically (rank 0 writes; every process must call this)."""
        rng_states = D.gather_to_main(capture_rng_state())  # every process's RNGs, for exact resume
        order_parts = D.gather_to_main(self.order_new)
        if self.is_main:
            assert rng_states is not None and order_parts is not None
            self._write_batch_order(order_parts)  # before the checkpoint: never shorter than it
            scaler = self.precision.scaler
            save_checkpoint(
                path, model=self.model, ema=self.ema, optimizer=self.optimizer, scheduler=self.scheduler,
                epoch=self.state.epoch, loss_normalizer_state=self.normalizer.state_dict(),
                rng_state=rng_states[0], config_dict=config_to_dict(self.cfg), class_names=self.class_names,
                extra={"iter_in_epoch": self.state.iter_in_epoch, "global_step": self.state.global_step,
                       "max_epochs": self.max_epochs, "skipped_steps": list(self.state.skipped_steps),
                       "world_size": self.world, "rng_states_by_rank": rng_states if self.world > 1 else None,
                       "grad_scaler": scaler.state_dict() if scaler is not None else None},
            )
        D.barrier()
        return path

    def _write_batch_order(self, parts: list[list[list[list[tuple[str, Window]]]]]) -> None:
        """Merge every process's items (rank slices of each micro-batch) into global steps and write them."""
        steps = [list(ids) for ids, _ in self.order_prior]
        windows = [list(w) for _, w in self.order_prior]
        for k in range(len(parts[0])):
            items = [item for j in range(len(parts[0][k])) for rank_part in parts for item in rank_part[k][j]]
            steps.append([vid for vid, _ in items])
            windows.append([w for _, w in items])
        write_batch_order(self.run_dir / BATCH_ORDER_FILE, steps, windows, self.step_batch_size,
                          self.steps_per_epoch)

    def _load_prior_order(self) -> None:
        """On resume: the recorded steps before the checkpoint (rank 0)."""
        path = self.run_dir / BATCH_ORDER_FILE
        step = self.state.global_step
        prior = read_batch_order(path) if path.is_file() else None
        if prior is None or len(prior) < step or prior.crop_windows is None:
            raise ValueError(f"--resume: {path} does not record the {step} steps before the checkpoint; it is written "
                             "with every checkpoint, so restore it or start a new run")
        self.order_prior = [(list(ids), list(w)) for ids, w in zip(prior.steps[:step], prior.crop_windows[:step])]

    def restore(self, path: Path) -> None:
        """Continue from a checkpoint written by :meth:`save` (with the same number of processes)."""
        ckpt = load_checkpoint(path, map_location=self.device)
        load_model_weights(self.model, {"state_dict": ckpt["state_dict"]}, prefer_ema=False, source=path.name)
        if ckpt.get("state_dict_ema") is None or ckpt.get("optimizer") is None or ckpt.get("scheduler") is None:
            raise ValueError(f"{path} is not a resumable tadformer checkpoint (no EMA/optimizer/scheduler state)")
        extra = ckpt.get("extra") or {}
        if int(extra.get("world_size", 1)) != self.world:
            raise ValueError(f"{path} was written by a run with {extra.get('world_size', 1)} process(es); resume it "
                             f"with the same number (this run has {self.world}), or start a new run")
        self.ema.load_state_dict(ckpt["state_dict_ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("loss_normalizer"):
            self.normalizer.load_state_dict(ckpt["loss_normalizer"])
        if self.precision.scaler is not None and extra.get("grad_scaler"):
            self.precision.scaler.load_state_dict(extra["grad_scaler"])
        self.state = _Progress(int(ckpt["epoch"]), int(extra.get("iter_in_epoch", 0)),
                               int(extra.get("global_step", 0)), list(extra.get("skipped_steps", [])))
        by_rank = extra.get("rng_states_by_rank")
        rng = by_rank[self.rank] if by_rank else ckpt.get("rng_state")
        if rng:
            restore_rng_state(rng)
        if self.is_main:
            self._load_prior_order()

    # ---------------------------------------------------------------- one step
    def step(self, batches: Sequence[Batch]) -> dict[str, float] | None:
        """One optimiser step over the accumulated ``batches``; None if it was skipped."""
        try:
            return train_step(self.parts, batches, self.cfg, self.device)
        except NonFiniteLoss as exc:
            msg = f"{exc} at epoch {self.state.epoch}, step {self.state.global_step}"
            if not self.opts.skip_nonfinite:
                saved = sorted(self.ckpt_dir.glob("*.pth.tar")) if self.ckpt_dir.is_dir() else []
                where = (f"the last good checkpoint is in {self.ckpt_dir}" if saved
                         else "no checkpoint was written yet")
                raise TrainingDiverged(msg + f"; {where}. Lower "
                                       "opt.learning_rate, check the features for extreme values, or pass "
                                       "--skip-nonfinite to skip such steps") from None
            self.log(f"skipping step: {msg}")
            self.state.skipped_steps.append(self.state.global_step)
            return None

    # ---------------------------------------------------------------- epochs
    def epoch_keys(self, epoch: int) -> list[list[Key]]:
        """This process's micro-batches of ``epoch`` (its slice of each global batch; all of it alone): the
        seeded shuffle, or the steps of the ``--batch-order`` being replayed (with their crop windows)."""
        micro = self.cfg.loader.batch_size * self.world
        if self.replay is None:
            batches = epoch_batches(len(self.dataset), micro, self.cfg.init_rand_seed, epoch)
            mine = [D.rank_slice(b, self.rank, self.world) for b in batches[: self.steps_per_epoch * self.accum]]
            return batch_keys(mine, epoch)
        indices: list[list[int]] = []
        windows: list[list[Window | None]] = []
        for k in range(epoch * self.steps_per_epoch, min((epoch + 1) * self.steps_per_epoch, len(self.replay))):
            step_windows = self.replay_windows[k] if self.replay_windows is not None else [None] * self.step_batch_size
            for j in range(self.accum):
                part = slice(j * micro, (j + 1) * micro)
                indices.append(D.rank_slice(self.replay[k][part], self.rank, self.world))
                windows.append(D.rank_slice(list(step_windows[part]), self.rank, self.world))
        return batch_keys(indices, epoch, windows)

    def run(self, stop: StopFlag) -> None:
        items = SeededItems(self.dataset, self.cfg.init_rand_seed)
        total_steps = self.max_epochs * self.steps_per_epoch
        bar = tqdm(total=total_steps, initial=self.state.global_step, disable=not (self.opts.progress and self.is_main),
                   desc="train", unit="step", dynamic_ncols=True)
        log_file = (self.run_dir / "train_log.jsonl").open("a", encoding="utf-8") if self.is_main else None
        with bar, log_file or contextlib.nullcontext():
            while self.state.epoch < self.max_epochs:
                stopping = self._run_epoch(items, stop, bar, log_file)
                if stopping:
                    if log_file is not None:
                        log_file.flush()
                        os.fsync(log_file.fileno())
                    path = self.save(self.ckpt_dir / LAST_CKPT)
                    if stop.signum is not None or not self._hit_max_steps():
                        raise TrainingInterrupted(
                            f"stopped by signal {stop.signum or 'on another process'} at epoch {self.state.epoch}, "
                            f"step {self.state.global_step}; resume with --resume", path)
                    return
                self.state.epoch += 1
                self.state.iter_in_epoch = 0
                self.save(self.ckpt_dir / LAST_CKPT)
                if self.state.epoch % self.opts.ckpt_freq == 0 or self.state.epoch == self.max_epochs:
                    self.save(self.ckpt_dir / f"epoch_{self.state.epoch:03d}.pth.tar")
                self.log(f"epoch {self.state.epoch}/{self.max_epochs} done, "
                         f"lr={self.optimizer.param_groups[0]['lr']:.3e}")

    def _run_epoch(self, items: SeededItems, stop: StopFlag, bar: tqdm, log: Any) -> bool:
        """Train the rest of the current epoch; True if stopped early (signal or ``max_steps``)."""
        self.parts.model.train()
        keys = self.epoch_keys(self.state.epoch)[self.state.iter_in_epoch:]
        pending: list[Batch] = []
        for batch in train_loader(items, keys, self.cfg, self.device, self.num_workers):
            pending.append(batch)
            self.state.iter_in_epoch += 1
            if len(pending) < self.accum:
                continue
            t0 = time.perf_counter()
            self.order_new.append([[(m.video_id, _window(m.crop_window, m.length)) for m in b.metas] for b in pending])
            stats = self.step(pending)
            pending = []
            self.state.global_step += 1
            bar.update(1)
            if stats is not None:
                bar.set_postfix(loss=f"{stats['final_loss']:.4f}", lr=f"{stats['lr']:.2e}")
                if log is not None and self.state.global_step % self.opts.log_every == 0:
                    record = {"epoch": self.state.epoch, "step": self.state.global_step,
                              "time_sec": round(time.perf_counter() - t0, 4), **stats}
                    log.write(json.dumps(record) + "\n")
                    log.flush()
            # every process must agree to stop at the same step (torchrun signals them all, not at once)
            if D.any_process(stop.signum is not None) or self._hit_max_steps():
                return True
        return False

    def _hit_max_steps(self) -> bool:
        return self.opts.max_steps is not None and self.state.global_step >= self.opts.max_steps


def _window(crop_window: tuple[int, int] | None, length: int) -> Window:
    return (int(crop_window[0]), int(crop_window[1])) if crop_window is not None else (0, length)


def _trim_log(log_path: Path, global_step: int) -> None:
    """Drop log records past the resume point (they will be produced again), atomically."""
    if not log_path.exists():
        return
    kept = [ln for ln in log_path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and json.loads(ln).get("step", 0) <= global_step]
    atomic_write_text(log_path, "".join(ln + "\n" for ln in kept))


def scaled_config(cfg: ExperimentConfig, opts: FitOptions, world_size: int) -> tuple[ExperimentConfig, dict[str, Any]]:
    """Apply the ``opts.scale_lr`` rule for the global batch; return the config and a setup summary.

    The recipe's ``opt.learning_rate`` is taken as tuned for ``loader.batch_size`` in one process
    without accumulation; the global batch is ``batch_size * world_size * accum_steps``.
    """
    accum = max(1, int(cfg.loader.accum_steps))
    global_batch = cfg.loader.batch_size * world_size * accum
    factor = D.lr_scale_factor(opts.scale_lr, global_batch, cfg.loader.batch_size)
    lr = float(cfg.opt.learning_rate) * factor
    setup = {"world_size": world_size, "batch_size_per_process": cfg.loader.batch_size, "accum_steps": accum,
             "global_batch_size": global_batch, "lr_rule": opts.scale_lr, "lr_factor": factor,
             "recipe_learning_rate": float(cfg.opt.learning_rate), "learning_rate": lr, "amp": opts.amp}
    if factor != 1.0:
        cfg = replace(cfg, opt=replace(cfg.opt, learning_rate=lr))
    return cfg, setup


def fit(cfg: ExperimentConfig, run_dir: str | Path, opts: FitOptions | None = None) -> Path:
    """Train ``cfg`` into ``run_dir``; return the path of the final checkpoint.

    ``run_dir`` receives ``config.yaml`` (the resolved config, with the learning rate actually used),
    ``train_setup.json`` (processes, batch sizes, learning-rate rule, precision), ``train_log.jsonl``
    (one JSON record per optimiser step: epoch, step, losses, lr, grad_norm, ...) and ``checkpoints/``
    (``last.pth.tar`` every epoch, ``epoch_XXX.pth.tar`` every ``ckpt_freq`` epochs and at the end).
    Launched by torchrun (``WORLD_SIZE > 1``), it trains with DDP and only rank 0 writes.

    Raises:
        TrainingDiverged: a loss became non-finite (unless ``skip_nonfinite``).
        TrainingInterrupted: SIGINT/SIGTERM; ``last.pth.tar`` holds the resumable state.
    """
    opts = opts or FitOptions()
    run_dir = Path(run_dir)
    owns_group = not D.dist.is_initialized()
    env = D.init_from_env(opts.device)
    try:
        return _fit(cfg, run_dir, opts, env)
    finally:
        if env is not None and owns_group:
            D.shutdown()


def _fit(cfg: ExperimentConfig, run_dir: Path, opts: FitOptions, env: D.DistEnv | None) -> Path:
    cfg, setup = scaled_config(cfg, opts, env.world_size if env is not None else 1)
    is_main = env is None or env.is_main
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, run_dir, opts, env)
    last = trainer.ckpt_dir / LAST_CKPT
    if is_main:
        stale = remove_stale_temp_files(trainer.ckpt_dir)
        if stale:
            trainer.log(f"removed {len(stale)} temporary file(s) of interrupted checkpoint saves in {trainer.ckpt_dir}")
    start = find_resume_checkpoint(trainer.ckpt_dir) if opts.resume else None
    if start is not None:
        if start != last:
            trainer.log(f"--resume: no {LAST_CKPT}; continuing from {start.name}")
        trainer.restore(start)  # a damaged or foreign checkpoint raises: progress is never discarded
        if is_main:
            _trim_log(run_dir / "train_log.jsonl", trainer.state.global_step)
    else:
        if opts.resume:
            trainer.log(f"--resume: no complete checkpoint in {trainer.ckpt_dir}; starting from scratch")
        if is_main:
            (run_dir / "train_log.jsonl").unlink(missing_ok=True)
    cfg = trainer.cfg  # with the dataset's empty classes, if any
    if is_main:
        dump_config(cfg, run_dir / "config.yaml")
        atomic_write_text(run_dir / "class_names.json", json.dumps(list(trainer.class_names)))
        setup.update(device=str(trainer.device), backend=env.backend if env is not None else None)
        atomic_write_text(run_dir / "train_setup.json", json.dumps(setup, indent=2))
    with StopFlag() as stop:
        trainer.run(stop)
    if trainer.state.epoch >= trainer.max_epochs:
        return trainer.ckpt_dir / f"epoch_{trainer.max_epochs:03d}.pth.tar"
    return last
