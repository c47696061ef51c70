"""Time tadformer's multiclass Gaussian soft-NMS per video (median over repeats).

Candidate sets:
- the two golden post-processing cases (``tests/golden/postprocess.npz``), when present;
- THUMOS-like synthetic videos: 20 classes, a 2304-step padded grid, a few actions per video whose
  classes get high logits around them, noise logits elsewhere; decoded with the THUMOS test_cfg
  (threshold 0.001, top-2000 per level), giving about 4,000-12,000 candidates.

Run: ``.venv/bin/python -m bench.bench_nms [--repeats 5] [--videos 6]`` (NMS only, ours only; the
side-by-side decode + NMS figure is ``python -m bench nms``). For reference, the official
compiled C++ op (``nms_1d_cpu``, full per-class runs) was reported at about 13 ms per THUMOS video.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bench import cases
from tadformer.model.points import make_points
from tadformer.nms import batched_nms
from tadformer.postprocess import decode_detections

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden" / "postprocess.npz"
STRIDES = [1, 2, 4, 8, 16, 32]
RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]


def thumos_like(seed: int, num_classes: int = 20, t_valid: int = 1800, t_pad: int = 2304
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decoded candidates (grid segments, scores, labels) of one synthetic THUMOS-like video."""
    lengths = [t_pad >> lv for lv in range(6)]
    points = make_points(lengths, STRIDES, RANGES)
    logits, offsets, masks = (list(map(torch.from_numpy, x))
                              for x in cases.head_outputs(seed, t_pad, t_valid, num_classes))
    return decode_detections(logits, offsets, masks, points, 0.001, 2000, 0.05)


def time_nms(segs: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, repeats: int) -> float:
    """Median wall time (ms) of the THUMOS batched soft-NMS on one candidate set."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        batched_nms(segs, scores, labels, 0.1, 0.001, 200, use_soft_nms=True, multiclass=True, sigma=0.5)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--videos", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    if GOLDEN.is_file():
        g = np.load(GOLDEN)
        for case in ("forward", "synthetic"):
            cand = tuple(torch.from_numpy(g[f"{case}/pre_nms_{k}"]) for k in ("segments_grid", "scores", "labels"))
            rows.append((f"golden {case}", cand))
    for v in range(args.videos):
        rows.append((f"thumos-like #{v}", thumos_like(v)))
    all_ms = []
    for name, (segs, scores, labels) in rows:
        ms = time_nms(segs, scores, labels, args.repeats)
        all_ms.append(ms)
        print(f"{name:18s} {segs.shape[0]:6d} candidates {len(torch.unique(labels)):3d} classes  {ms:8.2f} ms")
    synth = all_ms[-args.videos:]
    print(f"median over thumos-like videos: {statistics.median(synth):.2f} ms/video")


if __name__ == "__main__":
    main()
