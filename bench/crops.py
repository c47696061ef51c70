"""Training-crop distribution, ours vs official, on the parity dataset (``python -m bench crops``).

The three-step golden test and the whole-run test use no crops; this compares the crops themselves.
Both implementations read every training video of the parity dataset ``--draws`` times (one pass per
draw, as epochs do) with the THUMOS recipe (``max_seq_len`` 576, ``crop_ratio`` (0.9, 1.0),
``trunc_thresh`` 0.5). The official side draws from Python's ``random`` after ``fix_random_seed``; ours from
generators seeded by ``(seed, draw, index)``, as ``tadformer train`` does per ``(seed, epoch, index)``.

Reported: the crop rate (share of draws whose window is not the whole video) per side, with the rate
the rule implies by hand (a length uniform over ``[round(0.9 T), T]``, so a video with ``T <= 576`` is
cropped with probability ``1 - 1/(T - round(0.9 T) + 1)``, and always when ``T > 576``); the largest
per-video difference in crop rate in units of its binomial standard error; and two-sample
Kolmogorov-Smirnov tests on the window start (as a fraction of the free room ``T - L``) and on the
window length (as a fraction of ``T``) of the cropped draws.
"""

from __future__ import annotations

import json
import math
import subprocess
from typing import Any

import numpy as np

from bench.driver import RESULTS, ROOT, side_python
from bench.parity import RECIPE, make_data


def ours(config: str, seed: int, draws: int) -> dict[str, Any]:
    import torch

    from tadformer.config import load_config
    from tadformer.engine.batches import build_train_dataset, seed_of

    cfg = load_config(config, [f"{k}={v}" for k, v in RECIPE.items()])
    dataset, _ = build_train_dataset(cfg)
    lengths = [int(np.load(dataset.feature_path(r.video_id), mmap_mode="r").shape[0]) for r in dataset.records]
    windows = [[list(dataset.load(i, torch.Generator().manual_seed(seed_of(seed, d, i))).crop_window or (0, 0))
                for i in range(len(dataset))] for d in range(draws)]
    return {"videos": [r.video_id for r in dataset.records], "lengths": lengths, "windows": windows}


def official(config: str, seed: int, draws: int, out: str) -> dict[str, Any]:
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run([side_python("official"), "-m", "bench.official_crops", config, str(seed), str(draws), out,
                    json.dumps(RECIPE)], cwd=ROOT, env=env, check=True)
    with open(out) as fh:
        return json.load(fh)


def ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value."""
    grid = np.union1d(a, b)
    d = float(np.abs(np.searchsorted(np.sort(a), grid, "right") / len(a)
                     - np.searchsorted(np.sort(b), grid, "right") / len(b)).max())
    lam = d * math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(1.0, max(0.0, p))


def summarize(side: dict[str, Any]) -> dict[str, np.ndarray]:
    w = np.asarray(side["windows"], dtype=np.float64)  # [draws, videos, 2]
    t = np.asarray(side["lengths"], dtype=np.float64)[None, :]
    start, length = w[..., 0], w[..., 1] - w[..., 0]
    cropped = length < t
    room = np.broadcast_to(t - length, start.shape)
    return {"rate": cropped.mean(axis=0), "start_frac": (start / np.where(room > 0, room, 1))[cropped],
            "length_frac": (length / t)[cropped], "all_rate": np.asarray(cropped.mean())}


def expected_rate(lengths: list[int], max_seq_len: int = 576) -> np.ndarray:
    t = np.asarray(lengths)
    lo = np.maximum(np.round(0.9 * t), 1)  # numpy rounds half to even, like Python's round
    return np.where(t > max_seq_len, 1.0, 1.0 - 1.0 / (t - lo + 1))


def main(seed: int, draws: int) -> None:
    folder = RESULTS / "parity"
    config = str(make_data(folder / "data", threads=1))
    a = ours(config, seed, draws)
    b = official(config, seed, draws, str(RESULTS / "crops_official.json"))
    assert a["videos"] == b["videos"] and a["lengths"] == b["lengths"], "the two datasets differ"
    sa, sb = summarize(a), summarize(b)
    expected = expected_rate(a["lengths"])
    se = np.sqrt(np.maximum(expected * (1 - expected), 1e-12) * 2 / draws)  # sd of a difference of two rates
    z = np.abs(sa["rate"] - sb["rate"]) / se
    ks_start, ks_len = ks_2samp(sa["start_frac"], sb["start_frac"]), ks_2samp(sa["length_frac"], sb["length_frac"])
    report = {
        "seed": seed, "draws": draws, "videos": len(a["videos"]),
        "crop_rate": {"ours": float(sa["all_rate"]), "official": float(sb["all_rate"]),
                      "by_hand": float(expected.mean())},
        "max_per_video_rate_difference_in_se": float(z.max()),
        "ks_start_fraction": {"D": ks_start[0], "p": ks_start[1], "n": [len(sa["start_frac"]), len(sb["start_frac"])]},
        "ks_length_fraction": {"D": ks_len[0], "p": ks_len[1]},
        "mean_start_fraction": {"ours": float(sa["start_frac"].mean()), "official": float(sb["start_frac"].mean())},
    }
    (RESULTS / "crops.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
