"""Multi-process training and evaluation under ``torchrun`` (DistributedDataParallel).

Distributed mode is switched on only by the environment that ``torchrun`` sets (``WORLD_SIZE > 1``
with ``RANK``/``LOCAL_RANK``); a plain ``tadformer train`` never touches ``torch.distributed``.
Each process drives one device: ``cuda:<LOCAL_RANK>`` with the NCCL backend when CUDA is used,
otherwise the CPU with the gloo backend.

Semantics (see ``docs/distributed.md``):

- ``loader.batch_size`` is per process; the global batch is ``batch_size * world_size`` (times
  ``loader.accum_steps`` per optimiser step). Every process builds the same shuffled list of global
  batches (``epoch_batches`` seeded by ``(seed, epoch)``) and takes its contiguous slice
  (:func:`rank_slice`), so the global batch equals the one-process batch of the same total size.
- The loss normaliser is fed the positives of the *global* batch (summed over processes), so the
  gradients equal those of one process with the whole batch (see ``engine.step.train_step``).
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from tadformer.engine.runtime import resolve_device

__all__ = [
    "LR_RULES", "DistEnv", "all_reduce_sum", "any_process", "barrier", "gather_to_main", "init_from_env",
    "lr_scale_factor", "map_sharded", "predict_raw_distributed", "rank_slice", "requested_world_size",
    "shard_indices", "shutdown", "wrap_model",
]

LR_RULES = ("none", "linear", "sqrt")
T = TypeVar("T")


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a distributed run.

    Attributes:
        rank: global rank (0 .. world_size-1); rank 0 writes every file.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process trains on.
        backend: ``'nccl'`` (CUDA) or ``'gloo'`` (CPU).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"distributed run: environment variable {name} is not set (launch with torchrun)")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"distributed run: environment variable {name}={raw!r} is not an integer") from None


def requested_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset: a plain single-process run)."""
    return _env_int("WORLD_SIZE", 1)


def _device_for(spec: str, local_rank: int) -> torch.device:
    """``auto``/``cuda`` -> ``cuda:<local_rank>`` (CUDA present), ``cpu`` -> cpu; explicit indices refused."""
    spec = spec.strip().lower()
    if spec in ("auto", "cuda"):
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            if local_rank >= count:
                raise ValueError(f"distributed run: LOCAL_RANK={local_rank} but this machine has {count} GPU(s); "
                                 f"use --nproc_per_node={count} or fewer")
            return torch.device("cuda", local_rank)
        if spec == "cuda":
            resolve_device("cuda")  # raises the clear "CUDA is not available" error
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    raise ValueError(f"distributed run: --device {spec!r} is not allowed (each process picks cuda:<LOCAL_RANK>); "
                     "use --device auto, cuda or cpu")


def init_from_env(device: str = "auto", timeout_min: float = 30.0) -> DistEnv | None:
    """Join the process group described by torchrun's environment; None for a single process.

    Args:
        device: ``auto``, ``cuda`` or ``cpu`` (the device *type*; the index comes from ``LOCAL_RANK``).
        timeout_min: collective timeout in minutes.

    Returns:
        The :class:`DistEnv`, or None when ``WORLD_SIZE`` is unset or 1 (nothing is initialised).

    Raises:
        ValueError: inconsistent ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` or an impossible device.
    """
    world = requested_world_size()
    if world <= 1:
        return None
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world:
        raise ValueError(f"distributed run: RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    dev = _device_for(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=timeout_min))
    return DistEnv(rank, world, local_rank, dev, backend)


def shutdown() -> None:
    """Leave the process group (no-op when none exists)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64); the values themselves alone."""
    if not _active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.tolist()]


def any_process(flag: bool) -> bool:
    """True if ``flag`` is True on any process (a collective: every process must call it)."""
    return all_reduce_sum([1.0 if flag else 0.0])[0] > 0


def barrier() -> None:
    """Wait for every process (no-op for a single process)."""
    if _active():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def gather_to_main(obj: T) -> list[T] | None:
    """Pickle ``obj`` from every process to rank 0: the list (rank order) on rank 0, None elsewhere.

    Every process must call it. A single process gets ``[obj]``.
    """
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out if dist.get_rank() == 0 else None


