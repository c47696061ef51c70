"""A whole training run equals the official one (golden ``trajectory/``).

The official code trained a small THUMOS-schema model for 96 optimiser steps with no randomness left
(no drop-path or dropout, no crops, a stored batch order), then evaluated it. Here tadformer's own
engine (``fit``, the code behind ``tadformer train``) replays that batch order through
``--batch-order`` and every recorded quantity is compared at the tolerances of the golden README
(``drift.json``: 10x the official code's drift against itself, never loosened): tight for the
first 25 steps and for what does not drift (LR, positives, loss normaliser), loose later, where
training is chaotic.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tadformer.config import config_from_dict
from tadformer.engine.checkpoint import load_checkpoint
from tadformer.engine.evaluate import build_eval_dataset, detect_from_raw, predict_raw, score_detections
from tadformer.engine.loading import load_for_inference
from tadformer.engine.train import FitOptions, fit
from tadformer.model import build_model

GAUGE_SUFFIXES = (".attn.key.bias", ".attn.key_norm.bias")  # zero true gradient: pure rounding noise
LOSSES = ("cls_loss", "reg_loss", "final_loss")


def _sha256_of_state(state: dict[str, torch.Tensor]) -> str:
    """The golden rule: float32 little-endian C-order bytes of every tensor, in state-dict order."""
    digest = hashlib.sha256()
    for value in state.values():
        digest.update(np.ascontiguousarray(value.detach().cpu().numpy().astype("<f4")).tobytes())
    return digest.hexdigest()


def _l2(state: dict[str, torch.Tensor]) -> tuple[np.ndarray, float]:
    per_key = np.array([np.linalg.norm(v.detach().double().numpy().ravel()) for v in state.values()])
    return per_key, float(np.sqrt((per_key**2).sum()))


@pytest.fixture(scope="module")
def traj(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.set_num_threads(1)
    gold = golden_dir / "trajectory"
    raw = json.loads((gold / "config.json").read_text())
    raw["dataset"]["json_file"] = str(gold / "annotations.json")
    raw["dataset"]["feat_folder"] = str(gold / "features")
    cfg = config_from_dict(raw)
    meta = json.loads((gold / "trajectory.json").read_text())
    root = tmp_path_factory.mktemp("trajectory")
    order = root / "order.json"  # the plain form: one list of video ids per optimiser step
    order.write_text(json.dumps([step for epoch in meta["epochs"] for step in epoch["steps"]]))
    run = root / "run"
    fit(cfg, run, FitOptions(device="cpu", progress=False, ckpt_freq=1, batch_order=order))
    log = [json.loads(ln) for ln in (run / "train_log.jsonl").read_text().splitlines()]
    return {"cfg": cfg, "meta": meta, "run": run, "log": log, "gold": gold,
            "npz": np.load(gold / "trajectory.npz"), "tol": json.loads((gold / "drift.json").read_text())[
                "proposed_tolerances"]}


def _series(log: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([rec[key] for rec in log], dtype=np.float64)


def test_initial_weights_are_the_official_ones(traj: dict[str, Any]) -> None:
    torch.manual_seed(traj["meta"]["model_init"]["seed"])  # what seed_everything does first in fit
    from tadformer.engine.runtime import seed_everything

    seed_everything(traj["meta"]["model_init"]["seed"])
    model = build_model(traj["cfg"])
    state = model.state_dict()
    assert list(state) == traj["meta"]["state_dict_keys"]
    assert _sha256_of_state(state) == traj["meta"]["model_init"]["sha256_float32_state_dict"]


def test_the_replayed_order_is_the_golden_one(traj: dict[str, Any]) -> None:
    written = json.loads((traj["run"] / "batch_order.json").read_text())
    assert written["steps"] == [step for epoch in traj["meta"]["epochs"] for step in epoch["steps"]]
    assert written["steps_per_epoch"] == traj["meta"]["iters_per_epoch"] == 8
    lengths = {p.stem: int(np.load(p, mmap_mode="r").shape[0]) for p in (traj["gold"] / "features").glob("*.npy")}
    for ids, windows in zip(written["steps"], written["crop_windows"]):  # nothing was cropped
        assert windows == [[0, lengths[v]] for v in ids]


def test_lr_positives_and_normaliser_over_all_steps(traj: dict[str, Any]) -> None:
    log, npz, tol = traj["log"], traj["npz"], traj["tol"]
    assert [r["step"] for r in log] == list(range(1, 97))
    np.testing.assert_allclose(_series(log, "lr"), npz["lr"], rtol=tol["lr_rtol"], atol=0)
    np.testing.assert_array_equal(_series(log, "num_pos").astype(np.int64), npz["num_pos"])
    np.testing.assert_allclose(_series(log, "loss_normalizer"), npz["loss_normalizer"],
                               rtol=tol["loss_normalizer_rtol"], atol=0)


def test_losses_per_step(traj: dict[str, Any]) -> None:
    log, npz, tol = traj["log"], traj["npz"], traj["tol"]
    rtol = np.asarray(tol["loss_rtol_per_step"])
    assert len(rtol) == 96 and rtol[: tol["tight_steps"]].max() == 1e-5
    for key in LOSSES:
        got, want = _series(log, key), npz[key].astype(np.float64)
        rel = np.abs(got - want) / np.abs(want)
        bad = np.flatnonzero(rel > rtol)
        assert bad.size == 0, f"{key}: steps {bad.tolist()} off by {rel[bad].tolist()} (rtol {rtol[bad].tolist()})"


def test_grad_norm_in_the_tight_steps(traj: dict[str, Any]) -> None:
    n = traj["tol"]["tight_steps"]
    np.testing.assert_allclose(_series(traj["log"], "grad_norm")[:n], traj["npz"]["grad_norm"][:n],
                               rtol=traj["tol"]["grad_norm_rtol_tight_steps"], atol=0)


def test_epoch_mean_losses(traj: dict[str, Any]) -> None:
    log, npz = traj["log"], traj["npz"]
    for key in LOSSES:
        got = _series(log, key).reshape(12, 8).mean(axis=1)
        want = npz[key].astype(np.float64).reshape(12, 8).mean(axis=1)
        rel = np.abs(got - want) / np.abs(want)
        rtol = np.asarray(traj["tol"]["epoch_mean_loss_rtol_per_epoch"])
        assert (rel <= rtol).all(), f"{key}: epochs {np.flatnonzero(rel > rtol).tolist()} off by {rel.tolist()}"


def test_weights_after_every_epoch(traj: dict[str, Any]) -> None:
    npz, tol, keys = traj["npz"], traj["tol"], traj["meta"]["state_dict_keys"]
    checked = np.array([not k.endswith(GAUGE_SUFFIXES) for k in keys])
    assert 0 < (~checked).sum() < 20
    for e in range(1, 13):
        ckpt = load_checkpoint(traj["run"] / "checkpoints" / f"epoch_{e:03d}.pth.tar")
        for which, key_l2, key_total in (("state_dict", "weights_l2_per_key", "weights_l2_total"),
                                         ("state_dict_ema", "ema_l2_per_key", "ema_l2_total")):
            state = ckpt[which]
            assert list(state) == keys
            per_key, total = _l2(state)
            np.testing.assert_allclose(total, npz[key_total][e], rtol=tol["weights_l2_total_rtol_per_epoch"][e],
                                       atol=0, err_msg=f"{which} after epoch {e}")
            np.testing.assert_allclose(per_key[checked], npz[key_l2][e][checked],
                                       rtol=tol["weights_l2_per_key_rtol_per_epoch_excluding_gauge"][e], atol=0,
                                       err_msg=f"{which} after epoch {e}")


def test_final_weights_and_ema(traj: dict[str, Any]) -> None:
    ckpt = load_checkpoint(traj["run"] / "checkpoints" / "epoch_012.pth.tar")
    assert ckpt["loss_normalizer"] is not None
    for which, name, atol in (("state_dict", "weights_final.npz", traj["tol"]["final_weights_atol"]),
                              ("state_dict_ema", "ema_final.npz", traj["tol"]["ema_weights_atol"])):
        want = np.load(traj["gold"] / name)
        assert list(want.files) == list(ckpt[which])
        for key in want.files:
            if key.endswith(GAUGE_SUFFIXES):
                continue
            np.testing.assert_allclose(ckpt[which][key].numpy(), want[key], rtol=0, atol=atol,
                                       err_msg=f"{which}/{key}")


@pytest.mark.parametrize("which", ["ema", "model"])
def test_evaluation(traj: dict[str, Any], which: str) -> None:
    gold_eval = json.loads((traj["gold"] / "eval.json").read_text())
    tol = traj["tol"]
    loaded = load_for_inference(traj["run"] / "checkpoints" / "epoch_012.pth.tar", use_ema=which == "ema")
    cfg = loaded.cfg
    dataset, _ = build_eval_dataset(cfg)
    raw = predict_raw(loaded.model, dataset, cfg, torch.device("cpu"), loaded.class_names, progress=False)
    detections = detect_from_raw(raw, cfg.test_cfg)
    videos = gold_eval[which]["videos"]
    assert [d.video_id for d in detections] == [v["video_id"] for v in videos]
    for det, video in zip(detections, videos):  # the max_seg_num cap, as in the official run
        assert len(det.scores) == video["num_detections"]
    result = score_detections(detections, cfg.dataset.json_file, "test", gold_eval["tiou_thresholds"])
    atol_avg, atol_thr = ((tol["ema_average_mAP_atol"], tol["ema_mAP_per_threshold_atol"]) if which == "ema"
                          else (tol["model_average_mAP_atol"], tol["model_mAP_per_threshold_atol"]))
    assert result.average_mAP == pytest.approx(gold_eval[which]["average_mAP"], abs=atol_avg)
    np.testing.assert_allclose(result.mAP, gold_eval[which]["mAP"], rtol=0, atol=atol_thr)
