# ruff: noqa: F811  (the fixtures imported from video_helpers are used as test arguments)
"""Decoding with PyAV: exact frames and timestamps, constant-rate resampling, one-line errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from video_helpers import (  # noqa: F401  (fixtures)
    VIDEO_FPS,
    VIDEO_FRAMES,
    VIDEO_WH,
    MakeVideo,
    make_video,
    moving_shapes,
    shapes_frames,
    shapes_video,
)

from tadformer.video.decode import (
    VideoError,
    count_frames,
    iter_frames,
    iter_timed_frames,
    probe_video,
    write_test_video,
)

pytest.importorskip("av")


def _one_line(exc: pytest.ExceptionInfo[BaseException], name: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and name in msg, msg
    return msg


def _flat(levels: list[int] | np.ndarray, hw: tuple[int, int] = (32, 48)) -> np.ndarray:
    """Frame i is a uniform grey of ``levels[i]`` (its identity survives any codec)."""
    lv = np.asarray(levels, dtype=np.uint8)
    return np.broadcast_to(lv[:, None, None, None], (len(lv), *hw, 3)).copy()


def test_probe_reports_rate_size_and_hints(shapes_video: Path) -> None:
    info = probe_video(shapes_video)
    assert info.path == shapes_video
    assert (info.fps, info.width, info.height) == (VIDEO_FPS, *VIDEO_WH)
    assert info.frames_hint == VIDEO_FRAMES
    assert info.duration_sec_hint == pytest.approx(VIDEO_FRAMES / VIDEO_FPS, abs=0.05)
    assert info.variable_frame_rate is False


def test_53_frames_decode_exactly_with_timestamps_k_over_30(shapes_video: Path, shapes_frames: np.ndarray) -> None:
    timed = list(iter_timed_frames(shapes_video))
    assert len(timed) == VIDEO_FRAMES == count_frames(shapes_video)
    for k, item in enumerate(timed):
        assert (item.index, item.source_index) == (k, k)
        assert item.time == pytest.approx(k / 30, abs=1e-12)
        assert item.source_time == pytest.approx(k / 30, abs=1e-12)  # the decoded frame's own timestamp
        assert item.image.dtype == np.uint8 and item.image.shape == (180, 320, 3)
        # libx264rgb with qp 0 is lossless: the frame read back is the frame written
        np.testing.assert_array_equal(item.image, shapes_frames[k], err_msg=f"frame {k}")
    plain = list(iter_frames(shapes_video))
    assert len(plain) == VIDEO_FRAMES and all(np.array_equal(a, b.image) for a, b in zip(plain, timed))


def test_lossy_codec_is_close(make_video: MakeVideo, shapes_frames: np.ndarray) -> None:
    path = make_video("shapes_yuv444.mp4", shapes_frames[:8], codec="libx264")
    frames = list(iter_frames(path))
    assert len(frames) == 8
    diff = np.abs(np.stack(frames).astype(int) - shapes_frames[:8])
    assert diff.max() <= 3 and diff.mean() < 0.5


@pytest.mark.parametrize("name", ["cfr.mkv", "cfr.avi"])
def test_constant_rate_is_identity_in_other_containers(make_video: MakeVideo, name: str) -> None:
    """Matroska stores times in whole milliseconds (33, 67, ...): still each frame exactly once."""
    levels = 3 + 4 * np.arange(VIDEO_FRAMES)
    path = make_video(name, _flat(levels), codec="ffv1" if name.endswith(".avi") else "libx264rgb")
    timed = list(iter_timed_frames(path))
    assert [t.source_index for t in timed] == list(range(VIDEO_FRAMES))
    assert [int(t.image[0, 0, 0]) for t in timed] == levels.tolist()
    assert timed[-1].source_time == pytest.approx(52 / 30, abs=1e-3)


def test_early_stop_closes_cleanly(shapes_video: Path) -> None:
    it = iter_frames(shapes_video)
    first = next(it)
    it.close()
    assert first.shape == (180, 320, 3)


# Timestamps in units of 1/30 s: frame 3 lasts 1 period too long, frame 5 sits half way between 5 and 6,
# frame 8 is followed by a 2-period gap, frame 10 is 0.4 after frame 9.
_VFR_TIMES = [0, 1, 2, 4, 5, 5.5, 6, 7, 9, 10, 10.4, 12]
# Decoded frame i covers [(t_{i-1} + t_i) / 2, (t_i + t_{i+1}) / 2): [.., .5) [.5, 1.5) [1.5, 3) [3, 4.5) [4.5, 5.25)
# [5.25, 5.75) [5.75, 6.5) [6.5, 8) [8, 9.5) [9.5, 10.2) [10.2, 11.2) [11.2, 12.5); output k at k/30.
_VFR_EXPECTED = [0, 1, 2, 3, 3, 4, 6, 7, 8, 8, 9, 10, 11]  # 3 and 8 repeated, 5 dropped


@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_variable_rate_resampled_by_timestamps(make_video: MakeVideo, name: str) -> None:
    levels = 10 + 20 * np.arange(len(_VFR_TIMES))
    path = make_video(name, _flat(levels), times=[t / 30 for t in _VFR_TIMES])
    timed = list(iter_timed_frames(path, fps=30))
    assert [t.source_index for t in timed] == _VFR_EXPECTED
    assert [int(t.image[0, 0, 0]) for t in timed] == [int(levels[i]) for i in _VFR_EXPECTED]
    assert [t.source_time for t in timed] == pytest.approx([_VFR_TIMES[i] / 30 for i in _VFR_EXPECTED], abs=1e-3)
    assert [t.time for t in timed] == pytest.approx([k / 30 for k in range(len(_VFR_EXPECTED))])
    assert count_frames(path, fps=30) == len(_VFR_EXPECTED)
    # repeated frames are independent copies
    assert timed[3].image is not timed[4].image and np.array_equal(timed[3].image, timed[4].image)
    # at 15 fps (outputs at 0, 2, 4, ... in 1/30 units) the same rule picks every covering frame
    assert [t.source_index for t in iter_timed_frames(path, fps=15)] == [0, 2, 3, 6, 8, 9, 11]


@pytest.mark.parametrize(("last", "expected"), [(3.3, [0, 1, 2, 3]), (3.6, [0, 1, 2, 3, 3])])
def test_last_frame_lasts_half_a_period(make_video: MakeVideo, last: float, expected: list[int]) -> None:
    """The last frame (at 3.3 or 3.6 periods) covers up to half a period after its timestamp: output 4
    (at 4 periods) exists only when 4 < last + 0.5."""
    times = [0, 1, 2, last]
    path = make_video(f"last_{last}.mp4", _flat([10, 20, 30, 40]), times=[t / 30 for t in times])
    assert [t.source_index for t in iter_timed_frames(path, fps=30)] == expected


def test_vfr_is_flagged_in_mp4_metadata(make_video: MakeVideo) -> None:
    path = make_video("vfr_flag.mp4", _flat(np.arange(12)), times=[t / 30 for t in _VFR_TIMES])
    assert probe_video(path).variable_frame_rate is True


def test_other_output_rate_repeats_or_drops_evenly(shapes_video: Path) -> None:
    assert [t.source_index for t in iter_timed_frames(shapes_video, fps=15)] == list(range(0, 53, 2))
    doubled = [t.source_index for t in iter_timed_frames(shapes_video, fps=60)]
    # frame i covers [(2i - 1) / 60, (2i + 1) / 60): output k = 2i - 1 falls on a midpoint and goes to frame i
    assert doubled == [(k + 1) // 2 for k in range(105)]  # the last frame lasts until 52/30 + 0.5/60 s
    with pytest.raises(ValueError, match="fps must be a positive number"):
        next(iter_frames(shapes_video, fps=0))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.mp4"
    for call in (probe_video, count_frames, lambda p: next(iter_frames(p))):
        with pytest.raises(FileNotFoundError) as exc:
            call(path)
        assert "no such video file" in _one_line(exc, "absent.mp4")


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n")
    with pytest.raises(VideoError) as exc:
        probe_video(path)
    assert "notes.mp4 is not a video PyAV can read" in _one_line(exc, "notes.mp4")
    with pytest.raises(VideoError, match="notes.mp4 is not a video"):
        next(iter_frames(path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    for call in (probe_video, count_frames):
        with pytest.raises(VideoError) as exc:
            call(path)
        assert "empty.mp4 is empty (0 bytes)" in _one_line(exc, "empty.mp4")


def test_directory_and_audio_only(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as exc:
        probe_video(tmp_path)
    _one_line(exc, str(tmp_path))
    av = pytest.importorskip("av")
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(VideoError) as vexc:
        probe_video(wav)
    assert "tone.wav has no video stream (streams: audio)" in _one_line(vexc, "tone.wav")


def _truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_truncated_mp4_fails_at_open(shapes_video: Path, tmp_path: Path) -> None:
    """The index (moov atom) of a plain MP4 is at its end: a cut file cannot be opened at all."""
    cut = _truncate(shapes_video, tmp_path / "cut.mp4", 0.6)
    for call in (probe_video, count_frames):
        with pytest.raises(VideoError) as exc:
            call(cut)
        assert "cut.mp4 is truncated or corrupt" in _one_line(exc, "cut.mp4")


def test_truncated_faststart_mp4_fails_while_decoding(make_video: MakeVideo, tmp_path: Path) -> None:
    full = make_video("fast.mp4", moving_shapes(VIDEO_FRAMES), faststart=True)
    assert count_frames(full) == VIDEO_FRAMES
    cut = _truncate(full, tmp_path / "fastcut.mp4", 0.6)
    assert probe_video(cut).frames_hint == VIDEO_FRAMES  # the index survives
    seen = 0
    with pytest.raises(VideoError) as exc:
        for _ in iter_frames(cut):
            seen += 1
    msg = _one_line(exc, "fastcut.mp4")
    match = re.search(r"fastcut\.mp4 is truncated or corrupt: decoding failed after (\d+) frames \(.+\)$", msg)
    assert match, msg
    decoded = int(match.group(1))
    assert seen == decoded - 1  # the last good frame was still held as look-ahead when decoding failed
    assert 0 < seen < VIDEO_FRAMES


def test_truncated_matroska_decodes_a_prefix_silently(make_video: MakeVideo, shapes_frames: np.ndarray,
                                                      tmp_path: Path) -> None:
    """Documented limitation: a streaming container cut short just ends early."""
    full = make_video("shapes.mkv", shapes_frames)
    cut = _truncate(full, tmp_path / "cut.mkv", 0.6)
    frames = list(iter_frames(cut))
    assert 0 < len(frames) < VIDEO_FRAMES
    for k, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, shapes_frames[k])


def test_cut_inside_header_or_first_frame(make_video: MakeVideo, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    full = make_video("noise.mkv", rng.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8))
    assert count_frames(full) == 2
    header = _truncate(full, tmp_path / "header.mkv", 0.02)  # inside the Matroska header
    with pytest.raises(VideoError) as exc:
        probe_video(header)
    assert "header.mkv is truncated or unreadable: its header could not be read" in _one_line(exc, "header.mkv")
    no_frame = _truncate(full, tmp_path / "noframe.mkv", 0.3)  # header intact, first frame cut
    assert probe_video(no_frame).width == 48
    with pytest.raises(VideoError) as exc:
        count_frames(no_frame)
    assert "noframe.mkv contains no decodable video frames" in _one_line(exc, "noframe.mkv")


def test_write_test_video_validates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must be uint8 \(H, W, 3\)"):
        write_test_video(tmp_path / "a.mp4", [np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="frame 1 is 16x8, frame 0 was 8x8"):
        write_test_video(tmp_path / "b.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 16, 3), np.uint8)])
    with pytest.raises(ValueError, match="unknown codec"):
        write_test_video(tmp_path / "c.mp4", np.zeros((1, 8, 8, 3), np.uint8), codec="nope")
    with pytest.raises(ValueError, match="strictly increasing"):
        write_test_video(tmp_path / "d.mkv", np.zeros((2, 8, 8, 3), np.uint8), times=[0.0, 0.0])
    with pytest.raises(ValueError, match="no frames"):
        write_test_video(tmp_path / "e.mp4", [])
    assert not list(tmp_path.iterdir())  # nothing half-written is left


def test_missing_pyav_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, shapes_video: Path) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # "import av" now raises ImportError
    for call in (probe_video, count_frames):
        with pytest.raises(VideoError, match=r"^reading videos needs PyAV: pip install 'tadformer\[video\]'$"):
            call(shapes_video)
