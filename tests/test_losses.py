"""Losses: golden parity of the standalone loss check plus hand-derived values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tadformer.assign import assign_batch
from tadformer.losses import (
    LossNormalizer,
    check_finite,
    compute_losses,
    ctr_diou_loss_1d,
    sigmoid_focal_loss,
)
from tadformer.model.outputs import HeadOutputs
from tadformer.model.points import make_points

LEVEL_LENGTHS = [576, 288, 144, 72, 36, 18]
STRIDES = [1, 2, 4, 8, 16, 32]
REG_RANGES = [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)]


# ---------------------------------------------------------------- golden standalone loss


def test_golden_standalone_loss(golden_dir: Path) -> None:
    with np.load(golden_dir / "labels_assign.npz") as data:
        g = {key: data[key] for key in data.files}
    points = make_points(LEVEL_LENGTHS, STRIDES, REG_RANGES)
    cls_targets, reg_targets = assign_batch(
        points,
        [torch.from_numpy(g[f"video{i}/segments"]) for i in range(3)],
        [torch.from_numpy(g[f"video{i}/labels"]) for i in range(3)],
        num_classes=4,
    )
    batched_masks = torch.from_numpy(g["batched_masks"])[:, 0]
    outputs = HeadOutputs(
        cls_logits=[torch.from_numpy(g[f"loss_input/cls_logits_l{lv}"]) for lv in range(6)],
        offsets=[torch.from_numpy(g[f"loss_input/offsets_l{lv}"]) for lv in range(6)],
        masks=[batched_masks[:, :: 2**lv] for lv in range(6)],
        points=points,
    )
    normalizer = LossNormalizer(init_value=100.0, momentum=0.9)
    losses = compute_losses(outputs, cls_targets, reg_targets, normalizer, num_classes=4)
    assert normalizer.value == pytest.approx(float(g["loss/loss_normalizer"]), rel=1e-12)
    assert int(losses["num_pos"]) == 48
    for key in ("cls_loss", "reg_loss", "final_loss"):
        assert losses[key].dtype == torch.float32
        torch.testing.assert_close(losses[key], torch.from_numpy(g[f"loss/{key}"]), rtol=1e-5, atol=0)
    assert check_finite(losses) is None


# ---------------------------------------------------------------- sigmoid focal loss


def test_focal_known_values_at_zero_logit() -> None:
    logits = torch.zeros(2)
    targets = torch.tensor([1.0, 0.0])
    loss = sigmoid_focal_loss(logits, targets, reduction="none")
    # ce = log 2, p_t = 0.5 -> (1 - p_t)^2 = 0.25; alpha_t = 0.25 (positive) / 0.75 (negative)
    expected = torch.tensor([0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)])
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets), expected.sum(), rtol=1e-6, atol=0)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, reduction="mean"), expected.mean(),
                               rtol=1e-6, atol=0)


def test_focal_equals_direct_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=gen, dtype=torch.float64) * 3
    targets = torch.rand(64, 5, generator=gen, dtype=torch.float64)  # soft targets too
    for alpha, gamma in ((0.25, 2.0), (0.6, 1.0), (-1.0, 2.0)):
        p = 1 / (1 + torch.exp(-logits))
        ce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
        p_t = p * targets + (1 - p) * (1 - targets)
        weight = alpha * targets + (1 - alpha) * (1 - targets) if alpha >= 0 else torch.ones_like(p)
        expected = (weight * ce * (1 - p_t) ** gamma).float()
        got = sigmoid_focal_loss(logits.float(), targets.float(), alpha=alpha, gamma=gamma, reduction="none")
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_focal_gamma_zero_alpha_off_is_bce() -> None:
    logits = torch.tensor([-3.0, 0.5, 4.0])
    targets = torch.tensor([0.0, 1.0, 1.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0.0), expected)


def test_focal_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same shape"):
        sigmoid_focal_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="reduction must be one of"):
        sigmoid_focal_loss(torch.zeros(3), torch.zeros(3), reduction="avg")


# ---------------------------------------------------------------- 1-D DIoU loss


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        ((2.0, 3.0), (2.0, 3.0), 0.0),  # identical
        # disjoint (touching at the anchor): inter 0, union 4, iou 0; len_c 4, rho 2 -> 1 + 1/4
        ((0.0, 2.0), (2.0, 0.0), 1.25),
        # nested, centre shift: inter 1 + 2 = 3, union 4 + 4 - 3 = 5, len_c 2 + 3 = 5, rho 1 -> 0.44
        ((1.0, 3.0), (2.0, 2.0), 0.44),
        # target inside prediction: inter 2, union 6, len_c 6, rho 0.5*(4-2-1+1) = 1 -> 2/3 + 1/36
        ((2.0, 4.0), (1.0, 1.0), 2 / 3 + 1 / 36),
        # same centre, different size: iou 2/4, no distance term
        ((1.0, 1.0), (2.0, 2.0), 0.5),
        # all zero: union and len_c clamped to eps -> 1 - 0 + 0
        ((0.0, 0.0), (0.0, 0.0), 1.0),
    ],
)
def test_diou_analytic(pred: tuple[float, float], target: tuple[float, float], expected: float) -> None:
    loss = ctr_diou_loss_1d(torch.tensor([pred]), torch.tensor([target]), reduction="none")
    torch.testing.assert_close(loss, torch.tensor([expected]), rtol=1e-6, atol=1e-7)


def test_diou_reductions_and_symmetry() -> None:
    pred = torch.tensor([[1.0, 3.0], [0.0, 2.0]])
    target = torch.tensor([[2.0, 2.0], [2.0, 0.0]])
    torch.testing.assert_close(ctr_diou_loss_1d(pred, target), torch.tensor(0.44 + 1.25))
    torch.testing.assert_close(ctr_diou_loss_1d(pred, target, reduction="mean"),
                               torch.tensor((0.44 + 1.25) / 2))
    # DIoU is symmetric in its two segments
    torch.testing.assert_close(ctr_diou_loss_1d(target, pred, reduction="none"),
                               ctr_diou_loss_1d(pred, target, reduction="none"))


def test_diou_rejects_negative_offsets() -> None:
    with pytest.raises(ValueError, match="pred_offsets must be >= 0"):
        ctr_diou_loss_1d(torch.tensor([[-0.5, 1.0]]), torch.tensor([[1.0, 1.0]]))
    with pytest.raises(ValueError, match="target_offsets must be >= 0"):
        ctr_diou_loss_1d(torch.tensor([[0.5, 1.0]]), torch.tensor([[1.0, -2.0]]))
    with pytest.raises(ValueError, match=r"\[M, 2\]"):
        ctr_diou_loss_1d(torch.ones(3, 2), torch.ones(2, 2))


# ---------------------------------------------------------------- loss normaliser


def test_normalizer_ema_updates() -> None:
    norm = LossNormalizer()
    assert norm.value == 100.0
    assert norm.update(12) == pytest.approx(91.2, rel=1e-12)  # SPEC: verified first step
    assert norm.update(0) == pytest.approx(0.9 * 91.2 + 0.1 * 1, rel=1e-12)  # max(num_pos, 1)
    assert isinstance(norm.value, float)


def test_normalizer_state_dict_round_trip() -> None:
    norm = LossNormalizer(init_value=50.0, momentum=0.8)
    norm.update(7)
    restored = LossNormalizer()
    restored.load_state_dict(norm.state_dict())
    assert restored.value == norm.value and restored.momentum == 0.8
    with pytest.raises(ValueError, match="missing key 'value'"):
        restored.load_state_dict({})
    with pytest.raises(ValueError, match="momentum"):
        LossNormalizer(momentum=1.0)


# ---------------------------------------------------------------- compute_losses


def _tiny_outputs(logits: torch.Tensor, offsets: torch.Tensor, valid_len: int) -> HeadOutputs:
    """One-level outputs ``[B, T, NC]`` / ``[B, T, 2]`` with the first ``valid_len`` steps valid."""
    batch, length = logits.shape[:2]
    masks = (torch.arange(length) < valid_len).expand(batch, length).clone()
    points = make_points([length], [1], [(0, 100)])
    return HeadOutputs([logits], [offsets], [masks], points)


def test_zero_positives_gives_exact_zero_reg_with_gradient() -> None:
    logits = torch.randn(2, 6, 3, requires_grad=True)
    offsets = torch.rand(2, 6, 2, requires_grad=True)
    outputs = _tiny_outputs(logits, offsets, valid_len=6)
    norm = LossNormalizer()
    losses = compute_losses(outputs, torch.zeros(2, 6, 3), torch.zeros(2, 6, 2), norm, num_classes=3)
    assert losses["reg_loss"].item() == 0.0 and int(losses["num_pos"]) == 0
    assert norm.value == pytest.approx(0.9 * 100 + 0.1 * 1, rel=1e-12)
    losses["final_loss"].backward()
    assert offsets.grad is not None and not offsets.grad.any()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_compute_losses_hand_values_and_padding_ignored() -> None:
    # 1 video, 4 steps, 2 classes; steps 0..2 valid, step 3 padded (its logits are huge and its
    # target positive: neither may count)
    logits = torch.tensor([[[0.0, 0.0], [1.0, -1.0], [0.0, 2.0], [50.0, -50.0]]])
    offsets = torch.tensor([[[1.0, 3.0], [5.0, 5.0], [0.0, 0.0], [9.0, 9.0]]])
    cls_targets = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]]])
    reg_targets = torch.tensor([[[2.0, 2.0], [-7.0, 3.0], [-1.0, -1.0], [1.0, 1.0]]])  # leftovers unread
    outputs = _tiny_outputs(logits, offsets, valid_len=3)
    norm = LossNormalizer()
    losses = compute_losses(outputs, cls_targets, reg_targets, norm, num_classes=2)
    assert int(losses["num_pos"]) == 1
    assert norm.value == pytest.approx(90.1, rel=1e-12)
    expected_cls = sigmoid_focal_loss(logits[0, :3], cls_targets[0, :3]) / norm.value
    torch.testing.assert_close(losses["cls_loss"], expected_cls, rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["reg_loss"], torch.tensor(0.44 / norm.value), rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["final_loss"], losses["cls_loss"] + losses["reg_loss"])
    # inputs untouched
    assert cls_targets[0, 0].tolist() == [1.0, 0.0] and logits[0, 3].tolist() == [50.0, -50.0]


def test_label_smoothing_and_auto_balance() -> None:
    logits = torch.tensor([[[0.5, -1.0, 2.0], [-2.0, 0.0, 1.0]]])
    offsets = torch.tensor([[[1.0, 3.0], [1.0, 1.0]]])
    cls_targets = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    reg_targets = torch.tensor([[[2.0, 2.0], [0.0, 0.0]]])
    eps = 0.1
    losses = compute_losses(_tiny_outputs(logits, offsets, 2), cls_targets, reg_targets, LossNormalizer(),
                            num_classes=3, label_smoothing=eps, loss_weight=-1.0)
    smoothed = cls_targets[0] * (1 - eps) + eps / 4  # divides by NC + 1, as the official code
    assert smoothed[0].tolist() == pytest.approx([0.025, 0.925, 0.025])
    expected_cls = sigmoid_focal_loss(logits[0], smoothed) / 90.1
    torch.testing.assert_close(losses["cls_loss"], expected_cls, rtol=1e-6, atol=0)
    reg = 0.44 / 90.1  # below 0.01 -> weight = cls / 0.01
    torch.testing.assert_close(losses["reg_loss"], torch.tensor(reg), rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["final_loss"], expected_cls + reg * expected_cls / 0.01,
                               rtol=1e-6, atol=0)


def test_multi_hot_target_counts_once_as_positive() -> None:
    logits = torch.zeros(1, 2, 2)
    offsets = torch.ones(1, 2, 2)
    cls_targets = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    losses = compute_losses(_tiny_outputs(logits, offsets, 2), cls_targets, torch.ones(1, 2, 2),
                            LossNormalizer(), num_classes=2)
    assert int(losses["num_pos"]) == 1
    # two positive and two negative class entries at logit 0: (2 * 0.25 + 2 * 0.75) * 0.25 * log 2
    torch.testing.assert_close(losses["cls_loss"], torch.tensor(0.5 * math.log(2) / 90.1), rtol=1e-6, atol=0)
    assert losses["reg_loss"].item() == 0.0  # identical offsets


def test_compute_losses_shape_errors() -> None:
    outputs = _tiny_outputs(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), 4)
    with pytest.raises(ValueError, match="cls_targets must have shape"):
        compute_losses(outputs, torch.zeros(1, 4, 3), torch.zeros(1, 4, 2), LossNormalizer(), num_classes=2)
    with pytest.raises(ValueError, match="reg_targets must have shape"):
        compute_losses(outputs, torch.zeros(1, 4, 2), torch.zeros(1, 5, 2), LossNormalizer(), num_classes=2)


def test_check_finite_names_the_term() -> None:
    finite = {"cls_loss": torch.tensor(1.0), "reg_loss": torch.tensor(0.5), "final_loss": torch.tensor(1.5)}
    assert check_finite(finite) is None
    assert check_finite({**finite, "reg_loss": torch.tensor(float("nan"))}) == "reg_loss"
    assert check_finite({**finite, "final_loss": torch.tensor(float("inf"))}) == "final_loss"
    assert check_finite({**finite, "cls_loss": torch.tensor(float("inf")),
                         "final_loss": torch.tensor(float("inf"))}) == "cls_loss"
