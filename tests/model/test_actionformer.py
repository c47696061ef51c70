"""The whole detector: official init (bit-exact), state-dict layout, golden eval forward, outputs."""

from __future__ import annotations

import copy
import json
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tadformer.model import ActionFormer, ClsHead, HeadOutputs, build_model, forced_droppath_masks
from tadformer.model.layers import AffineDropPath


def _ns(d: Any) -> Any:
    return types.SimpleNamespace(**{k: _ns(v) for k, v in d.items()}) if isinstance(d, dict) else d


def _tiny_raw(golden_dir: Path) -> dict[str, Any]:
    return json.loads((golden_dir / "tiny_config.json").read_text())


def _trained_tiny(golden_dir: Path) -> ActionFormer:
    model = build_model(_ns(_tiny_raw(golden_dir)))
    w = np.load(golden_dir / "model_weights_trained.npz")
    model.load_state_dict({k: torch.from_numpy(w[k]) for k in w.files})
    return model.eval()


def test_init_is_bit_exact_with_official_seed(golden_dir: Path) -> None:
    torch.manual_seed(1234567891)
    model = build_model(_ns(_tiny_raw(golden_dir)))
    sd = model.state_dict()
    ref = np.load(golden_dir / "model_weights.npz")
    assert list(sd) == list(ref.files)
    for key in ref.files:
        assert sd[key].dtype == torch.float32
        assert np.array_equal(sd[key].numpy(), ref[key]), key


def test_init_through_the_typed_config(golden_dir: Path) -> None:
    config = pytest.importorskip("tadformer.config")
    cfg = config.config_from_dict(_tiny_raw(golden_dir))
    torch.manual_seed(1234567891)
    sd = build_model(cfg).state_dict()
    ref = np.load(golden_dir / "model_weights.npz")
    assert all(np.array_equal(sd[k].numpy(), ref[k]) for k in ref.files)


def test_tiny_state_dict_layout(golden_dir: Path) -> None:
    info = json.loads((golden_dir / "param_groups.json").read_text())["tiny"]
    model = build_model(_ns(_tiny_raw(golden_dir)))
    sd = model.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(e["key"], e["shape"]) for e in info["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == info["total_parameters"] == 112_524
    assert not list(model.buffers())  # points are computed on the fly, nothing else is a buffer


def test_full_thumos_state_dict_layout(golden_dir: Path) -> None:
    info = json.loads((golden_dir / "param_groups.json").read_text())["thumos_full"]
    raw = copy.deepcopy(_tiny_raw(golden_dir))
    raw["dataset"].update(input_dim=2048, num_classes=20, max_seq_len=2304)
    raw["model"].update(embd_dim=512, fpn_dim=512, head_dim=512)
    model = build_model(_ns(raw))
    sd = model.state_dict()
    assert len(sd) == info["num_state_dict_entries"] == 229
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(e["key"], e["shape"]) for e in info["state_dict"]]
    assert sum(p.numel() for p in model.parameters()) == info["total_parameters"] == 29_251_612
    assert sd["reg_head.scale.0.scale"].dim() == 0
    assert model.pad_multiple == 576


