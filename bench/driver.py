"""Side-by-side driver: every measurement runs in a fresh subprocess, ours and official alternately.

Round r runs (ours, official) when r is even and (official, ours) when odd, so slow drifts of a shared
machine hit both sides alike. Figures are medians over all repeats of all rounds; ratios are ours /
official.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import RESULT_PREFIX

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_VENV = ROOT / "bench" / ".venv-official"
RESULTS = ROOT / "bench" / "results"
OFFICIAL_PKG = "actionformer==1.5.0"
OFFICIAL_DEPS = ["torch==2.13.0", "numpy", "pyyaml", "pandas", "joblib", "h5py"]


def setup_official(python: str = "python3") -> Path:
    """Create ``bench/.venv-official`` with the official package (compiles its NMS at install)."""
    py = OFFICIAL_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([python, "-m", "venv", str(OFFICIAL_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *OFFICIAL_DEPS], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", OFFICIAL_PKG],
                   check=True)
    subprocess.run([str(py), "-c", "import actionformer, nms_1d_cpu; print('official', actionformer.__version__)"],
                   check=True)
    return py


def side_python(side: str) -> str:
    if side == "ours":
        return sys.executable
    py = OFFICIAL_VENV / "bin" / "python"
    if not py.exists():  # first run: create the official venv (python -m bench setup-official)
        print(f"{py} not found: installing {OFFICIAL_PKG} into {OFFICIAL_VENV}", flush=True)
        setup_official()
    return str(py)


def run_worker(side: str, task: str, args: dict[str, Any], threads: int, timeout: float = 1800) -> dict[str, Any]:
    """One measurement in a fresh subprocess of ``side``'s venv; returns its RESULT json."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    module = "bench.worker_ours" if side == "ours" else "bench.worker_official"
    proc = subprocess.run([side_python(side), "-m", module, task, json.dumps(args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX):]))
    raise RuntimeError(f"{side} {task} {args} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


@dataclass
class Comparison:
    """Ours vs official for one measurement."""

    name: str
    task: str
    args: dict[str, Any]
    ours_extra: dict[str, Any] = field(default_factory=dict)
    ours: list[dict[str, Any]] = field(default_factory=list)
    official: list[dict[str, Any]] = field(default_factory=list)

    def median(self, side: str, key: str = "times") -> float:
        runs = self.ours if side == "ours" else self.official
        if key == "times":
            return statistics.median(t for r in runs for t in r["times"])
        return statistics.median(float(r[key]) for r in runs)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "task": self.task, "args": self.args}
        for key in ("times", "peak_mb"):
            if key in self.ours[0] and key in self.official[0]:
                o, f = self.median("ours", key), self.median("official", key)
                out[key] = {"ours": o, "official": f, "ratio": o / f if f else float("nan")}
        for key in ("average_mAP",):
            if key in self.ours[0]:
                out[key] = {"ours": self.ours[0][key], "official": self.official[0][key]}
        return out


def compare(name: str, task: str, args: dict[str, Any], rounds: int, threads: int,
            ours_extra: dict[str, Any] | None = None) -> Comparison:
    comp = Comparison(name, task, args, dict(ours_extra or {}))
    for r in range(rounds):
        order = ("ours", "official") if r % 2 == 0 else ("official", "ours")
        for side in order:
            start = time.perf_counter()
            res = run_worker(side, task, {**args, **comp.ours_extra} if side == "ours" else args, threads)
            (comp.ours if side == "ours" else comp.official).append(res)
            print(f"  [{name}] round {r + 1}/{rounds} {side:8s} median "
                  f"{statistics.median(res['times']):.4f} s ({time.perf_counter() - start:.0f} s wall)", flush=True)
    return comp


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    vers = subprocess.run([side_python("official"), "-c",
                           "import torch, numpy, pandas, actionformer; print(torch.__version__, numpy.__version__, "
                           "pandas.__version__, actionformer.__version__)"], capture_output=True, text=True)
    info["official_env"] = vers.stdout.strip()
    import numpy
    import torch

    from tadformer.engine.runtime import cpu_has_fast_bf16

    info["ours_env"] = f"torch {torch.__version__}, numpy {numpy.__version__}"
    info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # e.g. AVX2, AVX512
    info["fast_bf16"] = cpu_has_fast_bf16()  # AVX-512 BF16 / AMX: what --amp bf16 needs
    return info


def save(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / time.strftime("run-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(results, indent=1))
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1))
    return path
