"""Decode videos with PyAV (optional extra ``video``) into RGB frames at a constant frame rate.

- :func:`probe_video` reads the container metadata (:class:`VideoInfo`).
- :func:`iter_frames` streams uint8 RGB ``(H, W, 3)`` frames resampled to a constant rate, holding
  one decoded frame of look-ahead, never the whole video. :func:`iter_timed_frames` yields the
  same frames with their output time and the decoded frame (index, timestamp) each one came from.
- :func:`count_frames` counts those frames by decoding.
- :func:`write_test_video` writes small synthetic videos (tests, demo).

Errors are one line and name the file: a missing path raises ``FileNotFoundError``; anything that
is not a decodable video raises :class:`VideoError` (a ``ValueError``).

**Truncated and corrupt files** (measured with PyAV 18.1 / its bundled FFmpeg):

- An MP4/MOV written the usual way keeps its index (the ``moov`` atom) at the end. Cut short, it
  no longer opens: ``VideoError`` "... is truncated or corrupt: it starts like an MP4/MOV file but
  cannot be opened ...", raised by :func:`probe_video` or at the first frame.
- A file whose index is intact but whose data is damaged or missing (MP4 with the index in front,
  ``+faststart``; AVI; bytes overwritten in the middle) usually decodes up to the damage and then
  FFmpeg reports an error: ``VideoError`` "... is truncated or corrupt: decoding failed after k
  frames (reason)". All but the last of those k frames have been yielded by then (one decoded
  frame is held as look-ahead).
- Streaming containers (Matroska/WebM, MPEG-TS) cut short usually decode **fewer frames without
  any error**: FFmpeg cannot tell a cut from the end. Compare :func:`count_frames` with
  ``VideoInfo.frames_hint`` / ``duration_sec_hint`` when that matters. A stream that yields no frame
  at all raises ``VideoError`` "... contains no decodable video frames".
- A file cut inside its header raises ``VideoError`` "... is truncated or unreadable: its header
  could not be read"; a file FFmpeg does not recognise at all raises ``VideoError`` "... is not a
  video PyAV can read: <reason>".
"""

from __future__ import annotations

import errno
import math
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

_PYAV_MISSING = "reading videos needs PyAV: pip install 'tadformer[video]'"


class VideoError(ValueError):
    """A video cannot be read: not a video, no video stream, truncated/corrupt, or PyAV missing."""


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a video's first video stream (hints are container metadata, not decoded counts)."""

    path: Path
    fps: float
    width: int
    height: int
    frames_hint: int | None
    duration_sec_hint: float | None
    variable_frame_rate: bool | None


@dataclass(frozen=True, eq=False)
class TimedFrame:
    """One output frame of :func:`iter_timed_frames`."""

    image: np.ndarray
    """uint8 RGB ``(H, W, 3)``."""
    index: int
    """Output frame number k."""
    time: float
    """``k / fps`` seconds, the time this output frame stands for."""
    source_index: int
    """Which decoded frame (0-based, presentation order) it shows."""
    source_time: float | None
    """Timestamp of that decoded frame in seconds after the first one (None: the stream has no timestamps)."""


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise VideoError(_PYAV_MISSING) from exc
    return av


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def _looks_like_mp4(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] in (b"ftyp", b"mdat", b"moov", b"free", b"wide", b"skip")


def _open(av: Any, path: Path) -> tuple[Any, Any]:
    """Open ``path`` and return (container, first video stream), with one-line errors."""
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such video file", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "expected a video file, got a directory", str(path))
    if path.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes): expected a video")
    try:
        container = av.open(str(path))
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # PyAV's own subclasses of these name the file
    except av.error.FFmpegError as exc:  # includes EIO / EOF on a file cut inside its header
        if _looks_like_mp4(path):
            raise VideoError(f"{path} is truncated or corrupt: it starts like an MP4/MOV file but cannot be opened "
                             f"({_reason(exc)}); a file cut short loses the index (moov atom) written at its end"
                             ) from exc
        if isinstance(exc, OSError | EOFError):  # the data ran out (or failed) inside the header
            raise VideoError(f"{path} is truncated or unreadable: its header could not be read ({_reason(exc)})"
                             ) from exc
        raise VideoError(f"{path} is not a video PyAV can read: {_reason(exc)}") from exc
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoError(f"{path} has no video stream (streams: {', '.join(kinds)})")
    return container, container.streams.video[0]


def _stream_rate(stream: Any) -> Fraction | None:
    for name in ("average_rate", "guessed_rate", "base_rate"):
        rate = getattr(stream, name, None)
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _output_rate(path: Path, stream: Any, fps: float | Fraction | None) -> Fraction:
    if fps is None:
        rate = _stream_rate(stream)
        if rate is None:
            raise VideoError(f"{path} has no frame rate in its metadata: pass fps explicitly")
        return rate
    if isinstance(fps, bool) or not isinstance(fps, int | float | Fraction) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps)


