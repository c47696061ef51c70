"""TriDet against its golden files (``tests/golden/variants``, cases ``tridet`` and ``tridet_icv01``):
init, layout, sizes, eval forward (boundary heads, centre head, Trident decoding), the step-1 loss pieces,
input noise, and the dead SGP branches of ``init_conv_vars: 0``."""

from __future__ import annotations

import copy
import json
import types
from typing import Any

import numpy as np
import pytest
import torch

from tadformer.assign import assign_batch
from tadformer.engine.optim import param_groups
from tadformer.losses import _regression_pairs, ctr_diou_loss_1d, ctr_iou_1d, sigmoid_focal_loss
from tadformer.model import SGPBlock, TriDet, build_model, trident_offsets
from tadformer.model.sgp import window_kernel
from variants_golden import VARIANTS, config, eval_forward, initial_model, npz, prefixed, raw_config, three_steps

SGP_CONVS = ("psi", "fc", "convw", "convkw", "global_fc")


def _ns(d: Any) -> Any:
    return types.SimpleNamespace(**{k: _ns(v) for k, v in d.items()}) if isinstance(d, dict) else d


def _branch_keys(sd: dict[str, Any]) -> list[str]:
    return [k for k in sd if k.split(".")[-2] in SGP_CONVS]


@pytest.mark.parametrize("case", ["tridet", "tridet_icv01"])
def test_init_is_bit_exact_with_the_repository_seed(case: str) -> None:
    torch.manual_seed(1234567891)
    model = build_model(config(case))
    assert isinstance(model, TriDet)
    sd, ref = model.state_dict(), npz(f"{case}_weights")
    assert list(sd) == list(ref) and len(sd) == 192
    for key, value in ref.items():
        assert np.array_equal(sd[key].numpy(), value), key
    branch = _branch_keys(sd)
    assert len(branch) == 70
    weights = torch.cat([sd[k].flatten() for k in branch if k.endswith("weight")])
    if case == "tridet":  # init_conv_vars 0: the branches start at exactly zero
        assert all(float(sd[k].abs().max()) == 0.0 for k in branch)
    else:  # 0.1 is a standard deviation, not a variance
        assert 0.09 < float(weights.std()) < 0.11
    # LayerScale only in the five branch blocks; all heads start at the 0.01 prior
    assert sum(k.endswith("drop_path_out.scale") for k in sd) == 5
    for head in ("cls_head", "start_head", "end_head"):
        torch.testing.assert_close(sd[f"{head}.cls_head.conv.bias"], torch.full((4,), -4.59512), atol=1e-5, rtol=0)
    assert sd["reg_head.offset_head.conv.weight"].shape == (34, 32, 3)


def test_builds_from_the_raw_repository_dict_too() -> None:
    torch.manual_seed(1234567891)
    sd = build_model(_ns(raw_config("tridet"))).state_dict()
    assert all(np.array_equal(sd[k].numpy(), v) for k, v in npz("tridet_weights").items())


def test_full_size_thumos_counts_equal_the_manifest() -> None:
    full = json.loads((VARIANTS / "manifest.json").read_text())["full_size_thumos"]["tridet"]
    raw = copy.deepcopy(raw_config("tridet"))
    raw["dataset"].update(input_dim=2048, num_classes=20, max_seq_len=2304)
    raw["model"].update(embd_dim=512, fpn_dim=512, head_dim=512, sgp_mlp_dim=768)
    model = build_model(_ns(raw))
    groups = param_groups(model, 0.025)
    assert sum(p.numel() for p in model.parameters()) == full["total_parameters"] == 15_989_604
    assert len(model.state_dict()) == full["num_state_dict_entries"]
    assert [len(g["params"]) for g in groups] == [full["num_decay_tensors"], full["num_no_decay_tensors"]]
    assert sum(p.numel() for p in groups[0]["params"]) == full["decay_elements"]
    assert sum(p.numel() for p in groups[1]["params"]) == full["no_decay_elements"]


@pytest.mark.parametrize(("case", "video"), [("tridet", 0), ("tridet", 1), ("tridet_icv01", 0)])
def test_eval_forward_matches_golden(case: str, video: int) -> None:
    fwd = npz(f"{case}_forward")
    batch, out, fpn = eval_forward(case, video)
    assert batch.feats.shape[-1] == int(fwd[f"video{video}/T_pad"])
    for lvl in range(6):
        def g(name: str, lvl: int = lvl) -> torch.Tensor:
            return torch.from_numpy(fwd[f"video{video}/{name}_l{lvl}"])

        assert torch.equal(out.masks[lvl], g("masks"))
        for name, got in (("cls_logits", out.cls_logits[lvl]), ("start_logits", out.extras["start_logits"][lvl]),
                          ("end_logits", out.extras["end_logits"][lvl]),
                          ("reg_head_out", out.extras["reg_head_out"][lvl])):
            torch.testing.assert_close(got, g(name), atol=1e-5, rtol=1e-5,
                                       msg=lambda m, n=name, lv=lvl: f"{n} l{lv}: {m}")
        assert float(out.extras["reg_head_out"][lvl].min()) >= 0.0  # ReLU after the Scale
        torch.testing.assert_close(out.offsets[lvl][0], g("decoded_offsets"), atol=1e-5, rtol=0)
    for lvl in (3, 4, 5):
        key = f"video{video}/fpn_feats_l{lvl}"
        if key in fwd:
            torch.testing.assert_close(fpn[lvl], torch.from_numpy(fwd[key]), atol=1e-5, rtol=1e-5)


