"""The ActivityNet and EPIC-Kitchens model settings against the golden ``datasets/{anet,epic}_tiny_model``:
global attention on the last level, absolute position encoding, 1 class with label smoothing and loss
weight 2 (ActivityNet); window 9, overlapping regression ranges and empty classes (EPIC). Initial weights
bit-exact, eval forward at 1e-5, one training step (losses, normaliser, positives, gradients)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tadformer.config import ExperimentConfig, config_from_dict
from tadformer.data.collate import collate_train
from tadformer.data.types import VideoSample
from tadformer.engine.step import batch_losses
from tadformer.losses import LossNormalizer
from tadformer.model import ActionFormer, build_model, forced_droppath_masks

CASES = ["anet", "epic"]


def _golden(golden_dir: Path, name: str) -> tuple[ExperimentConfig, dict[str, Any], Any]:
    raw = json.loads((golden_dir / "datasets" / f"{name}_tiny_config.json").read_text())
    meta = json.loads((golden_dir / "datasets" / f"{name}_tiny_model.json").read_text())
    return config_from_dict(raw), meta, np.load(golden_dir / "datasets" / f"{name}_tiny_model.npz")


def _eval_model(cfg: ExperimentConfig, arrays: Any) -> ActionFormer:
    model = build_model(cfg)
    state = {k[len("init/"):]: torch.from_numpy(np.array(arrays[k])) for k in arrays.files if k.startswith("init/")}
    state.update({k[len("eval_overrides/"):]: torch.from_numpy(np.array(arrays[k]))
                  for k in arrays.files if k.startswith("eval_overrides/")})
    model.load_state_dict(state, strict=True)
    return model


@pytest.mark.parametrize("name", CASES)
def test_initial_weights_are_bit_exact(golden_dir: Path, name: str) -> None:
    cfg, meta, arrays = _golden(golden_dir, name)
    torch.manual_seed(1234567891)
    state = build_model(cfg).state_dict()
    keys = [k[len("init/"):] for k in arrays.files if k.startswith("init/")]
    assert list(state) == keys == [e["key"] if isinstance(e, dict) else e[0] for e in meta["state_dict"]]
    for key in keys:
        assert np.array_equal(state[key].numpy(), arrays[f"init/{key}"]), key
    assert cfg.model.max_div_factor == meta["max_div_factor"]


@pytest.mark.parametrize("name", CASES)
def test_eval_forward(golden_dir: Path, name: str) -> None:
    cfg, meta, arrays = _golden(golden_dir, name)
    model = _eval_model(cfg, arrays).eval()
    for video in meta["videos"]:
        prefix = f"{video['name']}/"
        feats = torch.from_numpy(np.array(arrays[prefix + "feats"]))  # [C, T]
        mask = torch.from_numpy(np.array(arrays[prefix + "batched_masks"]))[:, 0]  # [1, T_pad]
        padded = torch.zeros(1, feats.shape[0], mask.shape[1])
        padded[0, :, : feats.shape[1]] = feats
        with torch.no_grad():
            out = model(padded, mask)
        for lv in range(len(out.cls_logits)):
            for what, got in (("cls_logits", out.cls_logits[lv]), ("offsets", out.offsets[lv])):
                want = torch.from_numpy(np.array(arrays[f"{prefix}{what}_l{lv}"]))
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=f"{prefix}{what}_l{lv}")
            assert torch.equal(out.masks[lv], torch.from_numpy(np.array(arrays[f"{prefix}masks_l{lv}"])))


def test_anet_longer_inputs_are_accepted(golden_dir: Path) -> None:
    """Documented difference: the official point buffer (max_seq_len x max_buffer_len_factor = 192 points)
    rejects an evaluation input padded past 192 steps ("Reached max buffer length"); tadformer computes
    points on the fly and runs it (ActivityNet features are always resized to 192, so scores never differ)."""
    cfg, meta, arrays = _golden(golden_dir, "anet")
    assert meta["too_long_input"] == {"T": 250, "T_pad": 288, "error": "Reached max buffer length for point generator"}
    model = _eval_model(cfg, arrays).eval()
    mask = torch.zeros(1, 288, dtype=torch.bool)
    mask[:, :250] = True
    with torch.no_grad():
        out = model(torch.randn(1, 8, 288), mask)
    assert [x.shape[1] for x in out.cls_logits] == [288, 144, 72, 36, 18, 9]


@pytest.mark.parametrize("name", CASES)
def test_one_training_step(golden_dir: Path, name: str) -> None:
    torch.set_num_threads(1)
    cfg, meta, arrays = _golden(golden_dir, name)
    step = meta["train_step"]
    model = _eval_model(cfg, arrays).train()
    samples = [VideoSample(
        video_id=f"v{j}", feats=torch.from_numpy(np.array(arrays[f"train_step/video{j}/feats"])),
        segments_grid=torch.from_numpy(np.array(arrays[f"train_step/video{j}/segments"])),
        labels=torch.from_numpy(np.array(arrays[f"train_step/video{j}/labels"])), fps=30.0, duration_sec=100.0,
        feat_stride=16, feat_num_frames=16) for j in range(2)]
    batch = collate_train(samples, cfg.dataset.max_seq_len)
    normalizer = LossNormalizer(float(cfg.train_cfg.init_loss_norm))
    masks = torch.from_numpy(np.array(arrays["train_step/droppath_keep_mask"]))
    with forced_droppath_masks(model, masks):
        losses = batch_losses(model, batch, cfg, normalizer)
    losses["final_loss"].backward()
    for key in ("cls_loss", "reg_loss", "final_loss"):
        assert float(losses[key].detach()) == pytest.approx(step[key], rel=1e-5), key
    assert int(losses["num_pos"]) == step["num_pos"]
    assert normalizer.value == pytest.approx(step["loss_normalizer"], rel=1e-12)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    assert norm == pytest.approx(step["grad_norm"], rel=1e-5)
    named = dict(model.named_parameters())
    for key in step["grad_keys"]:
        grad = named[key].grad
        assert grad is not None, key
        torch.testing.assert_close(grad, torch.from_numpy(np.array(arrays[f"train_step/grads/{key}"])),
                                   atol=1e-6, rtol=1e-4, msg=lambda m, k=key: f"{k}: {m}")
