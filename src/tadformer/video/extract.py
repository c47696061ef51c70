"""One video -> THUMOS14-style clip features, streamed frame by frame.

Layout (``tests/golden/i3d/README.md``, ``clip_grid.json``): clip ``i`` covers items ``[4i, 4i + 16)``
of the frame list, so ``T = floor((N - 16) / 4) + 1`` and feature ``i`` sits at frame ``4i + 8``
(``grid = (t * fps - 8) / 4``). With a flow stream the list follows the reference dense_flow
program: ``N`` decoded frames give ``N - 1`` flow fields, one per pair ``(k, k+1)``, and the RGB
item of that pair is frame ``k + 1``; the list starts at video frame 1 (``first_frame`` in the
sidecar) and ``T = floor((N - 17) / 4) + 1``, features one frame late, as in the released files.
RGB only: the list is the decoded frames themselves.

Each frame is decoded, resized, scaled (and turned into flow) once; the overlapping clips are
views of a small ring of preprocessed items, batched ``batch_size`` clips at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tadformer.video.decode import VideoError, iter_frames, probe_video
from tadformer.video.preprocess import (
    crop_boxes,
    flow_codes_to_input,
    quantise_flow,
    resize_frames,
    scale_codes,
    to_gray,
)

CLIP_LEN = 16
CLIP_STRIDE = 4
CROP_SIZE = 224
STREAM_DIM = 1024
STREAM_ORDER = ("rgb", "flow")
STREAM_CHOICES = {"rgb+flow": ("rgb", "flow"), "rgb": ("rgb",), "flow": ("flow",)}

ClipBackbone = Callable[[Tensor], Tensor]
"""``[B, C, 16, 224, 224] -> [B, D]`` (C = 3 for RGB, 2 for flow)."""


@dataclass(frozen=True)
class ExtractSettings:
    """What to extract and how.

    Attributes:
        streams: ``("rgb", "flow")``, ``("rgb",)`` or ``("flow",)``; features are concatenated in that order.
        crop: ``"center"`` (one 224x224 crop) or ``"ten"`` (four corners + centre, and their mirror
            images, features averaged).
        flow_method: optical flow algorithm (:data:`tadformer.video.flow.FLOW_METHODS`).
        batch_size: clips per network call.
        fps: rate frames are resampled to (default: the stream's own).
    """

    streams: tuple[str, ...] = ("rgb", "flow")
    crop: str = "center"
    flow_method: str = "tvl1"
    batch_size: int = 4
    fps: float | None = None

    def __post_init__(self) -> None:
        if not self.streams or any(s not in STREAM_ORDER for s in self.streams) or len(set(self.streams)) != len(
                self.streams):
            raise ValueError(f"streams must be one of {sorted(STREAM_CHOICES)}, got {'+'.join(self.streams)!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        crop_boxes(self.crop)  # validates the name

    @property
    def first_frame(self) -> int:
        """Video frame of list item 0 (1 with a flow stream, the dense_flow layout)."""
        return 1 if "flow" in self.streams else 0

    @property
    def min_frames(self) -> int:
        return CLIP_LEN + self.first_frame


@dataclass
class ExtractTiming:
    """Seconds spent per stage of one video."""

    decode_sec: float = 0.0
    preprocess_sec: float = 0.0
    flow_sec: float = 0.0
    network_sec: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"decode_sec": self.decode_sec, "preprocess_sec": self.preprocess_sec, "flow_sec": self.flow_sec,
                "network_sec": self.network_sec}


@dataclass
class ExtractResult:
    """Features of one video and how they were made."""

    features: np.ndarray  # [T, D] float32
    fps: float
    num_frames: int  # decoded frames, after resampling to constant ``fps``
    first_frame: int
    timing: ExtractTiming = field(default_factory=ExtractTiming)


def num_feature_steps(num_frames: int, settings: ExtractSettings) -> int:
    """T for a video of ``num_frames`` decoded frames (0 when too short)."""
    items = num_frames - settings.first_frame
    return 0 if items < CLIP_LEN else (items - CLIP_LEN) // CLIP_STRIDE + 1


class _ClipRing:
    """Preprocessed items (per stream ``[C, 256, 340]`` float32) of the clips not yet computed."""

    def __init__(self, streams: Sequence[str]) -> None:
        self.items: dict[str, list[Tensor]] = {s: [] for s in streams}
        self.base = 0  # list index of items[*][0]

    @property
    def end(self) -> int:
        return self.base + len(next(iter(self.items.values())))

    def append(self, item: Mapping[str, Tensor]) -> None:
        for stream, buf in self.items.items():
            buf.append(item[stream])

    def drop_before(self, index: int) -> None:
        cut = index - self.base
        if cut > 0:
            for buf in self.items.values():
                del buf[:cut]
            self.base = index

    def clips(self, stream: str, starts: Sequence[int], top: int, left: int, flip: bool) -> Tensor:
        """``[B, C, 16, 224, 224]`` crops of the clips starting at ``starts``."""
        buf = self.items[stream]
        batch = []
        for s in starts:
            frames = buf[s - self.base: s - self.base + CLIP_LEN]
            batch.append(torch.stack([f[:, top:top + CROP_SIZE, left:left + CROP_SIZE] for f in frames], dim=1))
        x = torch.stack(batch)  # [B, C, 16, 224, 224]
        return x.flip(-1) if flip else x


def _timed(frames: Iterator[np.ndarray], timing: ExtractTiming) -> Iterator[np.ndarray]:
    while True:
        t0 = time.perf_counter()
        try:
            frame = next(frames)
        except StopIteration:
            return
        finally:
            timing.decode_sec += time.perf_counter() - t0
        yield frame


def extract_video(path: str | Path, backbones: Mapping[str, ClipBackbone], settings: ExtractSettings, *,
                  device: torch.device | None = None, progress: bool = False) -> ExtractResult:
    """Features ``[T, 1024 * len(streams)]`` of one video (any backbone mapping clips to vectors).

    Args:
        path: the video file (anything PyAV decodes).
        backbones: one clip network per stream in ``settings.streams``.
        settings: streams, crop, flow method, batch size, fps.
        device: where the networks run (inputs are moved there); default CPU.
        progress: show a bar per video (frames/s).

    Raises:
        VideoError: not a video, a decoding failure, or fewer frames than one clip needs.
    """
    from tadformer.video.flow import make_flow

    path = Path(path)
    missing = [s for s in settings.streams if s not in backbones]
    if missing:
        raise ValueError(f"no backbone for stream(s) {missing}")
    info = probe_video(path)
    fps = float(settings.fps or info.fps)
    flow_fn = make_flow(settings.flow_method) if "flow" in settings.streams else None
    boxes = crop_boxes(settings.crop)
    dev = device or torch.device("cpu")
    timing = ExtractTiming()
    ring = _ClipRing(settings.streams)
    pending: list[int] = []
    chunks: list[np.ndarray] = []
    next_start = 0
    prev_gray: np.ndarray | None = None
    num_frames = 0

    def run(starts: list[int]) -> None:
        t0 = time.perf_counter()
        parts = []
        with torch.inference_mode():
            for stream in settings.streams:
                acc = None
                for top, left, flip in boxes:
                    out = backbones[stream](ring.clips(stream, starts, top, left, flip).to(dev)).float().cpu()
                    acc = out if acc is None else acc + out
                assert acc is not None
                parts.append(acc / len(boxes) if len(boxes) > 1 else acc)
        chunks.append(torch.cat(parts, dim=1).numpy().astype(np.float32, copy=False))  # [B, D]
        timing.network_sec += time.perf_counter() - t0

    from tqdm import tqdm

    bar = tqdm(total=info.frames_hint, unit="frame", desc=path.stem, disable=not progress, leave=False)
    try:
        for k, frame in enumerate(_timed(iter_frames(path, fps=fps), timing)):
            num_frames = k + 1
            bar.update(1)
            t0 = time.perf_counter()
            resized = resize_frames(frame)  # [256, 340, 3] uint8
            item: dict[str, Tensor] = {}
            if "rgb" in settings.streams:
                item["rgb"] = torch.from_numpy(scale_codes(resized)).permute(2, 0, 1)  # [3, 256, 340]
            gray = to_gray(resized) if flow_fn is not None else None  # [256, 340] uint8
            timing.preprocess_sec += time.perf_counter() - t0
            if flow_fn is not None and gray is not None:
                t1 = time.perf_counter()
                if prev_gray is not None:
                    codes = quantise_flow(flow_fn(prev_gray, gray))  # [256, 340, 2] uint8, (x, y)
                    item["flow"] = torch.from_numpy(flow_codes_to_input(codes)).permute(2, 0, 1)  # [2, 256, 340]
                prev_gray = gray
                timing.flow_sec += time.perf_counter() - t1
            if k < settings.first_frame:
                continue
            ring.append(item)
            while ring.end >= next_start + CLIP_LEN:
                pending.append(next_start)
                next_start += CLIP_STRIDE
                if len(pending) == settings.batch_size:
                    run(pending)
                    pending = []
                    ring.drop_before(next_start)
        if pending:
            run(pending)
    finally:
        bar.close()
    if not chunks:
        raise VideoError(f"{path} has {num_frames} frames; one {CLIP_LEN}-frame clip needs at least "
                         f"{settings.min_frames} ({'+'.join(settings.streams)})")
    features = np.concatenate(chunks, axis=0)  # [T, D]
    if features.shape[0] != num_feature_steps(num_frames, settings):  # the streaming schedule's invariant
        raise RuntimeError(f"{path}: {features.shape[0]} clips for {num_frames} frames")
    return ExtractResult(features=features, fps=fps, num_frames=num_frames, first_frame=settings.first_frame,
                         timing=timing)
