"""A deterministic synthetic dataset shaped like THUMOS14 with I3D features (for the demo and tests).

Real THUMOS14 features cannot be shipped, so :func:`generate_dataset` writes a stand-in with
the same on-disk layout as the official release:

* ``annotations/thumos14_synth.json``: the ActivityNet-like json (``version``, ``database`` ->
  video id -> ``subset``/``duration``/``fps``/``annotations``), 'Validation' = train, 'Test' = eval.
* ``features/<video_id>.npy``: float32 ``(T, input_dim)`` with ``T = floor((duration*fps - 16)/4)``.
* ``config.yaml``: a config in the official YAML schema pointing at the two above.

Annotations follow the real statistics in :mod:`.synthetic_stats` (durations, fps mix, per-class
segment lengths, bursty gaps, Cricket pairs, CliffDiving duplicated as Diving, a few segments past
the end). Features are built in a small latent space (scene + class evidence with start/middle/end
phases and blurred boundaries + background distractors + noise), smoothed over ~4 steps like
overlapping I3D clips, then projected to ``input_dim`` and passed through a ReLU.
Every video uses its own sub-seeds, so its content does not depend on generation order.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tadformer.data import synthetic_stats as st
from tadformer.data.synthetic_features import FeatureSpace, synthesize_video

FEAT_STRIDE = 4
NUM_FRAMES = 16
JSON_NAME = "thumos14_synth.json"
_SPLITS = (("Validation", "validation", 0), ("Test", "test", 1))


@dataclass(frozen=True)
class SyntheticPaths:
    """Where :func:`generate_dataset` wrote its outputs (absolute paths)."""

    root: Path
    json_file: Path
    feat_folder: Path
    config_file: Path


def num_feature_steps(duration_sec: float, fps: float, feat_stride: int = FEAT_STRIDE,
                      num_frames: int = NUM_FRAMES) -> int:
    """Number of I3D feature steps of a video: ``floor((duration_sec * fps - num_frames) / feat_stride)``."""
    return math.floor((duration_sec * fps - num_frames) / feat_stride)


def _sample_duration_sec(u: float, duration_scale: float) -> float:
    """Duration at quantile ``u`` (log-linear between the real quantile knots), then scaled."""
    log_q = np.log(np.asarray(st.DURATION_QUANTILES_SEC))
    return float(np.exp(np.interp(u, st.DURATION_PROBS, log_q))) * duration_scale


def _sample_fps(rng: np.random.Generator, duration_sec: float, fps_choices: Sequence[float] | None) -> float:
    if fps_choices is not None:
        return float(fps_choices[int(rng.integers(len(fps_choices)))])
    table = st.FPS_LONG if duration_sec > st.LONG_VIDEO_SEC else st.FPS_SHORT
    counts = np.array([n for _, n in table], dtype=np.float64)
    return table[int(rng.choice(len(table), p=counts / counts.sum()))][0]


def _seg_len_sec(rng: np.random.Generator, label_id: int, max_sec: float) -> float:
    facts = st.CLASS_FACTS[label_id]
    length = facts.median_len_sec * math.exp(facts.len_log_sd * rng.standard_normal())
    return float(np.clip(length, 0.2, max_sec))


Event = list[tuple[int, float, float]]  # (label_id, start offset in the event, end offset), seconds


def _sample_event(rng: np.random.Generator, program: str, classes: tuple[int, ...], max_sec: float) -> Event:
    """One action instance (or a co-occurring group) with offsets relative to the event start."""
    if program == "cliff":
        length = _seg_len_sec(rng, st.CLIFF_DIVING, max_sec)
        return [(st.CLIFF_DIVING, 0.0, length), (st.DIVING, 0.0, length)]
    if program == "cricket":
        bowl = _seg_len_sec(rng, st.CRICKET_BOWLING, max_sec / 2)
        shot = _seg_len_sec(rng, st.CRICKET_SHOT, max_sec / 2)
        if rng.random() < st.CRICKET_SINGLE_EVENT_PROB:
            return [(st.CRICKET_SHOT, 0.0, shot)] if rng.random() < 0.5 else [(st.CRICKET_BOWLING, 0.0, bowl)]
        delay = float(rng.uniform(*st.CRICKET_SHOT_DELAY_SEC))
        shot_start = max(bowl + delay, 0.1)
        return [(st.CRICKET_BOWLING, 0.0, bowl), (st.CRICKET_SHOT, shot_start, shot_start + shot)]
    label = classes[int(rng.integers(len(classes)))]
    return [(label, 0.0, _seg_len_sec(rng, label, max_sec))]


def _program_classes(rng: np.random.Generator, program: str) -> tuple[int, ...]:
    if program.startswith("single:"):
        return (int(program.split(":")[1]),)
    if program == "mix":
        return st.MIX_PAIRS[int(rng.integers(len(st.MIX_PAIRS)))]
    return (st.CLIFF_DIVING, st.DIVING) if program == "cliff" else (st.CRICKET_BOWLING, st.CRICKET_SHOT)


def _grid01(x: float) -> float:
    """Round seconds to the 0.1 s annotation grid."""
    return round(round(x * 10.0) / 10.0, 1)


def _sample_program(rng: np.random.Generator) -> tuple[str, tuple[int, ...], float]:
    """Pick the video's class program; returns (program, classes, median number of events)."""
    names = list(st.PROGRAM_WEIGHTS)
    weights = np.array([st.PROGRAM_WEIGHTS[n] for n in names], dtype=np.float64)
    program = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    classes = _program_classes(rng, program)
    median_events = (st.CLASS_FACTS[classes[0]].median_segments if program.startswith("single:")
                     else st.PROGRAM_MEDIAN_EVENTS[program])
    return program, classes, median_events