@pytest.mark.parametrize("video", [0, 1, 2, 3])
def test_eval_forward_matches_golden(golden_dir: Path, video: int) -> None:
    model = _trained_tiny(golden_dir)
    f = np.load(golden_dir / "forward_eval.npz")
    x = torch.from_numpy(f[f"video{video}/batched_inputs"])
    mask = torch.from_numpy(f[f"video{video}/batched_masks"])[:, 0]
    with torch.no_grad():
        out = model(x, mask)
    assert isinstance(out, HeadOutputs)
    t_pad = x.shape[-1]
    assert out.points.level_lengths == tuple(t_pad // 2**l for l in range(6))
    points = out.points.split(torch.cat([out.points.t_grid[:, None], out.points.reg_range,
                                         out.points.stride[:, None]], dim=1))
    for l in range(6):
        key = f"video{video}/{{}}_l{l}"
        torch.testing.assert_close(out.cls_logits[l], torch.from_numpy(f[key.format("cls_logits")]),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.offsets[l], torch.from_numpy(f[key.format("offsets")]),
                                   atol=1e-5, rtol=1e-5)
        assert torch.equal(out.masks[l], torch.from_numpy(f[key.format("masks")]))
        assert torch.equal(points[l], torch.from_numpy(f[f"points_l{l}"][: t_pad // 2**l]))


def test_bf16_autocast_forward_stays_close_to_golden(golden_dir: Path) -> None:
    """Opt-in mixed precision: under bf16 autocast the heads return bfloat16 within a few bf16 ulps
    (2^-8 relative) of the official float32 outputs, and differ from them (autocast really ran)."""
    model = _trained_tiny(golden_dir)
    f = np.load(golden_dir / "forward_eval.npz")
    for video in range(4):
        x = torch.from_numpy(f[f"video{video}/batched_inputs"])
        mask = torch.from_numpy(f[f"video{video}/batched_masks"])[:, 0]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, mask)
        for l in range(6):
            m = out.masks[l]
            logits, ref_logits = out.cls_logits[l], torch.from_numpy(f[f"video{video}/cls_logits_l{l}"])
            offsets, ref_offsets = out.offsets[l], torch.from_numpy(f[f"video{video}/offsets_l{l}"])
            assert logits.dtype == offsets.dtype == torch.bfloat16
            logit_err = (logits.float() - ref_logits)[m].abs()
            assert 0 < logit_err.max() < 0.08  # |logit| ~ 2.3: bf16 spacing 2^-6 = 0.016
            offset_err = ((offsets.float() - ref_offsets).abs() / (1 + ref_offsets.abs()))[m]
            assert offset_err.max() < 0.02


def test_train_mode_returns_the_same_type_and_padding_is_zero(golden_dir: Path) -> None:
    model = _trained_tiny(golden_dir).train()
    torch.manual_seed(0)
    x = torch.randn(2, 32, 576)
    mask = torch.arange(576)[None] < torch.tensor([[576], [0]])  # second video is empty
    out = model(x, mask)
    assert isinstance(out, HeadOutputs)
    assert [o.shape for o in out.cls_logits] == [(2, 576 // 2**l, 4) for l in range(6)]
    assert [o.shape for o in out.offsets] == [(2, 576 // 2**l, 2) for l in range(6)]
    for logits, offsets, m in zip(out.cls_logits, out.offsets, out.masks):
        assert torch.isfinite(logits).all() and (offsets >= 0).all()
        assert torch.all(logits[~m] == 0) and torch.all(offsets[~m] == 0) and not m[1].any()


def test_forced_droppath_masks_on_the_model(golden_dir: Path) -> None:
    model = _trained_tiny(golden_dir)
    names = [n for n, mod in model.named_modules() if isinstance(mod, AffineDropPath)]
    blocks = [f"backbone.stem.{i}" for i in range(2)] + [f"backbone.branch.{i}" for i in range(5)]
    assert names == [f"{b}.drop_path_{p}" for b in blocks for p in ("attn", "mlp")]  # the call order
    x = torch.randn(2, 32, 576)
    mask = torch.ones(2, 576, dtype=torch.bool)
    with torch.no_grad():
        ref = model.eval()(x, mask)
        model.train()
        with forced_droppath_masks(model, torch.ones(14, 2)):
            keep_all = model(x, mask)
        drop = torch.ones(14, 2)
        drop[:, 1] = 0.0  # every residual branch of sample 1 dropped: the backbone is its skip path
        with forced_droppath_masks(model, drop):
            dropped = model(x, mask)
    assert not torch.allclose(keep_all.cls_logits[0], ref.cls_logits[0])  # 1/0.9 rescaling in training
    torch.testing.assert_close(dropped.cls_logits[0][0], keep_all.cls_logits[0][0])
    assert not torch.allclose(dropped.cls_logits[0][1], keep_all.cls_logits[0][1])


def test_build_model_rejects_bad_config(golden_dir: Path) -> None:
    raw = _tiny_raw(golden_dir)
    bad = copy.deepcopy(raw)
    bad["dataset"]["max_seq_len"] = 500
    with pytest.raises(ValueError, match="max_seq_len"):
        build_model(_ns(bad))
    bad = copy.deepcopy(raw)
    bad["model"]["backbone_type"] = "transformer"
    with pytest.raises(ValueError, match="backbone_type"):
        build_model(_ns(bad))
    bad = copy.deepcopy(raw)
    bad["model"]["n_mha_win_size"] = [19, 19]
    with pytest.raises(ValueError, match="n_mha_win_size"):
        build_model(_ns(bad))
    bad = copy.deepcopy(raw)
    bad["model"]["use_rel_pe"] = True
    with pytest.raises(NotImplementedError, match="rel_pe"):
        build_model(_ns(bad))
    model = build_model(_ns(raw))
    with pytest.raises(ValueError, match="bool"):
        model(torch.zeros(1, 32, 576), torch.ones(1, 576))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        model(torch.zeros(1, 32, 576), torch.ones(1, 1, 576, dtype=torch.bool))


def test_empty_classes_get_tiny_prior(golden_dir: Path) -> None:
    raw = _tiny_raw(golden_dir)
    raw["train_cfg"]["head_empty_cls"] = [2]
    head = build_model(_ns(raw)).cls_head
    assert isinstance(head, ClsHead)
    bias = head.cls_head.conv.bias
    assert bias is not None
    assert bias[2].item() == pytest.approx(-np.log((1 - 1e-6) / 1e-6), rel=1e-6)
    assert bias[0].item() == pytest.approx(-np.log(0.99 / 0.01), rel=1e-6)
