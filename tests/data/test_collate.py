"""Batching and masks against the official batching (golden forward_eval.npz / labels_assign.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tadformer.data.collate import collate_eval, collate_train, padded_length
from tadformer.data.types import VideoSample

MAX_SEQ_LEN = 576  # the tiny golden config
MAX_DIV_FACTOR = 576


def _sample(feats: torch.Tensor, video_id: str = "v", num_segments: int = 1) -> VideoSample:
    return VideoSample(
        video_id=video_id,
        feats=feats,
        segments_grid=torch.arange(2 * num_segments, dtype=torch.float32).reshape(-1, 2),
        labels=torch.zeros(num_segments, dtype=torch.int64),
        fps=29.97,
        duration_sec=12.5,
        feat_stride=4,
        feat_num_frames=16,
    )


@pytest.mark.parametrize(
    ("num_steps", "expected"), [(1, 2304), (2304, 2304), (2305, 2880), (2880, 2880), (12534, 12672)]
)
def test_padded_length_thumos(num_steps: int, expected: int) -> None:
    assert padded_length(num_steps, 2304, 576) == expected


@pytest.mark.parametrize("i", range(4))
def test_eval_batching_matches_golden(golden_dir: Path, i: int) -> None:
    golden = np.load(golden_dir / "forward_eval.npz")
    inputs, masks = golden[f"video{i}/batched_inputs"], golden[f"video{i}/batched_masks"]
    num_steps = int(masks.sum())
    batch = collate_eval(
        [_sample(torch.from_numpy(inputs[0, :, :num_steps].copy()))], MAX_SEQ_LEN, MAX_DIV_FACTOR
    )
    assert batch.feats.dtype == torch.float32 and batch.mask.dtype == torch.bool
    torch.testing.assert_close(batch.feats, torch.from_numpy(inputs), rtol=0, atol=0)
    assert torch.equal(batch.mask, torch.from_numpy(masks[:, 0]))
    assert batch.metas[0].length == num_steps


def test_train_batching_masks_match_golden(golden_dir: Path) -> None:
    golden = np.load(golden_dir / "labels_assign.npz")
    lengths = [int(golden[f"video{i}/length"]) for i in range(3)]
    gen = torch.Generator().manual_seed(0)
    samples = [_sample(torch.randn(5, n, generator=gen), f"v{i}") for i, n in enumerate(lengths)]
    batch = collate_train(samples, MAX_SEQ_LEN)
    assert torch.equal(batch.mask, torch.from_numpy(golden["batched_masks"][:, 0]))
    assert batch.feats.shape == (3, 5, MAX_SEQ_LEN)
    for i, (s, n) in enumerate(zip(samples, lengths)):
        torch.testing.assert_close(batch.feats[i, :, :n], s.feats, rtol=0, atol=0)
        assert bool((batch.feats[i, :, n:] == 0).all())


def test_train_pads_to_max_seq_len_even_if_all_short() -> None:
    batch = collate_train([_sample(torch.ones(2, 3)), _sample(torch.ones(2, 7))], 16)
    assert batch.feats.shape == (2, 2, 16)
    assert batch.mask.sum(1).tolist() == [3, 7] and batch.lengths.tolist() == [3, 7]


def test_train_rejects_long_sample() -> None:
    with pytest.raises(ValueError, match=r"'long'.*T=17 > max_seq_len=16"):
        collate_train([_sample(torch.ones(2, 3)), _sample(torch.ones(2, 17), "long")], 16)


def test_eval_multi_video_pads_to_longest_need() -> None:
    samples = [_sample(torch.ones(3, 5)), _sample(torch.full((3, 700), 2.0), "b", num_segments=0)]
    batch = collate_eval(samples, MAX_SEQ_LEN, MAX_DIV_FACTOR)
    assert batch.feats.shape == (2, 3, 1152)
    assert batch.mask.sum(1).tolist() == [5, 700]
    assert batch.feats[0].sum().item() == 15.0 and batch.feats[1].sum().item() == 2.0 * 3 * 700
    assert batch.segments_grid[1].shape == (0, 2) and batch.labels[1].shape == (0,)
    meta = batch.metas[1]
    assert (
        meta.video_id,
        meta.fps,
        meta.duration_sec,
        meta.feat_stride,
        meta.feat_num_frames,
        meta.length,
    ) == ("b", 29.97, 12.5, 4, 16, 700)
    assert len(batch) == 2


def test_bad_batches() -> None:
    with pytest.raises(ValueError, match="empty"):
        collate_eval([], 16, 16)
    with pytest.raises(ValueError, match="different channel counts"):
        collate_train([_sample(torch.ones(2, 3)), _sample(torch.ones(4, 3))], 16)


def test_batch_to_device_moves_everything() -> None:
    batch = collate_train([_sample(torch.ones(2, 3))], 8)
    moved = batch.to("meta")
    assert moved.feats.device.type == "meta" and moved.mask.device.type == "meta"
    assert moved.segments_grid[0].device.type == "meta" and moved.labels[0].device.type == "meta"
    assert batch.feats.device.type == "cpu" and moved.metas == batch.metas