def rank_slice(global_batch: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Items ``rank*b : (rank+1)*b`` of a global batch of ``b*world_size`` items.

    Raises:
        ValueError: the global batch does not split evenly.
    """
    if len(global_batch) % world_size:
        raise ValueError(f"a global batch of {len(global_batch)} items does not split over {world_size} processes")
    per = len(global_batch) // world_size
    return list(global_batch[rank * per:(rank + 1) * per])


def shard_indices(num_items: int, rank: int, world_size: int) -> list[int]:
    """The items of a process for evaluation: ``rank, rank + world_size, ...`` (disjoint, covering)."""
    return list(range(rank, num_items, world_size))


def wrap_model(model: nn.Module, env: DistEnv) -> nn.Module:
    """Wrap ``model`` (already on ``env.device``) in DistributedDataParallel.

    DDP broadcasts rank 0's weights at construction and averages gradients in ``backward``.
    """
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def lr_scale_factor(rule: str, global_batch: int, base_batch: int) -> float:
    """Learning-rate multiplier for a ``global_batch`` when the recipe was tuned at ``base_batch``.

    ``none``: 1; ``linear``: ``global/base`` (Goyal et al. 2017); ``sqrt``: ``sqrt(global/base)``
    (the usual rule for Adam-type optimisers).

    Raises:
        ValueError: unknown rule or a non-positive batch size.
    """
    if rule not in LR_RULES:
        raise ValueError(f"unknown learning-rate scaling rule {rule!r}: expected one of {LR_RULES}")
    if global_batch < 1 or base_batch < 1:
        raise ValueError(f"batch sizes must be >= 1, got global {global_batch}, base {base_batch}")
    ratio = global_batch / base_batch
    return {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


def map_sharded(func: Callable[[int], T], num_items: int, env: DistEnv | None) -> list[T] | None:
    """Apply ``func`` to item indices sharded over processes; all results (index order) on rank 0.

    Returns:
        ``[func(0), ..., func(num_items-1)]`` on rank 0 (or in a single process), None elsewhere.
    """
    if env is None:
        return [func(i) for i in range(num_items)]
    mine = [(i, func(i)) for i in shard_indices(num_items, env.rank, env.world_size)]
    parts = gather_to_main(mine)
    if parts is None:
        return None
    merged = dict(pair for part in parts for pair in part)
    return [merged[i] for i in range(num_items)]


def predict_raw_distributed(model: Any, dataset: Any, cfg: Any, env: DistEnv | None,
                            class_names: Sequence[str], progress: bool = True, amp: str = "off") -> Any:
    """``evaluate.predict_raw`` with the videos sharded over processes and gathered to rank 0.

    ``amp`` as in ``evaluate.predict_raw`` (``'off'`` or an opt-in mixed-precision mode).

    Returns:
        The :class:`~tadformer.engine.evaluate.RawOutputs` of every video (dataset order) on rank 0
        or in a single process, None on the other ranks.
    """
    from tqdm import tqdm

    from tadformer.engine.evaluate import RawOutputs, forward_video
    from tadformer.engine.runtime import make_precision

    model.eval()
    device = env.device if env is not None else next(model.parameters()).device
    precision = make_precision(amp, device)
    shown = progress and (env is None or env.is_main)
    mine = len(shard_indices(len(dataset), env.rank, env.world_size)) if env is not None else len(dataset)
    bar = tqdm(total=mine, desc="eval", unit="video", disable=not shown, dynamic_ncols=True)

    def one(i: int) -> Any:
        out = forward_video(model, dataset[i], cfg.dataset.max_seq_len, cfg.model.max_div_factor, device, precision)
        bar.update(1)
        return out

    with bar:
        videos = map_sharded(one, len(dataset), env)
    if videos is None:
        return None
    ranges = tuple((float(a), float(b)) for a, b in cfg.model.regression_range)
    return RawOutputs(videos, tuple(cfg.model.fpn_strides), ranges, tuple(class_names), cfg.model_name)