def _place_events(rng: np.random.Generator, events: list[Event],
                  duration: float) -> list[tuple[int, float, float]]:
    """Lay events out in time, separated by bursty (log-normal weighted) background gaps."""
    spans = [max(e for _, _, e in ev) for ev in events]
    gaps = np.exp(st.GAP_WEIGHT_LOG_SD * rng.standard_normal(len(events) + 1))
    gaps *= max(duration - sum(spans), 0.0) / gaps.sum()
    segs: list[tuple[int, float, float]] = []
    cursor = 0.0
    for event, span, gap in zip(events, spans, gaps):
        cursor += float(gap)
        segs.extend((label, cursor + a, cursor + b) for label, a, b in event)
        cursor += span
    return segs


def _sample_video(rng: np.random.Generator, duration_scale: float,
                  fps_choices: Sequence[float] | None) -> dict[str, Any]:
    """Sample one video's json entry (without ``subset``)."""
    program, classes, median_events = _sample_program(rng)
    z_dur, z_ind = rng.standard_normal(2)
    z_events = st.EVENTS_DURATION_CORR * z_dur + math.sqrt(1 - st.EVENTS_DURATION_CORR**2) * z_ind
    duration = _sample_duration_sec(0.5 * (1.0 + math.erf(z_dur / math.sqrt(2.0))), duration_scale)
    duration = max(duration, st.MIN_DURATION_SEC)
    n_events = max(1, round(median_events * math.exp(st.EVENTS_LOG_SD * z_events) * duration_scale))
    events = [_sample_event(rng, program, classes, 0.8 * duration) for _ in range(n_events)]
    span_sec = sum(max(e for _, _, e in ev) for ev in events)
    duration = round(max(duration, span_sec / rng.uniform(*st.MAX_FG_FRACTION_RANGE)), 2)
    fps = _sample_fps(rng, duration, fps_choices)
    segs = _place_events(rng, events, duration)
    n_past_end = len(events[-1]) if rng.random() < st.PAST_END_VIDEO_PROB else 0
    past_end_sec = _grid01(duration + rng.uniform(0.1, st.PAST_END_MAX_SEC))
    annotations: list[dict[str, Any]] = []
    for i, (label, s, e) in enumerate(segs):
        s_sec, e_sec = _grid01(s), _grid01(e)
        if i >= len(segs) - n_past_end:
            e_sec = past_end_sec
        elif e_sec > duration:
            e_sec = math.floor(duration * 10.0) / 10.0
        s_sec = min(s_sec, round(e_sec - 0.1, 1))
        annotations.append({"label": st.CLASS_NAMES[label], "segment": [s_sec, e_sec],
                            "segment(frames)": [s_sec * fps, e_sec * fps], "label_id": label})
    annotations.sort(key=lambda a: (a["label_id"], a["segment"][0], a["segment"][1]))
    return {"duration": duration, "fps": fps, "annotations": annotations}


def _video_seed(seed: int, split_code: int, number: int, stream: int) -> list[int]:
    return [seed, split_code, number, stream]


