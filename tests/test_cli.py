"""End to end through the CLI: synth -> train -> eval (network, --raw, --predictions) -> infer."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_OVERRIDES
from tadformer.cli import build_parser, main


def _sets(*extra: str) -> list[str]:
    out: list[str] = []
    for item in (*TINY_OVERRIDES, *extra):
        out += ["--set", item]
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    assert main(["synth", "--out", str(data), "--train-videos", "6", "--test-videos", "3", "--input-dim", "16",
                 "--seed", "1", "--duration-scale", "0.15"]) == 0
    run = root / "run"
    assert main(["train", str(data / "config.yaml"), "--out", str(run), "--no-progress", "--device", "cpu",
                 *_sets()]) == 0
    return {"root": root, "data": data, "run": run}


def test_train_writes_run_dir(trained: dict) -> None:
    run = trained["run"]
    assert (run / "checkpoints" / "epoch_003.pth.tar").is_file()
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 9


def test_eval_raw_and_predictions_modes_agree(trained: dict, capsys) -> None:
    run, data = trained["run"], trained["data"]
    assert main(["eval", "--ckpt", str(run), "--no-progress", "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert "0.30" in table and "Avg" in table
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    preds = json.loads((run / "eval" / "predictions.json").read_text())
    assert set(preds) >= {"version", "results", "external_data"}
    some = next(iter(preds["results"].values()))[0]
    assert set(some) >= {"label", "label_id", "score", "segment"}
    # re-score the raw outputs without the network: same metrics
    out2 = trained["root"] / "eval_raw"
    assert main(["eval", str(run / "config.yaml"), "--raw", str(run / "eval" / "raw_outputs.pt"),
                 "--out", str(out2)]) == 0
    assert json.loads((out2 / "metrics.json").read_text())["average_mAP"] == metrics["average_mAP"]
    # and the written predictions score the same with no model at all
    out3 = trained["root"] / "eval_file"
    assert main(["eval", "--predictions", str(run / "eval" / "predictions.json"), "--annotations",
                 str(next((data / "annotations").glob("*.json"))), "--out", str(out3)]) == 0
    # bit-identical: the file holds the exact float32 values, read back without rounding
    assert json.loads((out3 / "metrics.json").read_text())["mAP"] == metrics["mAP"]
    # changed test settings through --set change the result file
    out4 = trained["root"] / "eval_top5"
    assert main(["eval", str(run / "config.yaml"), "--raw", str(run / "eval" / "raw_outputs.pt"),
                 "--out", str(out4), "--set", "test_cfg.max_seg_num=5"]) == 0
    p4 = json.loads((out4 / "predictions.json").read_text())["results"]
    assert max(len(v) for v in p4.values()) <= 5


def test_infer_outputs(trained: dict, capsys) -> None:
    data, run, root = trained["data"], trained["run"], trained["root"]
    db = json.loads(next((data / "annotations").glob("*.json")).read_text())["database"]
    vid = next(k for k, v in db.items() if v["subset"] == "Test")
    feat = data / "features" / f"{vid}.npy"
    out_json, out_csv, out_png = root / "det.json", root / "det.csv", root / "det.png"
    # underscore spellings of the official inference scripts are accepted
    assert main(["infer", "--ckpt", str(run / "checkpoints" / "epoch_003.pth.tar"), "--feat", str(feat),
                 "--top_k", "4", "--json", str(out_json), "--csv", str(out_csv), "--save_fig", str(out_png),
                 "--annotations", str(next((data / "annotations").glob("*.json"))), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "start_s" in printed and "score" in printed
    res = json.loads(out_json.read_text())["results"][vid]
    assert 1 <= len(res) <= 4
    scores = [r["score"] for r in res]
    assert scores == sorted(scores, reverse=True)
    dur = db[vid]["duration"]
    assert all(0.0 <= r["segment"][0] <= r["segment"][1] <= dur for r in res)
    rows = list(csv.reader(out_csv.open()))
    assert len(rows) == len(res) + 1
    import matplotlib.image as mpimg

    img = mpimg.imread(out_png)
    assert img.shape[0] > 100 and float(np.std(img)) > 0.01


def test_eval_and_infer_with_bf16_autocast(trained: dict, capsys) -> None:
    """``--amp bf16`` (opt-in) on eval and infer: same videos and classes, scores within bf16 rounding."""
    run, data, root = trained["run"], trained["data"], trained["root"]
    assert main(["eval", "--ckpt", str(run), "--no-progress", "--device", "cpu", "--out", str(root / "e32")]) == 0
    assert main(["eval", "--ckpt", str(run), "--no-progress", "--device", "cpu", "--amp", "bf16",
                 "--out", str(root / "e16")]) == 0
    p32 = json.loads((root / "e32" / "predictions.json").read_text())["results"]
    p16 = json.loads((root / "e16" / "predictions.json").read_text())["results"]
    assert set(p16) == set(p32)
    for vid in p32:
        s32, s16 = max(d["score"] for d in p32[vid]), max(d["score"] for d in p16[vid])
        assert s16 == pytest.approx(s32, abs=0.02)
    assert p16 != p32  # bf16 really ran
    feat = next((data / "features").glob("*.npy"))
    out = root / "det16.json"
    assert main(["infer", "--ckpt", str(run), "--feat", str(feat), "--amp", "bf16", "--json", str(out),
                 "--device", "cpu"]) == 0
    assert json.loads(out.read_text())["results"][feat.stem]
    capsys.readouterr()


def test_bad_inputs_give_one_line_errors(trained: dict, tmp_path: Path, capsys) -> None:
    run = trained["run"]
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((50, 7), dtype=np.float32))
    assert main(["infer", "--ckpt", str(run), "--feat", str(bad), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tadformer: error:") and "7" in err and "16" in err and "Traceback" not in err
    assert main(["eval", "--ckpt", str(tmp_path / "nope.pth.tar")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["train", str(run / "config.yaml"), "--set", "opt.learnin_rate=1"]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_parser_lists_every_subcommand() -> None:
    text = build_parser().format_help()
    for name in ("train", "eval", "infer", "extract", "synth", "demo", "report"):
        assert name in text
