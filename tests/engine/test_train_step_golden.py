"""Three official training steps (golden ``train_step.npz``) through the engine's ``train_step``.

Checks losses, positives, loss normaliser, LR, gradient norm, step-1 gradients, weights after
steps 2 and 3, and the EMA, at the tolerances of the golden README.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tadformer.config import config_from_dict
from tadformer.data.collate import collate_train
from tadformer.data.types import VideoSample
from tadformer.engine.ema import ModelEma
from tadformer.engine.optim import build_optimizer, build_scheduler
from tadformer.engine.step import TrainParts, batch_losses, train_step
from tadformer.losses import LossNormalizer
from tadformer.model import build_model, forced_droppath_masks


def _load_weights(model: torch.nn.Module, npz: np.lib.npyio.NpzFile) -> None:
    state = {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}
    model.load_state_dict(state, strict=True)


def _batch(step: np.lib.npyio.NpzFile, s: int, max_seq_len: int) -> list:
    samples = []
    for j in range(2):
        pre = f"step{s}/video{j}"
        samples.append(VideoSample(
            video_id=f"s{s}v{j}", feats=torch.from_numpy(np.array(step[f"{pre}/feats"])),
            segments_grid=torch.from_numpy(np.array(step[f"{pre}/segments"])),
            labels=torch.from_numpy(np.array(step[f"{pre}/labels"])), fps=30.0, duration_sec=100.0,
            feat_stride=4, feat_num_frames=16))
    return [collate_train(samples, max_seq_len)]


@pytest.fixture(scope="module")
def golden_run(golden_dir: Path) -> dict:
    torch.set_num_threads(1)
    cfg = config_from_dict(json.loads((golden_dir / "tiny_config.json").read_text()))
    step_npz = np.load(golden_dir / "train_step.npz")
    model = build_model(cfg)
    _load_weights(model, np.load(golden_dir / "model_weights.npz"))
    model.train()
    optimizer = build_optimizer(model, cfg.opt)
    scheduler = build_scheduler(optimizer, cfg.opt, iters_per_epoch=3)
    parts = TrainParts(model, optimizer, scheduler, ModelEma(model, 0.999),
                       LossNormalizer(float(cfg.train_cfg.init_loss_norm)))
    records, grads1, weights = [], {}, []
    for s in (1, 2, 3):
        masks = torch.from_numpy(np.array(step_npz[f"step{s}/droppath_keep_mask"]))
        batches = _batch(step_npz, s, cfg.dataset.max_seq_len)
        with forced_droppath_masks(model, masks):
            if s == 1:  # gradients of step 1, from a separate forward on a copy of the normaliser
                probe = LossNormalizer(float(cfg.train_cfg.init_loss_norm))
                model.zero_grad(set_to_none=True)
                batch_losses(model, batches[0], cfg, probe)["final_loss"].backward()
                grads1 = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
            records.append(train_step(parts, batches, cfg, torch.device("cpu")))
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return {"npz": step_npz, "records": records, "grads1": grads1, "weights": weights, "ema": parts.ema,
            "golden_dir": golden_dir}


def test_losses_and_step_stats(golden_run: dict) -> None:
    npz, recs = golden_run["npz"], golden_run["records"]
    for key in ("cls_loss", "reg_loss", "final_loss"):
        np.testing.assert_allclose([r[key] for r in recs], npz[key], rtol=1e-5)
    np.testing.assert_array_equal([int(r["num_pos"]) for r in recs], npz["num_pos"])
    np.testing.assert_allclose([r["loss_normalizer"] for r in recs], npz["loss_normalizer"], rtol=1e-12)
    np.testing.assert_allclose([r["lr"] for r in recs], npz["lr"], rtol=1e-9)
    np.testing.assert_allclose([r["grad_norm"] for r in recs], npz["grad_norm"], rtol=1e-5)


def test_step1_gradients(golden_run: dict) -> None:
    npz, grads = golden_run["npz"], golden_run["grads1"]
    for name, grad in grads.items():
        torch.testing.assert_close(grad, torch.from_numpy(np.array(npz[f"grads_step1/{name}"])),
                                   atol=1e-6, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")


def test_weights_after_steps(golden_run: dict) -> None:
    npz, weights = golden_run["npz"], golden_run["weights"]
    initial = np.load(golden_run["golden_dir"] / "model_weights.npz")
    trained = np.load(golden_run["golden_dir"] / "model_weights_trained.npz")
    for name, value in weights[0].items():  # step 1 runs at lr 0: weights unchanged, bit for bit
        torch.testing.assert_close(value, torch.from_numpy(np.array(initial[name])), atol=0, rtol=0)
    for name, value in weights[1].items():
        torch.testing.assert_close(value, torch.from_numpy(np.array(npz[f"weights_after_step2/{name}"])),
                                   atol=1e-5, rtol=0)
    for name, value in weights[2].items():
        torch.testing.assert_close(value, torch.from_numpy(np.array(trained[name])), atol=1e-5, rtol=0)


def test_ema_after_three_steps(golden_run: dict) -> None:
    ema_golden = np.load(golden_run["golden_dir"] / "ema.npz")
    for name, value in golden_run["ema"].state_dict().items():
        torch.testing.assert_close(value, torch.from_numpy(np.array(ema_golden[name])), atol=1e-7, rtol=1e-6)