def make_database(*, train_videos: int = 200, test_videos: int = 212, seed: int = 0,
                  duration_scale: float = 1.0, fps_choices: Sequence[float] | None = None) -> dict[str, Any]:
    """Sample the annotation json (as a dict) without writing anything.

    Returns:
        ``{"version": ..., "database": {video_id: {"subset", "duration", "fps", "annotations"}}}``
        with video ids sorted (``video_test_*`` before ``video_validation_*``, like the real file).
    """
    _check_args(train_videos, test_videos, 1, "thumos", duration_scale, fps_choices)
    database: dict[str, Any] = {}
    for subset, stem, code in _SPLITS:
        for number in range(1, (train_videos if code == 0 else test_videos) + 1):
            rng = np.random.default_rng(_video_seed(seed, code, number, 0))
            entry = _sample_video(rng, duration_scale, fps_choices)
            database[f"video_{stem}_{number:07d}"] = {"subset": subset, **entry}
    return {"version": "Thumos14-synthetic", "database": dict(sorted(database.items()))}


def _check_args(train_videos: int, test_videos: int, input_dim: int, difficulty: str,
                duration_scale: float, fps_choices: Sequence[float] | None) -> None:
    if train_videos < 0 or test_videos < 0 or train_videos + test_videos == 0:
        raise ValueError(f"need train_videos >= 0, test_videos >= 0 and at least one video, "
                         f"got {train_videos} and {test_videos}")
    if input_dim < 1:
        raise ValueError(f"input_dim must be >= 1, got {input_dim}")
    if difficulty not in st.DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {sorted(st.DIFFICULTIES)}, got {difficulty!r}")
    if not duration_scale > 0:
        raise ValueError(f"duration_scale must be > 0, got {duration_scale}")
    if fps_choices is not None and (len(fps_choices) == 0 or min(fps_choices) <= 0):
        raise ValueError(f"fps_choices must be a non-empty sequence of positive fps values, "
                         f"got {fps_choices}")


