"""The streaming clip schedule of ``extract_video``, checked with stand-in backbones on videos whose
frames are known: which frames each clip holds, batching, crops, the grid -> seconds rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tadformer.video.decode import VideoError, write_test_video
from tadformer.video.extract import ExtractSettings, extract_video, num_feature_steps
from tadformer.video.preprocess import resize_frames, scale_codes

FPS = 30


def _flat_video(path: Path, levels: np.ndarray, size_hw: tuple[int, int] = (64, 96)) -> Path:
    """Frame k is a uniform grey of ``levels[k]``."""
    frames = np.broadcast_to(levels.astype(np.uint8)[:, None, None, None], (len(levels), *size_hw, 3)).copy()
    write_test_video(path, frames, fps=FPS)
    return path


def _frame_means(x: torch.Tensor) -> torch.Tensor:
    """Stand-in backbone: the mean of each of the 16 frames of each clip, ``[B, 16]``."""
    return x.mean(dim=(1, 3, 4))


def _level_of_value(v: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.rint((np.asarray(v, dtype=np.float64) + 1.0) * 255.0 / 2.0)


@pytest.fixture(scope="module")
def ramp_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    levels = 10 + 4 * np.arange(53)  # frame k has grey level 10 + 4k: its index can be read back
    return _flat_video(tmp_path_factory.mktemp("ramp") / "ramp.mkv", levels)


def test_rgb_clip_i_holds_frames_4i_to_4i_plus_15(ramp_video: Path) -> None:
    res = extract_video(ramp_video, {"rgb": _frame_means}, ExtractSettings(streams=("rgb",), batch_size=3))
    assert res.num_frames == 53 and res.first_frame == 0 and res.fps == FPS
    assert res.features.shape == ((53 - 16) // 4 + 1, 16) == (10, 16)
    frames = (_level_of_value(res.features) - 10) / 4  # [T, 16] frame indices
    expected = 4 * np.arange(10)[:, None] + np.arange(16)[None, :]
    assert np.abs(frames - expected).max() <= 0.5


def test_two_stream_list_starts_at_frame_one_like_dense_flow(ramp_video: Path) -> None:
    """With flow, the RGB item of pair (k, k+1) is frame k+1: clip i holds frames 4i+1 .. 4i+16."""
    zeros = lambda x: torch.zeros(x.shape[0], 1)  # noqa: E731
    res = extract_video(ramp_video, {"rgb": _frame_means, "flow": zeros},
                        ExtractSettings(streams=("rgb", "flow"), flow_method="dis", batch_size=4))
    assert res.first_frame == 1
    assert res.features.shape == ((53 - 17) // 4 + 1, 17) == (10, 17)
    frames = (_level_of_value(res.features[:, :16]) - 10) / 4
    expected = 4 * np.arange(10)[:, None] + np.arange(1, 17)[None, :]
    assert np.abs(frames - expected).max() <= 0.5


def test_flow_stream_sees_zero_motion_on_a_static_video(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, size=(1, 64, 96, 3), dtype=np.uint8).repeat(21, axis=0)
    path = tmp_path / "still.mkv"
    write_test_video(path, still, fps=FPS)
    seen = []

    def flow_net(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return x.mean(dim=(2, 3, 4))

    res = extract_video(path, {"flow": flow_net}, ExtractSettings(streams=("flow",), flow_method="dis"))
    assert res.features.shape == (2, 2)
    x = torch.cat(seen)
    assert x.shape == (2, 2, 16, 224, 224)
    code_128 = 128 * 2 / 255 - 1  # zero flow is code 128 (round(127.5) = 128)
    assert torch.allclose(x, torch.full_like(x, code_128), atol=2 * 2 / 255)


@pytest.mark.parametrize("streams", [("rgb",), ("rgb", "flow")])
def test_batch_size_does_not_change_features(ramp_video: Path, streams: tuple[str, ...]) -> None:
    nets = {s: _frame_means for s in streams}
    runs = [extract_video(ramp_video, nets, ExtractSettings(streams=streams, flow_method="dis", batch_size=b))
            for b in (1, 4, 7, 64)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.features, runs[0].features)


def test_brightest_cell_lands_within_one_cell_of_the_known_time(tmp_path: Path) -> None:
    """A video dark except frames 150..165 (5.0 s .. 5.53 s): the brightest feature, turned into
    seconds by the detector's rule t = (grid * 4 + 8) / fps, is within one cell of 5.27 s."""
    levels = np.full(300, 20)
    levels[150:166] = 230
    path = _flat_video(tmp_path / "flash.mkv", levels)
    brightness = lambda x: x.mean(dim=(1, 2, 3, 4))[:, None]  # noqa: E731
    res = extract_video(path, {"rgb": brightness}, ExtractSettings(streams=("rgb",)))
    cell = int(np.argmax(res.features[:, 0]))
    t_sec = (cell * 4 + 8) / FPS
    centre_sec = (150 + 166) / 2 / FPS
    assert abs(t_sec - centre_sec) <= 4 / FPS


def test_ten_crop_averages_the_ten_boxes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, size=(16, 180, 320, 3), dtype=np.uint8)
    path = tmp_path / "noise.mkv"
    write_test_video(path, frames, fps=FPS)
    corner = lambda x: x[:, 0, :, 0, 0].mean(dim=1, keepdim=True)  # noqa: E731  (top-left pixel, R channel)
    centre = extract_video(path, {"rgb": corner}, ExtractSettings(streams=("rgb",), crop="center"))
    ten = extract_video(path, {"rgb": corner}, ExtractSettings(streams=("rgb",), crop="ten"))
    from tadformer.video.decode import iter_frames
    from tadformer.video.preprocess import crop_boxes

    scaled = np.stack([scale_codes(resize_frames(f)) for f in iter_frames(path)])  # [16, 256, 340, 3]
    def top_left(top: int, left: int, flip: bool) -> float:
        col = left + 223 if flip else left
        return float(scaled[:, top, col, 0].mean())

    assert centre.features[0, 0] == pytest.approx(top_left(16, 58, False), abs=1e-6)
    expected = np.mean([top_left(*box) for box in crop_boxes("ten")])
    assert ten.features[0, 0] == pytest.approx(expected, abs=1e-6)


def test_too_short_videos_are_refused(tmp_path: Path) -> None:
    path = _flat_video(tmp_path / "short.mkv", np.full(16, 100))
    assert num_feature_steps(16, ExtractSettings(streams=("rgb",))) == 1
    assert extract_video(path, {"rgb": _frame_means}, ExtractSettings(streams=("rgb",))).features.shape[0] == 1
    with pytest.raises(VideoError, match=r"short.mkv has 16 frames; .* at least 17 \(rgb\+flow\)"):
        extract_video(path, {"rgb": _frame_means, "flow": _frame_means}, ExtractSettings(flow_method="dis"))
    shorter = _flat_video(tmp_path / "shorter.mkv", np.full(15, 100))
    with pytest.raises(VideoError, match="shorter.mkv has 15 frames"):
        extract_video(shorter, {"rgb": _frame_means}, ExtractSettings(streams=("rgb",)))


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="streams must be one of"):
        ExtractSettings(streams=("depth",))
    with pytest.raises(ValueError, match="batch size"):
        ExtractSettings(batch_size=0)
    with pytest.raises(ValueError, match="center"):
        ExtractSettings(crop="five")
