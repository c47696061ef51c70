"""``tadformer extract``: videos -> ``<video_id>.npy`` + ``<video_id>.json`` sidecar, safely.

A video's output is *complete* when its sidecar exists and the ``.npy`` beside it has the shape the
sidecar records; complete outputs made with the same settings are skipped, so an interrupted folder
run resumes where it stopped. Both files are written to temp files and renamed (features first,
then the sidecar that marks completion): Ctrl-C or a crash never leaves a file that looks complete.
An output that is partial or was made with other settings is an error unless ``overwrite``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tadformer import __version__
from tadformer.results_io import atomic_write_text
from tadformer.video.extract import (
    CLIP_LEN,
    CLIP_STRIDE,
    STREAM_DIM,
    ClipBackbone,
    ExtractResult,
    ExtractSettings,
    extract_video,
)
from tadformer.video.preprocess import RESIZE_WH

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts", ".3gp")
# sidecar fields that must agree for an existing output to count as done
_SETTING_KEYS = ("streams", "crop", "flow_method", "fps_requested", "weights_sha256", "first_frame")


class ExtractOutputError(ValueError):
    """An existing output that cannot be skipped or overwritten silently."""


@dataclass(frozen=True)
class ExtractOutcome:
    """What happened to one video."""

    video: Path
    features: Path
    status: str  # "written" | "skipped"
    result: ExtractResult | None = None


def collect_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Video files from files and folders (a folder contributes its files with a video extension)."""
    videos: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise FileNotFoundError(f"{p} holds no video file (extensions {', '.join(VIDEO_EXTENSIONS)})")
            videos.extend(found)
        elif p.is_file():
            videos.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such video file or folder")
    seen: dict[str, Path] = {}
    for v in videos:
        if v.stem in seen and seen[v.stem] != v:
            raise ValueError(f"two videos would write the same features {v.stem}.npy: {seen[v.stem]} and {v}")
        seen[v.stem] = v
    return list(dict.fromkeys(videos))


def settings_record(settings: ExtractSettings, weights_sha256: Mapping[str, str]) -> dict[str, Any]:
    """The sidecar fields that describe how features were made (compared when deciding to skip)."""
    return {
        "streams": list(settings.streams),
        "crop": settings.crop,
        "flow_method": settings.flow_method if "flow" in settings.streams else None,
        "fps_requested": settings.fps,
        "weights_sha256": {s: weights_sha256.get(s) for s in settings.streams},
        "first_frame": settings.first_frame,
    }


def sidecar_payload(video: Path, result: ExtractResult, record: Mapping[str, Any],
                    weight_files: Mapping[str, str]) -> dict[str, Any]:
    steps, dim = result.features.shape
    return {
        "video": str(video),
        "video_id": video.stem,
        "fps": result.fps,
        "num_frames": result.num_frames,
        "num_features": steps,
        "feature_dim": dim,
        "clip_len": CLIP_LEN,
        "stride": CLIP_STRIDE,
        "grid_to_sec": "t = (grid * stride + clip_len / 2) / fps (feature i covers list items [4i, 4i + 16))",
        "resize_wh": list(RESIZE_WH),
        **record,
        "weights_file": dict(weight_files),
        "tadformer_version": __version__,
        "timing_sec": result.timing.as_dict(),
    }


def output_state(out_dir: Path, video_id: str, record: Mapping[str, Any]) -> str:
    """``"missing"`` or ``"complete"``; raises :class:`ExtractOutputError` for a partial or different output."""
    npy, side = out_dir / f"{video_id}.npy", out_dir / f"{video_id}.json"
    if not npy.exists() and not side.exists():
        return "missing"
    fix = "delete it or pass --overwrite"
    if not side.is_file():
        raise ExtractOutputError(f"{npy} exists without its sidecar {side.name}: a partial or foreign output; {fix}")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        expected_shape = (int(meta["num_features"]), int(meta["feature_dim"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExtractOutputError(f"{side} is not a valid extraction sidecar ({exc}); {fix}") from None
    try:
        shape = tuple(np.load(npy, mmap_mode="r").shape) if npy.is_file() else None
    except (ValueError, OSError):
        shape = None
    if shape != expected_shape:
        raise ExtractOutputError(f"{npy} is incomplete (shape {shape}, sidecar says {list(expected_shape)}); {fix}")
    differ = [k for k in _SETTING_KEYS if meta.get(k) != record.get(k)]
    if differ:
        what = ", ".join(f"{k} {meta.get(k)!r} vs {record.get(k)!r}" for k in differ)
        raise ExtractOutputError(f"{npy} was made with other settings ({what}); {fix}")
    return "complete"


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` or fail with one line when it cannot hold files."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(f"cannot write features to {out_dir}: {exc.strerror or exc}") from None


def extract_many(videos: Sequence[Path], out_dir: Path, backbones: Mapping[str, ClipBackbone],
                 settings: ExtractSettings, *, weights_sha256: Mapping[str, str],
                 weight_files: Mapping[str, str] | None = None, overwrite: bool = False,
                 device: torch.device | None = None, progress: bool = False,
                 log: Any = print) -> list[ExtractOutcome]:
    """Extract every video into ``out_dir`` (see the module docstring for skipping and safety).

    Every existing output is checked before any work starts, so a bad one fails the run at once.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    record = settings_record(settings, weights_sha256)
    states = {v: ("missing" if overwrite else output_state(out_dir, v.stem, record)) for v in videos}
    outcomes = []
    for n, video in enumerate(videos, 1):
        npy = out_dir / f"{video.stem}.npy"
        if states[video] == "complete":
            log(f"[{n}/{len(videos)}] {video.name}: done already, skipped ({npy})")
            outcomes.append(ExtractOutcome(video, npy, "skipped"))
            continue
        result = extract_video(video, backbones, settings, device=device, progress=progress)
        (out_dir / f"{video.stem}.json").unlink(missing_ok=True)  # an old sidecar must not vouch for new features
        _atomic_save_npy(npy, result.features)
        payload = sidecar_payload(video, result, record, weight_files or {})
        atomic_write_text(out_dir / f"{video.stem}.json", json.dumps(payload, indent=1))
        t = result.timing
        total = t.decode_sec + t.preprocess_sec + t.flow_sec + t.network_sec
        log(f"[{n}/{len(videos)}] {video.name}: {result.features.shape[0]} x {result.features.shape[1]} features, "
            f"{result.num_frames} frames at {result.fps:g} fps, {result.num_frames / max(total, 1e-9):.1f} frames/s "
            f"(decode {t.decode_sec:.1f}s, flow {t.flow_sec:.1f}s, network {t.network_sec:.1f}s) -> {npy}")
        outcomes.append(ExtractOutcome(video, npy, "written", result))
    return outcomes


def feature_dim(streams: Sequence[str]) -> int:
    return STREAM_DIM * len(streams)