def _atomic_write(path: Path, write: Any, mode: str = "w") -> None:
    """Write through ``write(file_object)`` into a temporary sibling, then ``os.replace`` it."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _config_dict(json_file: Path, feat_folder: Path, input_dim: int, root: Path) -> dict[str, Any]:
    """A config in the official YAML schema (keys of ``configs/thumos_i3d.yaml``), absolute paths."""
    return {
        "dataset_name": "thumos",
        "train_split": ["validation"],
        "val_split": ["test"],
        "dataset": {
            "json_file": str(json_file), "feat_folder": str(feat_folder), "file_prefix": None,
            "file_ext": ".npy", "num_classes": st.NUM_CLASSES, "input_dim": input_dim,
            "feat_stride": FEAT_STRIDE, "num_frames": NUM_FRAMES, "default_fps": None,
            "trunc_thresh": 0.5, "crop_ratio": [0.9, 1.0], "max_seq_len": 2304,
        },
        "model": {"fpn_type": "identity", "max_buffer_len_factor": 6.0, "n_mha_win_size": 19},
        "opt": {"learning_rate": 0.0001, "epochs": 30, "weight_decay": 0.05},
        "loader": {"batch_size": 2},
        "train_cfg": {"init_loss_norm": 100, "clip_grad_l2norm": 1.0, "cls_prior_prob": 0.01,
                      "center_sample": "radius", "center_sample_radius": 1.5},
        "test_cfg": {"voting_thresh": 0.7, "pre_nms_topk": 2000, "max_seg_num": 200,
                     "min_score": 0.001, "multiclass_nms": True},
        "output_folder": str(root / "ckpt"),
    }


def generate_dataset(out_dir: str | os.PathLike[str], *, train_videos: int = 200, test_videos: int = 212,
                     input_dim: int = 2048, seed: int = 0, difficulty: str = "thumos",
                     duration_scale: float = 1.0, fps_choices: Sequence[float] | None = None,
                     progress: bool = False) -> SyntheticPaths:
    """Write a THUMOS14-shaped synthetic dataset (json, one ``.npy`` per video, config.yaml).

    Args:
        out_dir: output root (created if missing). Existing files are overwritten atomically.
        train_videos: number of 'Validation' (training) videos.
        test_videos: number of 'Test' (evaluation) videos.
        input_dim: feature channels C of every ``(T, C)`` float32 feature file.
        seed: master seed; output bytes are a pure function of all arguments.
        difficulty: 'easy', 'thumos' or 'hard' (see :data:`synthetic_stats.DIFFICULTIES`).
        duration_scale: multiplies video durations (< 1 gives shorter videos with fewer segments,
            segment lengths unchanged); durations never go below 6 s.
        fps_choices: fps values drawn uniformly per video; None uses the real THUMOS14 mix.
        progress: show a tqdm progress bar over videos.

    Returns:
        The absolute paths of what was written.
    """
    _check_args(train_videos, test_videos, input_dim, difficulty, duration_scale, fps_choices)
    root = Path(out_dir).resolve()
    paths = SyntheticPaths(root=root, json_file=root / "annotations" / JSON_NAME,
                           feat_folder=root / "features", config_file=root / "config.yaml")
    paths.json_file.parent.mkdir(parents=True, exist_ok=True)
    paths.feat_folder.mkdir(parents=True, exist_ok=True)
    db = make_database(train_videos=train_videos, test_videos=test_videos, seed=seed,
                       duration_scale=duration_scale, fps_choices=fps_choices)
    space = FeatureSpace.build(seed, input_dim, st.DIFFICULTIES[difficulty].hd_noise)
    items: Any = db["database"].items()
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(db["database"]), desc="synthetic videos", unit="video")
    for video_id, entry in items:
        stem, number = video_id.rsplit("_", 1)
        code = 0 if stem.endswith("validation") else 1
        rng = np.random.default_rng(_video_seed(seed, code, int(number), 1))
        feats = synthesize_video(entry, num_feature_steps(entry["duration"], entry["fps"]), space,
                                 st.DIFFICULTIES[difficulty], rng)
        _atomic_write(paths.feat_folder / f"{video_id}.npy", lambda f, a=feats: np.save(f, a), "wb")
    _atomic_write(paths.json_file, lambda f: json.dump(db, f))
    cfg = _config_dict(paths.json_file, paths.feat_folder, input_dim, root)
    _atomic_write(paths.config_file, lambda f: yaml.safe_dump(cfg, f, sort_keys=False))
    return paths


def summarize_annotations(json_path: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """Summary statistics of an ActivityNet-like THUMOS json (a path, or the loaded dict).

    Returns:
        A dict with ``videos`` and ``segments`` (per subset), ``length_quartiles_sec`` (p25/p50/p75
        over all segments), ``length_median_sec_per_class``, ``segments_per_video_quartiles``,
        ``duration_quartiles_sec``, ``fps_counts``, ``classes_per_video`` (count -> videos),
        ``cliff_in_diving`` (fraction of CliffDiving segments with an identical Diving segment) and
        ``past_end_segments`` (segments ending after the video's duration).
    """
    if isinstance(json_path, dict):
        data = json_path
    else:
        with open(json_path) as f:
            data = json.load(f)
    db = data["database"]
    lengths: dict[str, list[float]] = {}
    videos: dict[str, int] = {}
    segments: dict[str, int] = {}
    fps_counts: dict[float, int] = {}
    classes_per_video: dict[int, int] = {}
    cliff_total = cliff_dup = past_end = 0
    for entry in db.values():
        anns = entry["annotations"]
        videos[entry["subset"]] = videos.get(entry["subset"], 0) + 1
        segments[entry["subset"]] = segments.get(entry["subset"], 0) + len(anns)
        fps_counts[entry["fps"]] = fps_counts.get(entry["fps"], 0) + 1
        n_cls = len({a["label"] for a in anns})
        classes_per_video[n_cls] = classes_per_video.get(n_cls, 0) + 1
        diving = {tuple(a["segment"]) for a in anns if a["label"] == "Diving"}
        for a in anns:
            lengths.setdefault(a["label"], []).append(a["segment"][1] - a["segment"][0])
            past_end += a["segment"][1] > entry["duration"]
            if a["label"] == "CliffDiving":
                cliff_total += 1
                cliff_dup += tuple(a["segment"]) in diving
    all_lengths = np.concatenate([np.asarray(v) for v in lengths.values()])
    quart = (25, 50, 75)
    return {
        "videos": videos,
        "segments": segments,
        "length_quartiles_sec": np.percentile(all_lengths, quart).tolist(),
        "length_median_sec_per_class": {k: float(np.median(v)) for k, v in sorted(lengths.items())},
        "segments_per_video_quartiles": np.percentile([len(e["annotations"]) for e in db.values()],
                                                      quart).tolist(),
        "duration_quartiles_sec": np.percentile([e["duration"] for e in db.values()], quart).tolist(),
        "fps_counts": fps_counts,
        "classes_per_video": dict(sorted(classes_per_video.items())),
        "cliff_in_diving": cliff_dup / cliff_total if cliff_total else float("nan"),
        "past_end_segments": int(past_end),
    }
