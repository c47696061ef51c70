"""TriDet and TemporalMaxer through the CLI on synthetic data: train -> eval (network and --raw) -> infer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tadformer.cli import main
from tadformer.demo import architecture_recipe

TINY = ("model.embd_dim=16", "model.fpn_dim=16", "model.head_dim=16", "dataset.max_seq_len=576", "opt.epochs=1",
        "opt.warmup_epochs=1", "opt.learning_rate=0.001", "loader.batch_size=2", "loader.num_workers=0")
EXTRA = {"tridet": ("model.sgp_mlp_dim=24",), "temporalmaxer": ()}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_variants")
    assert main(["synth", "--out", str(root / "data"), "--train-videos", "4", "--test-videos", "2", "--input-dim",
                 "16", "--seed", "2", "--duration-scale", "0.15"]) == 0
    return root


@pytest.mark.parametrize("model", ["tridet", "temporalmaxer"])
def test_train_eval_infer(synth: Path, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    raw = yaml.safe_load((synth / "data" / "config.yaml").read_text())
    config = synth / f"{model}.yaml"
    config.write_text(yaml.safe_dump(architecture_recipe(raw, model)), encoding="utf-8")
    run = synth / f"run_{model}"
    sets = [a for item in (*TINY, *EXTRA[model]) for a in ("--set", item)]
    assert main(["train", str(config), "--out", str(run), "--no-progress", "--device", "cpu", *sets]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model_name"] == {"tridet": "TriDet", "temporalmaxer": "TemporalMaxerArchitecture"}[model]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert log and all(r["final_loss"] == r["final_loss"] for r in log)  # finite, no NaN
    # eval with the config stored in the checkpoint
    assert main(["eval", "--ckpt", str(run), "--no-progress", "--device", "cpu"]) == 0
    assert "Avg" in capsys.readouterr().out
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    raw_out = torch.load(run / "eval" / "raw_outputs.pt", weights_only=True)
    assert raw_out["model_name"] == saved["model_name"]
    offsets = raw_out["videos"][0]["offsets"][0]
    assert offsets.dim() == (3 if model == "tridet" else 2)  # TriDet's offsets are class-specific
    # re-scoring the raw outputs without the network gives the same metrics
    assert main(["eval", str(run / "config.yaml"), "--raw", str(run / "eval" / "raw_outputs.pt"),
                 "--out", str(synth / f"rescored_{model}")]) == 0
    assert json.loads((synth / f"rescored_{model}" / "metrics.json").read_text())["mAP"] == metrics["mAP"]
    # single-video inference
    feat = next((synth / "data" / "features").glob("*.npy"))
    out = synth / f"det_{model}.json"
    assert main(["infer", "--ckpt", str(run), "--feat", str(feat), "--top-k", "3", "--json", str(out),
                 "--device", "cpu"]) == 0
    dets = json.loads(out.read_text())["results"][feat.stem]
    assert 1 <= len(dets) <= 3
    assert all(d["segment"][0] <= d["segment"][1] for d in dets)
    # the report names the architecture
    assert main(["report", str(run)]) == 0
    html = (run / "report" / "report.html").read_text()
    assert {"tridet": "(TriDet)", "temporalmaxer": "(TemporalMaxer)"}[model] in html
    capsys.readouterr()


def test_demo_rejects_unknown_combinations(tmp_path: Path) -> None:
    from tadformer.demo import run_demo

    with pytest.raises(ValueError, match="--model must be one of"):
        run_demo(tmp_path, quick=True, model="nope")
    with pytest.raises(ValueError, match="THUMOS14 recipe only"):
        run_demo(tmp_path, quick=True, model="tridet", like="epic")


def test_architecture_recipe_takes_the_architecture_sections() -> None:
    raw = {"dataset": {"num_classes": 3}, "opt": {"learning_rate": 0.5, "weight_decay": 0.05}, "model": {"x": 1}}
    tri = architecture_recipe(raw, "tridet")
    assert tri["model_name"] == "TriDet" and tri["model"]["num_bins"] == 16
    assert tri["opt"] == {"learning_rate": 0.5, "weight_decay": 0.025} and tri["dataset"] == raw["dataset"]
    assert tri["test_cfg"]["max_seg_num"] == 2000
    assert architecture_recipe(raw, "actionformer") == raw


def test_quick_demo_with_another_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--model", "temporalmaxer", "--out", str(out), "--no-progress",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "training TemporalMaxer" in printed and "TemporalMaxer mAP (%)" in printed
    summary = json.loads((out / "demo_summary.json").read_text())
    assert (summary["model"], summary["architecture"]) == ("temporalmaxer", "TemporalMaxer")
    assert yaml.safe_load((out / "config.yaml").read_text())["model_name"] == "TemporalMaxerArchitecture"
    assert "(TemporalMaxer)" in (out / "report" / "report.html").read_text()