def probe_video(path: str | Path) -> VideoInfo:
    """Metadata of the first video stream of ``path`` (opens the file, decodes nothing).

    ``fps`` is the stream's average rate, else its guessed or base rate (error if none is known).
    ``variable_frame_rate`` is a best-effort guess: True when the average rate and the base rate
    (FFmpeg's ``r_frame_rate``) disagree by more than 0.1 %, None when either is unknown.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoError: not a video PyAV can read, no video stream, no frame rate or frame size.
    """
    av = _import_av()
    path = Path(path)
    container, stream = _open(av, path)
    try:
        rate = _stream_rate(stream)
        if rate is None:
            raise VideoError(f"{path} has no frame rate in its metadata")
        width = int(stream.codec_context.width or 0)
        height = int(stream.codec_context.height or 0)
        if width <= 0 or height <= 0:
            raise VideoError(f"{path} has a video stream without a frame size ({width}x{height})")
        frames_hint = int(stream.frames) if stream.frames and stream.frames > 0 else None
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None and container.duration > 0:
            duration = container.duration / av.time_base
        avg, base = stream.average_rate, stream.base_rate
        vfr = None if not avg or not base else bool(abs(Fraction(avg) / Fraction(base) - 1) > Fraction(1, 1000))
        return VideoInfo(path=path, fps=float(rate), width=width, height=height, frames_hint=frames_hint,
                         duration_sec_hint=duration, variable_frame_rate=vfr)
    finally:
        container.close()


def _resampled(
    path: Path, fps: float | Fraction | None
) -> Generator[tuple[int, Fraction, int, Fraction | None, Any], None, None]:
    """(k, k / rate, source index, source time, av.VideoFrame) of every output frame, decoded lazily."""
    av = _import_av()
    container, stream = _open(av, path)
    decoded = 0
    try:
        rate = _output_rate(path, stream, fps)
        period = 1 / rate
        k = 0
        timed: bool | None = None  # decided by the first frame: does the stream carry timestamps?
        t_first = Fraction(0)
        held: tuple[int, Fraction, Any] | None = None  # the decoded frame waiting for its successor
        for frame in container.decode(stream):
            if timed is None:
                timed = frame.pts is not None and frame.time_base is not None
                if timed:
                    t_first = frame.pts * Fraction(frame.time_base)
            if timed and frame.pts is not None and frame.time_base is not None:
                t = frame.pts * Fraction(frame.time_base) - t_first
            else:  # no timestamp: one period after the previous frame
                t = held[1] + period if held is not None else Fraction(0)
            if held is not None:
                boundary = (held[1] + t) / 2  # the held frame covers times before the midpoint
                while k * period < boundary:
                    yield k, k * period, held[0], (held[1] if timed else None), held[2]
                    k += 1
            held = (decoded, t, frame)
            decoded += 1
        if held is None:
            raise VideoError(f"{path} contains no decodable video frames (truncated or empty stream?)")
        end = held[1] + period / 2  # the last frame lasts half an output period
        while k * period < end:
            yield k, k * period, held[0], (held[1] if timed else None), held[2]
            k += 1
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path} is truncated or corrupt: decoding failed after {decoded} frames "
                         f"({_reason(exc)})") from exc
    finally:
        container.close()


def iter_timed_frames(
    path: str | Path, *, fps: float | Fraction | None = None
) -> Generator[TimedFrame, None, None]:
    """Like :func:`iter_frames`, with each frame's output time and its decoded source frame.

    Output frame k stands for time ``k / fps`` after the first decoded frame's timestamp and shows the
    decoded frame whose presentation interval contains that time (nearest-neighbour resampling).
    Decoded frame i (timestamp t_i) covers ``[(t_{i-1} + t_i) / 2, (t_i + t_{i+1}) / 2)``; the first
    frame covers everything before, the last covers up to ``t_last + 0.5 / fps``. Timestamps are
    compared exactly (fractions of the stream time base).

    - Constant frame rate at ``fps``: every decoded frame exactly once, in order.
    - Variable frame rate, or ``fps`` different from the stream's: a frame shown longer than one
      period is repeated, frames closer together than one period are dropped (the later of two frames
      that fall into one period may win or lose, by the midpoint rule). Timestamps that go backwards
      make a frame cover nothing, so it is dropped.
    - A stream without timestamps (decided at its first frame) gives one output per decoded frame;
      a single frame missing its timestamp is placed one period after the previous one.

    Repeated frames are separate copies. Errors are raised on iteration, not on the call; ``close()``
    the generator (or let it be collected) to release the file early.

    Args:
        path: the video file.
        fps: output frame rate; default the stream's average frame rate.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoError: not a video, no video stream, or truncated/corrupt (see the module docstring).
    """
    frames = _resampled(Path(path), fps)
    last_source = -1
    image: np.ndarray | None = None
    try:
        for k, t, src, src_t, frame in frames:
            if src != last_source or image is None:
                image = frame.to_ndarray(format="rgb24")
                last_source = src
                out = image
            else:
                out = image.copy()
            yield TimedFrame(out, k, float(t), src, None if src_t is None else float(src_t))
    finally:
        frames.close()  # closes the container at once when the caller stops early


