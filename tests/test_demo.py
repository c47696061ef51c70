"""``tadformer demo --quick`` end to end: data, training, both evaluations, inference, report."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tadformer.cli import main


def test_quick_demo(tmp_path: Path, capsys) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "| regular |" in printed and "| EMA |" in printed and "report:" in printed
    summary = json.loads((out / "demo_summary.json").read_text())
    for weights in ("regular", "ema"):
        assert len(summary[weights]["mAP"]) == 5
        assert 0.0 <= summary[weights]["average_mAP"] <= 1.0
    for rel in ("config.yaml", "train_log.jsonl", "eval/metrics.json", "eval/predictions.json",
                "eval_regular/metrics.json", "infer/timeline.png", "infer/detections.json",
                "report/report.html", "report/report.md"):
        assert (out / rel).is_file(), rel
    # the recipe it trained with is written in the config it saves
    assert "embd_dim: 128" in (out / "config.yaml").read_text()
    html = (out / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5


def test_quick_demo_like_activitynet(tmp_path: Path, capsys) -> None:
    """ActivityNet-shaped data, the shipped anet_tsp recipe (resize to 192, class-agnostic detection), score
    fusion with the synthetic external classifier, the ActivityNet thresholds."""
    torch.set_num_threads(1)
    out = tmp_path / "anet"
    assert main(["demo", "--quick", "--like", "activitynet", "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "| weights | 0.50 | 0.55 |" in printed and "0.95 | Avg |" in printed
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert len(metrics["tiou_thresholds"]) == 10
    preds = json.loads((out / "eval" / "predictions.json").read_text())["results"]
    assert all(len({d["label_id"] for d in dets}) == 2 for dets in preds.values())  # the top-2 fused classes
    cfg = (out / "config.yaml").read_text()
    assert "force_upsampling: true" in cfg and "ext_score_file" in cfg
    assert (out / "report" / "report.html").is_file()


def test_quick_demo_like_epic(tmp_path: Path, capsys) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "epic"
    assert main(["demo", "--quick", "--like", "epic", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    assert "| weights | 0.10 | 0.20 | 0.30 | 0.40 | 0.50 | Avg |" in capsys.readouterr().out
    from tadformer.config import load_config

    cfg = load_config(out / "config.yaml")
    assert cfg.dataset.file_ext == ".npz" and cfg.dataset.num_classes == 97
    assert len(cfg.train_cfg.head_empty_cls) > 0  # classes without annotations got the empty-class bias


def test_synth_like_ego4d_trains(tmp_path: Path, capsys) -> None:
    """Two feature folders concatenated, the shipped Ego4D two-feature recipe: one optimiser step runs."""
    torch.set_num_threads(1)
    data = tmp_path / "ego"
    assert main(["synth", "--like", "ego4d", "--out", str(data), "--train-videos", "4", "--test-videos", "2",
                 "--input-dim", "8", "4", "--duration-scale", "0.2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("features") >= 1 and "config:" in printed
    config = next(data.glob("*.yaml"))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu",
                 "--max-steps", "1", "--set", "model.embd_dim=16", "--set", "model.fpn_dim=16",
                 "--set", "model.head_dim=16", "--set", "model.n_head=2", "--set", "loader.num_workers=0"]) == 0
    # single-video inference from one file per feature stream, concatenated in folder order
    folders = sorted(p for p in (data / "features").iterdir() if p.is_dir())
    vid = sorted(folders[0].glob("*.npy"))[0].stem
    files = [str(f / f"{vid}.npy") for f in ("omnivore", "egovlp") for f in [data / "features" / f]]
    capsys.readouterr()
    assert main(["infer", "--ckpt", str(tmp_path / "run"), "--feat", *files, "--top-k", "3",
                 "--json", str(tmp_path / "det.json")]) == 0
    assert json.loads((tmp_path / "det.json").read_text())["results"][vid]
    assert main(["infer", "--ckpt", str(tmp_path / "run"), "--feat", files[0], "--top-k", "3"]) != 0  # 8 of 12 channels
