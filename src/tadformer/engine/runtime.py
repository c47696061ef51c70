"""Device selection, seeding and (optional) distributed-process helpers.

``seed_everything`` mirrors the official ``fix_random_seed`` (SPEC §5.8): it seeds torch, NumPy and
Python ``random``, optionally switches on deterministic algorithms, and returns the **default**
CPU generator, so that (as officially) data shuffling draws from the same global stream as the model
initialisation. The distributed helpers fall back to a single process when ``torch.distributed`` is
not initialised; they never read environment variables (``engine.distributed`` does, for torchrun).

Mixed precision (:class:`Precision`) is opt-in: ``off`` (default, float32, the official numerics),
``bf16`` (autocast of the network's forward to bfloat16 on CUDA or CPU; losses stay float32; no
loss scaling needed) or ``fp16`` (CUDA only: float16 autocast plus a dynamic ``GradScaler``).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "AMP_MODES", "Precision", "StopFlag", "configure_cuda", "cpu_has_fast_bf16", "get_rank", "get_world_size",
    "is_main_process", "make_precision", "resolve_device", "seed_everything", "synchronize",
]

AMP_MODES = ("off", "bf16", "fp16")

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


def configure_cuda(tf32: bool = False) -> None:
    """Opt in to (or out of) TF32 matmuls/convolutions on Ampere+ GPUs (off by default: parity).

    TF32 keeps float32 storage but rounds matmul inputs to a 10-bit mantissa: about 3x faster
    on A100-class GPUs, relative error ~1e-3 per product. It has no effect on the CPU.
    """
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = bool(tf32)


@dataclass
class Precision:
    """The numeric mode of training: autocast of the forward pass and, for fp16, a grad scaler.

    Attributes:
        mode: ``'off'``, ``'bf16'`` or ``'fp16'``.
        device_type: ``'cpu'`` or ``'cuda'`` (the autocast device type).
        scaler: the dynamic loss scaler (``fp16`` only, else None).
    """

    mode: str = "off"
    device_type: str = "cpu"
    scaler: torch.amp.GradScaler | None = None

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None when mixed precision is off."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast context for the network's forward (a no-op when ``mode == 'off'``)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            yield


def make_precision(mode: str, device: torch.device | str) -> Precision:
    """Check ``mode`` against ``device`` and build the :class:`Precision`.

    Raises:
        ValueError: unknown mode; ``fp16`` without CUDA; ``bf16`` on a GPU without bfloat16 support.
    """
    device = torch.device(device)
    mode = str(mode).strip().lower()
    if mode not in AMP_MODES:
        raise ValueError(f"unknown mixed-precision mode {mode!r}: expected one of {AMP_MODES}")
    if mode == "fp16" and device.type != "cuda":
        raise ValueError(f"--amp fp16 needs a CUDA device (got {device}); on the CPU use --amp bf16 or off")
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"--amp bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; use --amp fp16")
    if mode == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        warnings.warn("--amp bf16: this CPU has no AVX-512 BF16/AMX instructions, so bfloat16 runs emulated "
                      "and is usually slower than float32 here; use --amp off", RuntimeWarning, stacklevel=2)
    scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
    return Precision(mode, device.type, scaler)


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


class StopFlag:
    """Context manager turning SIGINT/SIGTERM into a flag (``signum``) checked between iterations.

    A second signal raises ``KeyboardInterrupt`` at once. Outside the main thread it does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # second signal: give up at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
