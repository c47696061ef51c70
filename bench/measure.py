"""Measurement helpers shared by both workers (standard library + torch only)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

RESULT_PREFIX = "RESULT "


def current_rss_mb() -> float:
    """Resident set size of this process now (MiB), from ``/proc/self/statm``."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def max_rss_mb() -> float:
    """High-water mark of the resident set size of this process (MiB; ``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Peak:
    """Peak memory of a block: RSS high-water mark after it minus the RSS before it (MiB).

    Meant for the first (largest) operation of a fresh subprocess, so the high-water mark is set by
    the block and not by earlier work.
    """

    def __init__(self) -> None:
        self.mb = 0.0
        self._base = 0.0

    def __enter__(self) -> Peak:
        self._base = current_rss_mb()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.mb = max(0.0, max_rss_mb() - self._base)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5, dtype: str = "float32") -> float:
    """Best achieved GEMM rate (GFLOP/s) of ``size x size`` matrices of ``dtype`` on this process's threads."""
    import torch

    a, b = (torch.randn(size, size).to(getattr(torch, dtype)) for _ in range(2))
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def emit(result: dict[str, Any]) -> None:
    """Print the worker's result as one JSON line the driver picks up."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(tasks: Mapping[str, Callable[..., dict[str, Any]]]) -> None:
    """Worker entry point shared by both sides: ``worker.py TASK [JSON_KWARGS]`` -> one result line."""
    import torch  # only workers need it; the driver imports this module too

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    task, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    emit(tasks[task](**args))