def iter_frames(path: str | Path, *, fps: float | Fraction | None = None) -> Generator[np.ndarray, None, None]:
    """Stream the frames of ``path`` as uint8 RGB ``(H, W, 3)`` arrays at a constant frame rate.

    Frame k stands for time ``k / fps`` (default fps: the stream's average rate) after the first
    frame's timestamp and is the decoded frame shown at that time. A constant-rate video yields each
    decoded frame exactly once; a variable-rate one gets frames repeated or dropped to keep the
    rate (details in :func:`iter_timed_frames`). Colour conversion to rgb24 is libswscale's with
    PyAV's defaults. Only one decoded frame is held at a time.

    Raises (on iteration):
        FileNotFoundError: ``path`` does not exist.
        VideoError: not a video, no video stream, or truncated/corrupt (see the module docstring).
    """
    for item in iter_timed_frames(path, fps=fps):
        yield item.image


def count_frames(path: str | Path, *, fps: float | Fraction | None = None) -> int:
    """Number of frames :func:`iter_frames` yields, by decoding the whole video (no RGB conversion)."""
    n = 0
    for _ in _resampled(Path(path), fps):
        n += 1
    return n


# Lossless settings per codec: (pixel format, encoder options).
_CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "libx264rgb": ("rgb24", {"qp": "0", "preset": "veryfast"}),
    "libx264": ("yuv444p", {"qp": "0", "preset": "veryfast"}),
    "ffv1": ("bgr0", {}),
    "mpeg4": ("yuv420p", {"qscale": "1"}),
}
_TIME_BASE_VFR = Fraction(1, 90000)


def _as_frames(frames: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(f"write_test_video: expected frames (N, H, W, 3), got shape {frames.shape}")
        yield from frames
    else:
        yield from frames


def write_test_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float | Fraction = 30,
    *,
    codec: str = "libx264rgb",
    times: Sequence[float] | None = None,
    faststart: bool = False,
) -> None:
    """Write uint8 RGB frames ``(N, H, W, 3)`` (or an iterable of ``(H, W, 3)``) to a video file.

    The container follows the suffix (``.mp4``, ``.mkv``, ``.avi``, ...). The default codec,
    ``libx264rgb`` with ``qp=0``, is H.264 on RGB planes and **lossless**: decoding gives back the
    written frames bit for bit, in ``.mp4`` and ``.mkv`` alike. Other choices: ``"ffv1"`` (lossless,
    ``.mkv``/``.avi``), ``"libx264"`` (qp 0 on yuv444p: off by up to 2 codes from the RGB/YUV
    round trip), ``"mpeg4"`` (yuv420p, lossy).

    Args:
        path: output file.
        frames: the frames, all of one size.
        fps: frame rate (stored exactly as a fraction; 30000/1001 may be passed as a ``Fraction``).
        codec: see above.
        times: optional presentation time in seconds of each frame, strictly increasing, for
            variable-frame-rate videos (stored with a 1/90000 s time base, Matroska rounds to 1 ms).
            Default: frame k at ``k / fps``.
        faststart: MP4 only: put the index (moov atom) before the data.
    """
    av = _import_av()
    if codec not in _CODECS:
        raise ValueError(f"unknown codec {codec!r}: expected one of {', '.join(_CODECS)}")
    pix_fmt, options = _CODECS[codec]
    rate = Fraction(fps).limit_denominator(1_000_000)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    if times is not None and any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("write_test_video: times must be strictly increasing")
    time_base = _TIME_BASE_VFR if times is not None else 1 / rate
    path = Path(path)
    container = av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {})
    try:
        stream: Any = None
        count = 0
        for frame in _as_frames(frames):
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"write_test_video: frame {count} must be uint8 (H, W, 3), "
                                 f"got {frame.dtype} {frame.shape}")
            if stream is None:
                stream = container.add_stream(codec, rate=rate, options=options)
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = pix_fmt
                stream.codec_context.time_base = time_base
            elif (frame.shape[0], frame.shape[1]) != (stream.height, stream.width):
                raise ValueError(f"write_test_video: frame {count} is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"frame 0 was {stream.width}x{stream.height}")
            if times is not None and count >= len(times):
                raise ValueError(f"write_test_video: more frames than times ({len(times)})")
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = round(Fraction(times[count]) / time_base) if times is not None else count
            vf.time_base = time_base
            for packet in stream.encode(vf):
                container.mux(packet)
            count += 1
        if stream is None:
            raise ValueError("write_test_video: no frames given")
        if times is not None and count != len(times):
            raise ValueError(f"write_test_video: {count} frames but {len(times)} times")
        for packet in stream.encode():
            container.mux(packet)
    except BaseException:
        try:
            container.close()
        finally:
            path.unlink(missing_ok=True)  # no half-written video left behind
        raise
    container.close()
