"""Single-video inference helpers, including the longest THUMOS14 test video length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tadformer.engine.infer import format_table, infer_video, top_k
from tadformer.engine.loading import LoadedModel
from tadformer.model import build_model
from tadformer.postprocess import Detections


def _loaded(cfg) -> LoadedModel:
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    return LoadedModel(cfg, model, tuple(f"c{i}" for i in range(cfg.dataset.num_classes)), "random init",
                       Path("none"))


def test_longest_thumos_video_runs_and_is_padded_to_max_div_factor(tiny_cfg, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    n_steps = 12534  # the longest THUMOS14 test video (1673 s at 30 fps)
    feats = np.random.default_rng(0).random((n_steps, tiny_cfg.dataset.input_dim), dtype=np.float32)
    path = tmp_path / "long.npy"
    np.save(path, feats)
    det = infer_video(_loaded(tiny_cfg), path, fps=30.0, duration_sec=1673.0)
    assert det.video_id == "long"
    assert 0 < len(det) <= tiny_cfg.test_cfg.max_seg_num
    segs = det.segments_sec.numpy()
    assert (segs[:, 0] >= 0).all() and (segs[:, 1] <= 1673.0).all() and (segs[:, 0] <= segs[:, 1]).all()
    assert torch.all(det.scores[:-1] >= det.scores[1:])


def test_default_duration_is_the_end_of_the_last_clip(tiny_cfg, tmp_path: Path) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.ones((100, tiny_cfg.dataset.input_dim), dtype=np.float32))
    det = infer_video(_loaded(tiny_cfg), path, fps=25.0)
    # last clip: frames 4*99 .. 4*99+16 -> (396 + 16) / 25 = 16.48 s
    assert float(det.segments_sec.max()) <= 16.48 + 1e-5


def test_top_k_and_table() -> None:
    det = Detections("v", torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.5]]), torch.tensor([0.9, 0.5, 0.1]),
                     torch.tensor([1, 0, 2]))
    best = top_k(det, 2, min_score=0.0)
    assert best.scores.tolist() == [0.8999999761581421, 0.5]
    assert len(top_k(det, 10, min_score=0.4)) == 2
    text = format_table(best, ("a", "b", "c"))
    assert "b" in text.splitlines()[1] and "0.9000" in text and "5.50" not in text
    assert "no detection" in format_table(top_k(det, 0), ("a", "b", "c"))
