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
