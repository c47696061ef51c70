"""Learning parity: train ours and the official code with the same reduced recipe and seeds, score both.

1. ``tadformer synth`` writes one THUMOS-shaped dataset (60 train / 30 test videos, input_dim 256,
   duration_scale 0.3) into ``bench/results/parity/data``.
2. For every seed: ``tadformer train`` + ``tadformer eval`` (EMA weights) in our venv, and
   :mod:`bench.official_train` (the package's own train/valid loop, EMA model) in the official venv,
   with the same config file, overrides and ``init_rand_seed``.
3. Both sets of detections are scored by our evaluator (identical to the official ``ANETdetection``)
   on the same held-out videos; the table (average mAP per seed, mean +- std) goes to
   ``bench/results/parity.json`` and stdout.
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.driver import RESULTS, ROOT, side_python

RECIPE = {
    "model.embd_dim": 128, "model.fpn_dim": 128, "model.head_dim": 128,
    "dataset.max_seq_len": 576, "opt.learning_rate": 1e-3, "opt.epochs": 8, "opt.warmup_epochs": 2,
    "loader.num_workers": 1,
}
# seed 1: every class occurs in the training split (the official THUMOS dataset class asserts that)
SYNTH_ARGS = ["--train-videos", "60", "--test-videos", "30", "--input-dim", "256", "--duration-scale", "0.3",
              "--seed", "1"]


def _env(threads: int) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def _run(cmd: list[str], threads: int) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(threads), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def make_data(folder: Path, threads: int) -> Path:
    config = folder / "config.yaml"
    if not config.exists():
        _run([sys.executable, "-m", "tadformer", "synth", "--out", str(folder), *SYNTH_ARGS], threads)
    return config


def ours(config: Path, seed: int, out: Path, threads: int) -> dict[str, Any]:
    """Our engine end to end; returns the flat detections of the EMA model on the test split."""
    sets = [a for k, v in RECIPE.items() for a in ("--set", f"{k}={v}")]
    start = time.perf_counter()
    _run([sys.executable, "-m", "tadformer", "train", str(config), "--out", str(out), "--seed", str(seed),
          "--no-progress", *sets], threads)
    _run([sys.executable, "-m", "tadformer", "eval", str(config), "--ckpt", str(out), "--out", str(out / "eval"),
          "--no-progress", *sets], threads)
    results = json.loads((out / "eval" / "predictions.json").read_text())
    return {"results": results, "seconds": time.perf_counter() - start}


def official(config: Path, seed: int, out: Path, threads: int) -> dict[str, Any]:
    """The official package's train/valid loop; returns its flat detections of the EMA model."""
    out.mkdir(parents=True, exist_ok=True)
    pkl = out / "official_results.pkl"
    stdout = _run([side_python("official"), "-m", "bench.official_train", str(config), str(seed), str(pkl),
                   json.dumps(RECIPE)], threads)
    seconds = json.loads(stdout.strip().splitlines()[-1].split(" ", 1)[1])["seconds"]
    with open(pkl, "rb") as fh:
        flat = pickle.load(fh)
    return {"flat": flat, "seconds": seconds}


def score(gt: dict[str, Any], preds: dict[str, Any]) -> float:
    from tadformer.metrics import evaluate_detections

    return float(evaluate_detections(gt, preds, split="test").average_mAP)


def main(seeds: list[int], threads: int) -> None:
    folder = RESULTS / "parity"
    config = make_data(folder / "data", threads)
    gt = json.loads((folder / "data" / "annotations" / "thumos14_synth.json").read_text())
    rows = []
    for seed in seeds:
        o = ours(config, seed, folder / f"ours_seed{seed}", threads)
        f = official(config, seed, folder / f"official_seed{seed}", threads)
        row = {"seed": seed, "ours": score(gt, o["results"]), "official": score(gt, f["flat"]),
               "ours_seconds": o["seconds"], "official_seconds": f["seconds"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary: dict[str, Any] = {"recipe": RECIPE, "synth": SYNTH_ARGS, "rows": rows}
    for side in ("ours", "official"):
        vals = [r[side] for r in rows]
        summary[side] = {"mean": statistics.mean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    (RESULTS / "parity.json").write_text(json.dumps(summary, indent=1))
    print("| seed | ours avg mAP | official avg mAP |\n|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {100 * r['ours']:.2f} | {100 * r['official']:.2f} |")
    print(f"| mean +- std | {100 * summary['ours']['mean']:.2f} +- {100 * summary['ours']['std']:.2f} | "
          f"{100 * summary['official']['mean']:.2f} +- {100 * summary['official']['std']:.2f} |")