def test_trident_rule_in_float64() -> None:
    """The README's written decoding rule, re-derived per point and class, equals :func:`trident_offsets`."""
    fwd = npz("tridet_forward")
    lvl, nb = 2, 16
    s, e, r = (torch.from_numpy(fwd[f"video0/{k}_l{lvl}"][0]).double()
               for k in ("start_logits", "end_logits", "reg_head_out"))
    got = trident_offsets(s.float()[None], e.float()[None], r.float()[None], nb)[0]
    t_len = s.shape[0]
    for t in (0, 1, 57, t_len - 2, t_len - 1):
        for c in range(4):
            d = torch.arange(nb + 1, dtype=torch.float64)
            left = torch.stack([(s[t - k, c] if t - k >= 0 else 0.0) + r[t, nb - k] for k in range(nb + 1)])
            right = torch.stack([(e[t + k, c] if t + k < t_len else 0.0) + r[t, nb + 1 + k] for k in range(nb + 1)])
            want = torch.stack([(d * left.softmax(0)).sum(), (d * right.softmax(0)).sum()])
            torch.testing.assert_close(got[t, c].double(), want, atol=3e-6, rtol=0)
    assert 7.5 < float(got[0, :, 0].min())  # at t = 0 the missing neighbours (logit 0) pull the left offset out


