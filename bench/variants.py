"""ActionFormer, TriDet and TemporalMaxer side by side (``python -m bench variants``).

1. Accuracy: on the learning-parity dataset (``bench/parity.py``: THUMOS-shaped synthetic, 60 train /
   30 test videos, input_dim 256), each architecture trains with its own THUMOS recipe scaled the
   same way, for every seed, and its EMA model is scored on the test videos at the end of the
   schedule (no early stopping, for any of them). The scaling: embedding/FPN/head width 512 -> 128
   (TriDet's SGP MLP 768 -> 192), the learning rate x10 (small model, few steps), EMA decay 0.99,
   ``max_seq_len`` 576, and 16 epochs in all with each recipe's own share of warm-up epochs
   (ActionFormer 5 of 35 -> 2 + 14, TriDet 20 of 40 -> 8 + 8, TemporalMaxer 5 of 65 -> 1 + 15).
   Weight decay, losses, assigners, NMS settings and everything else stay each recipe's own.
2. Cost, full-size THUMOS models (input 2048, width 512): the time of a training step (B = 2, T = 2304)
   and of one-video inference (T = 2304: network, decoding, NMS), each in a fresh subprocess, the
   architectures alternating, and the parameter count.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.driver import RESULTS, ROOT, run_worker
from bench.parity import _run, make_data, score

ARCHS = {
    "ActionFormer": ("thumos_i3d", {"opt.epochs": 14, "opt.warmup_epochs": 2}),
    "TriDet": ("thumos_i3d_tridet", {"opt.epochs": 8, "opt.warmup_epochs": 8, "model.sgp_mlp_dim": 192}),
    "TemporalMaxer": ("thumos_i3d_temporalmaxer", {"opt.epochs": 15, "opt.warmup_epochs": 1}),
}
SHARED = {"model.embd_dim": 128, "model.fpn_dim": 128, "model.head_dim": 128, "dataset.max_seq_len": 576,
          "opt.ema_decay": 0.99, "loader.num_workers": 1}
BASE_LR = 1e-4  # every recipe's THUMOS learning rate


def overrides(arch: str, data_config: Path) -> list[str]:
    """``--set`` arguments: the data of the parity dataset + the scaled recipe of ``arch``."""
    from tadformer.config import load_config

    data = load_config(data_config).dataset
    values: dict[str, Any] = {
        "dataset.json_file": data.json_file, "dataset.feat_folder": data.feat_folder,
        "dataset.input_dim": data.input_dim, "dataset.num_classes": data.num_classes,
        "opt.learning_rate": 10 * BASE_LR, **SHARED, **ARCHS[arch][1],
    }
    return [a for k, v in values.items() for a in ("--set", f"{k}={v}")]


def config_path(arch: str) -> str:
    from tadformer.config import packaged_config

    return str(packaged_config(ARCHS[arch][0]))


def train_and_score(arch: str, seed: int, data_config: Path, gt: dict[str, Any], folder: Path,
                    threads: int) -> dict[str, Any]:
    out = folder / f"{arch}_seed{seed}"
    sets = overrides(arch, data_config)
    start = time.perf_counter()
    _run([sys.executable, "-m", "tadformer", "train", config_path(arch), "--out", str(out), "--seed", str(seed),
          "--no-progress", *sets], threads)
    seconds = time.perf_counter() - start
    _run([sys.executable, "-m", "tadformer", "eval", config_path(arch), "--ckpt", str(out), "--out",
          str(out / "eval_ema"), "--no-progress", *sets], threads)
    preds = json.loads((out / "eval_ema" / "predictions.json").read_text())
    return {"avg_mAP": score(gt, preds), "train_seconds": seconds}


def params(arch: str) -> int:
    code = ("import torch; from tadformer.config import load_config, packaged_config; "
            "from tadformer.model import build_model; "
            f"m = build_model(load_config(packaged_config({ARCHS[arch][0]!r}))); "
            "print(sum(p.numel() for p in m.parameters()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def costs(threads: int, rounds: int) -> dict[str, Any]:
    """Median train-step and inference times per architecture, alternating, fresh subprocesses."""
    times: dict[str, dict[str, list[float]]] = {a: {"train": [], "infer": []} for a in ARCHS}
    for _ in range(rounds):
        for arch, (config, _) in ARCHS.items():
            res = run_worker("ours", "train", {"length": 2304, "repeats": 2, "config": config}, threads)
            times[arch]["train"].append(statistics.median(res["times"]))
            res = run_worker("ours", "infer", {"length": 2304, "repeats": 2, "config": config}, threads)
            times[arch]["infer"].append(statistics.median(res["times"]))
    return {a: {"train_step_sec": statistics.median(t["train"]), "infer_sec": statistics.median(t["infer"]),
                "params": params(a)} for a, t in times.items()}


def markdown(res: dict[str, Any]) -> str:
    seeds = res["seeds"]
    lines = [f"Command: `{res['command']}`  ", f"Machine: {res['machine']}", "",
             "| architecture | " + " | ".join(f"seed {s}" for s in seeds) + " | mean +- std avg mAP | "
             "train step (B=2, T=2304) | inference (T=2304) | vs ActionFormer | parameters |",
             "|---" * (len(seeds) + 6) + "|"]
    base = res["costs"]["ActionFormer"]
    for arch in ARCHS:
        vals = [100 * res["scores"][arch][str(s)]["avg_mAP"] for s in seeds]
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        c = res["costs"][arch]
        lines.append(f"| {arch} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | **{statistics.mean(vals):.2f} "
                     f"+- {std:.2f}** | {c['train_step_sec']:.2f} s | {c['infer_sec'] * 1e3:.0f} ms | "
                     f"train {c['train_step_sec'] / base['train_step_sec']:.2f}x, infer "
                     f"{c['infer_sec'] / base['infer_sec']:.2f}x | {c['params'] / 1e6:.2f} M |")
    return "\n".join(lines)


def main(seeds: list[int], threads: int, rounds: int, command: str) -> None:
    from bench.extract import machine

    folder = RESULTS / "variants"
    data_config = make_data(RESULTS / "parity" / "data", threads)
    gt = json.loads((RESULTS / "parity" / "data" / "annotations" / "thumos14_synth.json").read_text())
    table = RESULTS / "variants.json"
    res: dict[str, Any] = json.loads(table.read_text()) if table.exists() else {}
    recipe = {"shared": SHARED, "archs": {a: v[1] for a, v in ARCHS.items()}, "lr": 10 * BASE_LR}
    if res.get("recipe") != recipe:
        res = {"recipe": recipe, "scores": {}}
    for seed in seeds:  # architectures alternate within a seed
        for arch in ARCHS:
            cell = res["scores"].setdefault(arch, {})
            if str(seed) not in cell:
                cell[str(seed)] = train_and_score(arch, seed, data_config, gt, folder, threads)
                print(json.dumps({"arch": arch, "seed": seed, **cell[str(seed)]}), flush=True)
                table.write_text(json.dumps(res, indent=1))
    res["costs"] = costs(threads, rounds)
    m = machine()
    res["machine"] = (f"{m.get('cpu')}, torch {m['torch']}, {threads} threads, capability {m['cpu_capability']}, "
                      f"flags {' '.join(m.get('flags', []))}")
    res["seeds"], res["command"] = seeds, command
    table.write_text(json.dumps(res, indent=1))
    print(markdown(res))
    print(f"\nresults: {table}")
