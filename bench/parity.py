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
    "dataset.max_seq_len": 576, "opt.learning_rate": 1e-3, "opt.epochs": 14, "opt.warmup_epochs": 2,
    # ~480 optimiser steps: an EMA decay of 0.999 would still weigh the random init by 0.999^480 = 62%
    "opt.ema_decay": 0.99,
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


def ours(config: Path, seed: int, out: Path, threads: int, amp: str = "off") -> dict[str, Any]:
    """Our engine end to end; returns the flat detections of the EMA model on the test split.

    ``amp`` is passed to both ``tadformer train`` and ``tadformer eval`` (``bf16``: the opt-in fast path).
    """
    sets = [a for k, v in RECIPE.items() for a in ("--set", f"{k}={v}")]
    start = time.perf_counter()
    _run([sys.executable, "-m", "tadformer", "train", str(config), "--out", str(out), "--seed", str(seed),
          "--no-progress", "--amp", amp, *sets], threads)
    seconds = time.perf_counter() - start
    preds = {}
    for weights, flag in (("ema", []), ("regular", ["--no-ema"])):
        _run([sys.executable, "-m", "tadformer", "eval", str(config), "--ckpt", str(out), "--out",
              str(out / f"eval_{weights}"), "--no-progress", "--amp", amp, *flag, *sets], threads)
        preds[weights] = json.loads((out / f"eval_{weights}" / "predictions.json").read_text())
    return {**preds, "seconds": seconds}


def official(config: Path, seed: int, out: Path, threads: int) -> dict[str, Any]:
    """The official package's train/valid loop; returns its flat detections of the EMA and regular models."""
    out.mkdir(parents=True, exist_ok=True)
    pkl = out / "official_results.pkl"
    stdout = _run([side_python("official"), "-m", "bench.official_train", str(config), str(seed), str(pkl),
                   json.dumps(RECIPE)], threads)
    seconds = json.loads(stdout.strip().splitlines()[-1].split(" ", 1)[1])["seconds"]
    preds: dict[str, Any] = {"seconds": seconds}
    for weights, path in (("ema", pkl), ("regular", pkl.with_name("official_results_regular.pkl"))):
        with open(path, "rb") as fh:
            preds[weights] = pickle.load(fh)
    return preds


def score(gt: dict[str, Any], preds: dict[str, Any]) -> float:
    from tadformer.metrics import evaluate_detections

    return float(evaluate_detections(gt, preds, split="test").average_mAP)


SIDES = ("ours", "official", "ours-bf16")


def run_side(side: str, config: Path, seed: int, folder: Path, threads: int) -> dict[str, Any]:
    """Train + test one side for one seed; returns ``{"ema": preds, "regular": preds, "seconds": s}``."""
    out = folder / f"{side}_seed{seed}"
    if side == "official":
        return official(config, seed, out, threads)
    return ours(config, seed, out, threads, amp="bf16" if side == "ours-bf16" else "off")


def main(seeds: list[int], threads: int, sides: tuple[str, ...] = ("ours", "official")) -> None:
    """Every (seed, side) pair not already in ``bench/results/parity.json`` is run, scored and saved."""
    folder = RESULTS / "parity"
    config = make_data(folder / "data", threads)
    gt = json.loads((folder / "data" / "annotations" / "thumos14_synth.json").read_text())
    table = RESULTS / "parity.json"
    summary: dict[str, Any] = json.loads(table.read_text()) if table.exists() else {}
    if summary.get("recipe") != RECIPE or summary.get("synth") != SYNTH_ARGS:
        summary = {"recipe": RECIPE, "synth": SYNTH_ARGS, "scores": {}}
    scores: dict[str, dict[str, Any]] = summary["scores"]
    for seed in seeds:
        for side in sides:
            if str(seed) in scores.get(side, {}):
                continue
            res = run_side(side, config, seed, folder, threads)
            cell = {"avg_mAP": score(gt, res["ema"]), "avg_mAP_regular": score(gt, res["regular"]),
                    "seconds": res["seconds"]}
            scores.setdefault(side, {})[str(seed)] = cell
            print(json.dumps({"seed": seed, "side": side, **cell}), flush=True)
            table.write_text(json.dumps(summary, indent=1))
    print(markdown(summary, seeds, sides))


def markdown(summary: dict[str, Any], seeds: list[int], sides: tuple[str, ...]) -> str:
    """The learning-parity table: average mAP (%) per seed and side (EMA, then regular weights),
    then mean +- sample std and the mean training time."""
    scores = summary["scores"]
    cols = [(s, k) for k in ("avg_mAP", "avg_mAP_regular") for s in sides]
    names = {"avg_mAP": "EMA", "avg_mAP_regular": "regular"}
    lines = ["| seed | " + " | ".join(f"{s} {names[k]}" for s, k in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for seed in seeds:
        lines.append(f"| {seed} | " + " | ".join(f"{100 * scores[s][str(seed)][k]:.2f}" for s, k in cols) + " |")
    cells = []
    for side, key in cols:
        vals = [100 * scores[side][str(seed)][key] for seed in seeds]
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        cells.append(f"{statistics.mean(vals):.2f} +- {std:.2f}")
    lines.append("| mean +- std | " + " | ".join(cells) + " |")
    secs = [statistics.mean(scores[s][str(seed)]["seconds"] for seed in seeds) for s in sides]
    lines.append("\nMean training seconds: " + ", ".join(f"{s} {x:.0f}" for s, x in zip(sides, secs, strict=True)))
    pairs = [(a, b) for a, b in (("ours", "official"), ("ours-bf16", "ours")) if a in sides and b in sides]
    if pairs and len(seeds) > 1:
        lines += ["", "| paired by seed | weights | n | mean difference | sd of differences | standard error "
                  "| 95% CI | t |", "|---|---|---|---|---|---|---|---|"]
        for a, b in pairs:
            for key in ("avg_mAP", "avg_mAP_regular"):
                st = paired(scores, seeds, a, b, key)
                lines.append(f"| {a} - {b} | {names[key]} | {st['n']} | {st['mean']:+.2f} | {st['sd']:.2f} | "
                             f"{st['se']:.2f} | [{st['ci_low']:+.2f}, {st['ci_high']:+.2f}] | {st['t']:+.2f} |")
    return "\n".join(lines)


# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (standard tables)
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def paired(scores: dict[str, Any], seeds: list[int], a: str, b: str, key: str) -> dict[str, float]:
    """Paired comparison of side ``a`` minus side ``b`` over ``seeds`` (points of average mAP): mean,
    sample sd of the differences, its standard error, the 95% t interval and the t statistic."""
    diffs = [100 * (scores[a][str(s)][key] - scores[b][str(s)][key]) for s in seeds]
    n = len(diffs)
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    se = sd / n**0.5
    half = T_975[min(n - 1, len(T_975)) - 1] * se
    return {"n": n, "mean": mean, "sd": sd, "se": se, "ci_low": mean - half, "ci_high": mean + half,
            "t": mean / se if se > 0 else float("inf")}
