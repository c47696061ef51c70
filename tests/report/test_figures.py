"""Report figures: every PNG is written, non-blank, of the expected size and deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from tadformer.postprocess import Detections
from tadformer.report import figures as F
from tadformer.report.analysis import mean_pr_curve


def _pixels(path: Path) -> np.ndarray:
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def assert_non_blank(path: Path, width_px: int | None = None) -> np.ndarray:
    """The PNG exists, has the expected width and real content (not one flat colour)."""
    assert path.is_file()
    img = _pixels(path)
    assert img[..., :3].std() > 0.05, f"{path.name} looks blank (pixel std {img[..., :3].std():.4f})"
    if width_px is not None:
        assert img.shape[1] == width_px
    return img


def _log(n: int = 50) -> list[dict[str, float]]:
    return [{"epoch": i // 10, "step": i + 1, "cls_loss": 1.0 / (1 + i), "reg_loss": 0.5 + 0.1 * (i % 2),
             "final_loss": 1.5 / (1 + i), "lr": 1e-4 * min(1.0, i / 10), "grad_norm": 1.0 + (i % 3)}
            for i in range(n)]


def test_smooth_curve_hand_values() -> None:
    # weight 0.5: acc = 0.5, norm = 0.5 -> 1; acc = 0.25 + 1.5 = 1.75, norm = 0.75 -> 7/3; NaN carried over
    out = F.smooth_curve([1.0, 3.0, float("nan")], weight=0.5)
    np.testing.assert_allclose(out[:2], [1.0, 7.0 / 3.0], rtol=0, atol=1e-12)
    assert np.isnan(out[2])


def test_mean_pr_curve_hand_values() -> None:
    # class A: precision [1, 0.5], recall [0.5, 0.5] -> envelope 1 up to recall 0.5, then nothing (0)
    # class B: precision [0.5, 1.0] at recall [0.5, 1.0] -> envelope 1 everywhere up to recall 1
    a = (np.array([1.0, 0.5]), np.array([0.5, 0.5]))
    b = (np.array([0.5, 1.0]), np.array([0.5, 1.0]))
    prec, grid = mean_pr_curve([a, b], num_points=5)  # grid 0, .25, .5, .75, 1
    np.testing.assert_allclose(grid, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(prec, [1.0, 1.0, 1.0, 0.5, 0.5])


def test_training_figures(tmp_path: Path) -> None:
    assert_non_blank(F.plot_loss_curves(tmp_path / "loss.png", _log()), width_px=1100)
    assert_non_blank(F.plot_lr_curve(tmp_path / "lr.png", _log()), width_px=1100)
    with pytest.raises(ValueError, match="no training log"):
        F.plot_loss_curves(tmp_path / "x.png", [])


def test_metric_figures(tmp_path: Path) -> None:
    thr = [0.3, 0.4, 0.5, 0.6, 0.7]
    assert_non_blank(F.plot_map_vs_tiou(tmp_path / "map.png", {"EMA": (thr, [0.8, 0.7, 0.6, 0.5, 0.4]),
                                                               "regular": (thr, [0.7, 0.6, 0.5, 0.4, 0.3])}))
    assert_non_blank(F.plot_per_class_ap(tmp_path / "ap.png", ["a", "b", "c"], [0.5, 0.2, 0.9], [0.4, 0.1, 0.8]))
    with pytest.raises(ValueError, match="same length"):
        F.plot_per_class_ap(tmp_path / "bad.png", ["a"], [0.5, 0.2], [0.4])
    curves = {"a": (np.array([1.0, 0.5, 0.67]), np.array([0.5, 0.5, 1.0])), "b": (np.zeros(0), np.zeros(0))}
    assert_non_blank(F.plot_pr_curves(tmp_path / "pr.png", curves, mean_pr_curve(list(curves.values())),
                                      {"a": 0.83, "b": 0.0}))
    rng = np.random.default_rng(0)
    assert_non_blank(F.plot_score_histogram(tmp_path / "hist.png", rng.uniform(0.5, 1, 30),
                                            rng.uniform(0, 0.6, 300)))
    counts = {"true_positive": 5, "double_detection": 1, "wrong_label": 2, "localization": 3,
              "confusion": 0, "background": 9}
    assert_non_blank(F.plot_error_analysis(tmp_path / "err.png", counts, ["XS", "S", "M", "L", "XL"],
                                           [3, 4, 5, 0, 1], [1, 0, 2, 0, 1]))


def test_figures_are_deterministic(tmp_path: Path) -> None:
    a = F.plot_loss_curves(tmp_path / "a.png", _log())
    b = F.plot_loss_curves(tmp_path / "b.png", _log())
    assert a.read_bytes() == b.read_bytes()
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def _detections() -> Detections:
    return Detections(video_id="vid_a", segments_sec=torch.tensor([[1.0, 4.0], [10.0, 15.0], [2.0, 3.5]]),
                      scores=torch.tensor([0.9, 0.6, 0.2]), labels=torch.tensor([0, 2, 0]))


def test_save_timeline_figure_with_and_without_gt(tmp_path: Path) -> None:
    names = ["Jump", "Run", "Throw"]
    plain = assert_non_blank(F.save_timeline_figure(tmp_path / "plain.png", _detections(), names))
    ann = {"database": {"vid_a": {"subset": "test", "duration": 20.0, "annotations": [
        {"label": "Jump", "label_id": 0, "segment": [1.2, 4.1]}, {"label": "Run", "label_id": 1, "segment": [6, 8]}]}}}
    ann_path = tmp_path / "ann.json"
    ann_path.write_text(json.dumps(ann), encoding="utf-8")
    with_gt = assert_non_blank(F.save_timeline_figure(tmp_path / "gt.png", _detections(), names, ann_path))
    # rows: det Jump, det Throw (2) vs GT/det for Jump, Run, Throw (6): the figure grows by 0.3 in per row
    assert with_gt.shape[0] - plain.shape[0] == 4 * 30
    other = assert_non_blank(F.save_timeline_figure(tmp_path / "other.png", _detections(), names, ann_path,
                                                    video_id="not_there"))
    assert other.shape[0] == plain.shape[0]  # no GT for that video: detection rows only


def test_timeline_top_n_limits_rows(tmp_path: Path) -> None:
    # top_n=1 keeps only the 0.9 Jump detection: one row instead of two
    one = _pixels(F.save_timeline_figure(tmp_path / "one.png", _detections(), None, top_n=1))
    two = _pixels(F.save_timeline_figure(tmp_path / "two.png", _detections(), None, top_n=3))
    assert two.shape[0] - one.shape[0] == 30
