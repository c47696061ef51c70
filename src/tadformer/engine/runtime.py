"""Device selection, seeding and (optional) distributed-process helpers.

``seed_everything`` mirrors the official ``fix_random_seed`` (SPEC §5.8): it seeds torch, NumPy and
Python ``random``, optionally switches on deterministic algorithms, and returns the **default**
CPU generator, so that (as officially) data shuffling draws from the same global stream as the model
initialisation. The distributed helpers fall back to a single process when ``torch.distributed`` is
not initialised; they never read environment variables.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "get_rank", "get_world_size", "is_main_process", "resolve_device", "seed_everything", "synchronize",
]

_EXPECTED = "expected 'auto', 'cpu', 'cuda' or 'cuda:<index>'"


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:i"`` into a checked ``torch.device``.

    Args:
        spec: ``"auto"`` picks ``cuda`` when available, otherwise ``cpu``.

    Returns:
        The device.

    Raises:
        ValueError: unknown device string, or CUDA requested but unavailable / index out of range.
    """
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec.strip().lower() if isinstance(spec, str) else spec)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"invalid device {spec!r}: {_EXPECTED}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r} requested but CUDA is not available (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}); use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {spec!r} requested but only {count} CUDA device(s) exist (0..{count - 1})"
            )
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {spec!r}: {_EXPECTED}")
    return device


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed torch (CPU and CUDA), NumPy and Python ``random``, like the official ``fix_random_seed``.

    Args:
        seed: the seed (official default 1234567891).
        deterministic: also set cuDNN deterministic/no-benchmark, ``CUBLAS_WORKSPACE_CONFIG`` and
            ``torch.use_deterministic_algorithms(True, warn_only=True)`` (process-wide).

    Returns:
        ``torch.default_generator`` (the global CPU generator, now seeded). Pass it to the training
        DataLoader to reproduce the official shuffling stream.
    """
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    torch.manual_seed(seed)  # also seeds every CUDA device
    np.random.seed(seed % 2**32)
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.backends.cudnn.enabled = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.default_generator


def _dist_ready() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Rank of this process (0 when torch.distributed is not initialised)."""
    return dist.get_rank() if _dist_ready() else 0


def get_world_size() -> int:
    """Number of processes (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if _dist_ready() else 1


def is_main_process() -> bool:
    """True on rank 0 (always True in a single process)."""
    return get_rank() == 0


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work on ``device`` (for timing); a no-op for any other device."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
