"""random_truncate (official truncate_feats semantics, SPEC §2.4): hand-worked cases and invariants."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tadformer.data import transforms
from tadformer.data.transforms import crop_length_range, random_truncate, window_segments
from tadformer.data.types import VideoSample


def _sample(num_steps: int, segments: list[list[float]], channels: int = 2) -> VideoSample:
    # feats[c, t] = t + 1000 c, so the crop start can be read back from the output
    feats = torch.arange(num_steps, dtype=torch.float32)[None, :] + 1000.0 * torch.arange(channels)[:, None]
    return VideoSample(
        video_id="v",
        feats=feats,
        segments_grid=torch.tensor(segments, dtype=torch.float32).reshape(-1, 2),
        labels=torch.arange(len(segments), dtype=torch.int64),
        fps=30.0,
        duration_sec=100.0,
        feat_stride=4,
        feat_num_frames=16,
    )


def _fixed_draws(monkeypatch: pytest.MonkeyPatch, values: list[int]) -> list[tuple[int, int]]:
    """Replace the random integer source by a fixed sequence; records the (low, high) ranges asked."""
    it: Iterator[int] = iter(values)
    asked: list[tuple[int, int]] = []

    def fake(low: int, high: int, generator: torch.Generator | None) -> int:
        asked.append((low, high))
        value = next(it)
        assert low <= value <= high
        return value

    monkeypatch.setattr(transforms, "_randint", fake)
    return asked


SEGS = [[0.0, 4.0], [5.0, 9.0], [14.0, 20.0], [2.0, 6.0], [17.0, 21.0]]


def test_hand_worked_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # T=20 > max_seq_len=10: L=10; window st=6, ed=16, clip range [4, 18]
    #   [0,4]  -> [4,4]   ratio 0     drop
    #   [5,9]  -> [5,9]   ratio 1     keep -> [-1, 3]
    #   [14,20]-> [14,18] ratio 4/6   keep -> [8, 12]
    #   [2,6]  -> [4,6]   ratio 0.5   keep (>=) -> [-2, 0]
    #   [17,21]-> [17,18] ratio 0.25  drop
    asked = _fixed_draws(monkeypatch, [6])
    sample = _sample(20, SEGS)
    out = random_truncate(sample, 10, 0.5, 2.0, (0.9, 1.0), generator=None)
    assert asked == [(0, 10)]
    torch.testing.assert_close(out.feats, sample.feats[:, 6:16], rtol=0, atol=0)
    torch.testing.assert_close(
        out.segments_grid, torch.tensor([[-1.0, 3.0], [8.0, 12.0], [-2.0, 0.0]]), rtol=0, atol=0
    )
    assert out.labels.tolist() == [1, 2, 3]
    assert out.fps == 30.0 and out.video_id == "v"


def test_window_segments_ratios() -> None:
    left, right, ratio = window_segments(torch.tensor(SEGS), 6, 16, 2.0)
    assert left.tolist() == [4.0, 5.0, 14.0, 4.0, 17.0]
    assert right.tolist() == [4.0, 9.0, 18.0, 6.0, 18.0]
    torch.testing.assert_close(ratio, torch.tensor([0.0, 1.0, 4 / 6, 0.5, 0.25]))


def test_retries_until_a_segment_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # only segment [0, 4]; window st=10 keeps nothing, st=0 keeps it
    asked = _fixed_draws(monkeypatch, [10, 10, 0])
    out = random_truncate(_sample(20, [[0.0, 4.0]]), 10, 0.5, 2.0, None, generator=None)
    assert len(asked) == 3 and out.labels.tolist() == [0]
    assert out.feats[0, 0].item() == 0.0


def test_all_trials_fail_uses_last_window(monkeypatch: pytest.MonkeyPatch) -> None:
    _fixed_draws(monkeypatch, [10, 9, 10])
    out = random_truncate(_sample(20, [[0.0, 4.0]]), 10, 0.5, 2.0, None, generator=None, max_num_trials=3)
    assert out.feats[0, 0].item() == 10.0 and out.segments_grid.shape == (0, 2) and out.labels.shape == (0,)


def test_has_action_false_takes_first_window(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fixed_draws(monkeypatch, [10])
    out = random_truncate(_sample(20, [[0.0, 4.0]]), 10, 0.5, 2.0, None, generator=None, has_action=False)
    assert len(asked) == 1 and out.labels.numel() == 0


def test_crop_ratio_path_draws_length_then_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # T=15 <= max_seq_len: L in [round(13.5)=14 (half to even), 15]; L=14 then st in [0, 1]
    asked = _fixed_draws(monkeypatch, [14, 1])
    out = random_truncate(_sample(15, [[3.0, 8.0]]), 2304, 0.5, 2.0, (0.9, 1.0), generator=None)
    assert asked == [(14, 15), (0, 1)]
    assert out.length == 14 and out.segments_grid.tolist() == [[2.0, 7.0]]


def test_crop_length_equal_to_t_returns_input(monkeypatch: pytest.MonkeyPatch) -> None:
    _fixed_draws(monkeypatch, [15])
    sample = _sample(15, [[3.0, 8.0]])
    assert random_truncate(sample, 2304, 0.5, 2.0, (0.9, 1.0), generator=None) is sample


@pytest.mark.parametrize(
    ("num_steps", "expected"), [(5, (4, 5)), (15, (14, 15)), (25, (22, 25)), (1, (1, 1)), (100, (90, 100))]
)
def test_crop_length_range_rounds_half_to_even(num_steps: int, expected: tuple[int, int]) -> None:
    assert crop_length_range(num_steps, (0.9, 1.0)) == expected


def test_short_video_without_crop_ratio_unchanged() -> None:
    sample = _sample(10, SEGS)
    assert random_truncate(sample, 10, 0.5, 2.0, None, torch.Generator().manual_seed(0)) is sample


def test_invariants_and_purity_over_seeds() -> None:
    gen_data = torch.Generator().manual_seed(123)
    lengths_seen = set()
    for seed in range(60):
        num_steps = int(torch.randint(5, 60, (1,), generator=gen_data))
        starts = torch.rand(6, generator=gen_data) * num_steps
        segs = torch.stack([starts, starts + 0.5 + torch.rand(6, generator=gen_data) * 15], dim=1)
        sample = _sample(num_steps, segs.tolist())
        before = (sample.feats.clone(), sample.segments_grid.clone(), sample.labels.clone())
        max_len, offset = 30, 2.0
        out = random_truncate(sample, max_len, 0.5, offset, (0.9, 1.0), torch.Generator().manual_seed(seed))
        # the input is untouched
        for a, b in zip(before, (sample.feats, sample.segments_grid, sample.labels)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        length = out.length
        lengths_seen.add(length / num_steps)
        assert length <= max_len and length <= num_steps
        if num_steps <= max_len:
            assert crop_length_range(num_steps, (0.9, 1.0))[0] <= length
        if out is sample:
            continue
        assert out.feats.data_ptr() != sample.feats.data_ptr()
        start = int(out.feats[0, 0].item())
        torch.testing.assert_close(out.feats, sample.feats[:, start : start + length], rtol=0, atol=0)
        assert bool((out.segments_grid >= -offset).all()) and bool(
            (out.segments_grid <= length + offset).all()
        )
        original = sample.segments_grid[out.labels]  # labels are the original row indices
        kept = out.segments_grid[:, 1] - out.segments_grid[:, 0]
        assert bool((kept >= 0.5 * (original[:, 1] - original[:, 0]) - 1e-5).all())
        torch.testing.assert_close(
            out.segments_grid + start,
            torch.maximum(
                torch.minimum(original, torch.tensor(start + length + offset)), torch.tensor(start - offset)
            ),
        )
    assert len(lengths_seen) > 5


def test_deterministic_for_a_seed() -> None:
    sample = _sample(200, [[float(i), float(i) + 6.0] for i in range(0, 190, 10)])
    outs = [random_truncate(sample, 50, 0.5, 2.0, None, torch.Generator().manual_seed(s)) for s in (7, 7)]
    torch.testing.assert_close(outs[0].feats, outs[1].feats, rtol=0, atol=0)
    torch.testing.assert_close(outs[0].segments_grid, outs[1].segments_grid, rtol=0, atol=0)
    starts = {
        random_truncate(sample, 50, 0.5, 2.0, None, torch.Generator().manual_seed(s)).feats[0, 0].item()
        for s in range(10)
    }
    assert len(starts) > 5  # different seeds give different windows


def test_rejects_zero_trials() -> None:
    with pytest.raises(ValueError, match="max_num_trials"):
        random_truncate(_sample(20, SEGS), 10, 0.5, 2.0, None, None, max_num_trials=0)