def test_step1_targets_and_loss_pieces() -> None:
    steps = npz("tridet_train_step")
    run = three_steps("tridet")
    out, targets = run["step1"]["outputs"], run["step1"]["targets"]
    valid = torch.cat(out.masks, dim=1)
    pos = (targets.cls_targets.sum(-1) > 0) & valid
    assert torch.equal(valid, torch.from_numpy(steps["step1/targets/valid_mask"]))
    assert torch.equal(pos, torch.from_numpy(steps["step1/targets/pos_mask"]))
    assert torch.equal(targets.cls_targets, torch.from_numpy(steps["step1/targets/cls_targets"]))
    torch.testing.assert_close(targets.reg_targets[pos], torch.from_numpy(steps["step1/targets/reg_targets"])[pos],
                               atol=1e-6, rtol=1e-5)
    # TriDet's assignment is ActionFormer's, bit for bit
    inputs = npz("inputs")
    cls_af, reg_af = assign_batch(out.points,
                                  [torch.from_numpy(inputs[f"train/step1/video{j}/segments"]) for j in range(2)],
                                  [torch.from_numpy(inputs[f"train/step1/video{j}/labels"]) for j in range(2)], 4)
    assert torch.equal(cls_af, targets.cls_targets) and torch.equal(reg_af, targets.reg_targets)
    # the (item, point, class) pairs in row-major order: 43 terms for 39 points
    triples = torch.nonzero(targets.cls_targets * pos[..., None])
    assert triples.shape[0] == 43
    for col, key in enumerate(("batch", "point", "cls")):
        assert torch.equal(triples[:, col], torch.from_numpy(steps[f"step1/pairs/{key}"]))
    pred, gt, _ = _regression_pairs(torch.cat(out.offsets, 1), targets.cls_targets, targets.reg_targets, pos)
    g = lambda k: torch.from_numpy(steps[f"step1/pairs/{k}"])  # noqa: E731
    torch.testing.assert_close(pred, g("pred_offsets"), atol=1e-5, rtol=0)
    torch.testing.assert_close(gt, g("gt_offsets"), atol=1e-6, rtol=1e-5)
    one_minus = 1.0 - ctr_iou_1d(pred, gt)
    torch.testing.assert_close(one_minus, g("one_minus_iou"), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close((1 - one_minus) ** 0.2, g("iou_weight"), atol=1e-6, rtol=1e-5)
    logits = torch.cat(out.cls_logits, 1)[triples[:, 0], triples[:, 1], triples[:, 2]]
    torch.testing.assert_close(sigmoid_focal_loss(logits, torch.ones_like(logits), reduction="none"),
                               g("focal_unweighted"), atol=1e-6, rtol=1e-5)
    diou = ctr_diou_loss_1d(pred, gt, reduction="none")
    torch.testing.assert_close(diou, g("diou_loss"), atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(float(diou.sum()) / 93.9, steps["reg_loss"][0], rtol=1e-5)


def test_droppath_draw_rule_and_call_order() -> None:
    steps = npz("tridet_train_step")
    model = initial_model("tridet")
    from tadformer.model.layers import AffineDropPath

    names = [n for n, mod in model.named_modules() if isinstance(mod, AffineDropPath)]
    assert names == [str(n) for n in steps["droppath_call_order"]]
    for s in (1, 2, 3):
        u = torch.from_numpy(steps[f"step{s}/droppath_uniform_draws"])
        assert torch.equal(torch.floor(torch.tensor(0.9, dtype=torch.float32) + u),
                           torch.from_numpy(steps[f"step{s}/droppath_keep_mask"]))


def test_input_noise_is_drawn_after_padding_before_the_drop_paths() -> None:
    steps = prefixed(npz("tridet_train_step"), "input_noise")
    from variants_golden import train_batch

    model = initial_model("tridet").train()
    assert model.input_noise == 0.0005  # the configured value
    batch = train_batch(1)
    seen: dict[str, Any] = {}

    def keep_inputs(mod: Any, args: Any) -> None:
        seen.setdefault("inputs", args[0].detach().clone())

    def keep_rng(mod: Any, args: Any) -> None:
        seen.setdefault("rng", torch.get_rng_state())

    model.backbone.register_forward_pre_hook(keep_inputs)
    model.backbone.branch[0].drop_path_out.register_forward_pre_hook(keep_rng)
    torch.manual_seed(int(steps["seed"]))
    model(batch.feats, batch.mask)
    idx = steps["time_index"]
    assert list(seen["inputs"].shape) == steps["shape"].tolist()
    assert torch.equal(seen["inputs"][:, :, idx], steps["batched_inputs_at_time_index"])
    gen = torch.Generator()
    gen.set_state(seen["rng"])
    assert torch.equal(torch.rand(2, generator=gen), steps["first_droppath_draw_after_noise"])
    # eval mode adds nothing
    model.eval()
    with torch.no_grad():
        a = model(batch.feats, batch.mask).cls_logits[0]
        b = model(batch.feats, batch.mask).cls_logits[0]
    assert torch.equal(a, b)


def test_init_conv_vars_zero_keeps_the_sgp_branches_dead() -> None:
    """With TriDet's released value 0 the five depthwise convs get zero gradient and stay zero."""
    run = three_steps("tridet")
    branch = _branch_keys(run["weights"])
    assert all(float(run["grads1"][k].abs().max()) == 0.0 for k in branch)
    assert all(float(run["weights"][k].abs().max()) == 0.0 for k in branch)
    live = three_steps("tridet_icv01")
    assert any(float(live["grads1"][k].abs().max()) > 0.0 for k in branch)
    # losses differ from the 4th significant digit on
    a, b = run["records"][0]["cls_loss"], live["records"][0]["cls_loss"]
    assert 1e-5 < abs(a - b) / a < 1e-2


def test_dead_block_reduces_to_skip_plus_layernorm_plus_mlp() -> None:
    torch.manual_seed(0)
    block = SGPBlock(32, 1, 2, k=5, n_hidden=48, path_pdrop=0.1, init_conv_vars=0.0).eval()
    x = torch.randn(2, 32, 16)
    mask = torch.arange(16)[None, None] < torch.tensor([16, 10])[:, None, None]
    y, m = block(x, mask)
    pooled = torch.nn.functional.max_pool1d(x, 3, 2, 1)
    s1, s2 = block.drop_path_out.scale, block.drop_path_mlp.scale
    z = pooled * m + s1 * block.ln(pooled)
    torch.testing.assert_close(y, z + s2 * block.mlp(block.gn(z)))
    assert window_kernel(1, 5) == 11 and window_kernel(3, 1.5) == 7 and window_kernel(1, 1.5) == 3


def test_boundary_heads_see_detached_features() -> None:
    run = three_steps("tridet")
    groups, diag = run["groups"], run["diag"]
    reg_only = dict(zip(groups, diag["reg_loss"]))
    cls_only = dict(zip(groups, diag["cls_loss"]))
    assert reg_only["cls_head"] == 0.0 and cls_only["start_head"] > 0.0  # the IoU weight is not detached
    # the regression loss reaches the backbone only through the centre head
    model = initial_model("tridet")
    assert model.start_head.detach_feat and model.end_head.detach_feat and not model.cls_head.detach_feat


@pytest.mark.parametrize("changes", [
    {"use_trident_head": False},
    {"backbone_type": "conv"},
    {"downsample_type": "avg", "n_sgp_win_size": 3, "use_abs_pe": True},
])
def test_other_tridet_options_train(changes: dict[str, Any]) -> None:
    from tadformer.config import config_from_dict
    from variants_golden import batch_losses_from, train_batch

    raw = copy.deepcopy(raw_config("tridet"))
    raw["model"].update(changes)
    cfg = config_from_dict(raw)
    model = build_model(cfg).train()
    batch = train_batch(1)
    out = model(batch.feats, batch.mask)
    trident = changes.get("use_trident_head", True)
    assert out.offsets[0].shape == ((2, 576, 4, 2) if trident else (2, 576, 2))
    assert ("start_head.cls_head.conv.bias" in model.state_dict()) == trident
    targets = model.assign(out, batch.segments_grid, batch.labels, 4, cfg.train_cfg)
    losses = batch_losses_from(model, out, targets, cfg)
    losses["final_loss"].backward()
    assert torch.isfinite(losses["final_loss"]) and model.loss_options == (
        {"iou_weight_power": 0.2} if trident else {})
