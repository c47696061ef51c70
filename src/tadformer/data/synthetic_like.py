"""Deterministic synthetic datasets shaped like ActivityNet-1.3, EPIC-Kitchens-100 and Ego4D MQ.

:func:`generate_like` writes, under ``out_dir``, the layout the official configs expect:

* ``annotations/<name>_synth.json``: the ActivityNet-style json (``database`` -> video id ->
  ``subset`` 'training'/'validation', ``duration``, ``fps``, ``annotations`` with ``label``, ``segment`` (s)
  and ``label_id``);
* ActivityNet: ``features/v_<youtube-like id>.npy`` ``[T, C]`` with ``T = floor(duration * 15 / 16)``
  (non-overlapping 16-frame TSP clips at 15 fps), one of 200 classes per video (~1.5 long instances, a few
  duplicated annotations), and an external score file ``annotations/cuhk_val_simp_share_synth.json``
  (``{"results": {id: [200 scores]}, "class": [200 names]}``, bare ids) from a simulated video classifier
  with top-1 accuracy ``ext_accuracy``. Every class occurs in the json (the fusion needs it): with fewer
  than 200 videos, the classes left over are added as short extra instances;
* EPIC-Kitchens-100: ``features/P01_101.npz`` holding ``feats`` ``[T, C]``, dense overlapping segments,
  long-tailed verbs (97) or nouns (300) with the rarest classes never annotated, json fps 30/50/60/90;
* Ego4D MQ: ``features/omnivore/<uuid>.npy`` and ``features/egovlp/<uuid>.npy`` (one ``[T, C_j]`` per
  folder), 8-minute clips, 110 classes all used somewhere in the file;
* ``config.yaml``: the packaged official config with the paths, ``input_dim``, ``ext_score_file`` and
  ``output_folder`` replaced (``input_dim`` keeps the shipped form: Ego4D's ``ego4d_omnivore_egovlp`` gives
  one total for its two folders, so it becomes the sum of the synthetic channel counts).

For EPIC and Ego4D ``T = floor((duration * 30 - 32) / 16) + 1`` (32-frame clips every 16 frames at 30 fps);
the same rule with 16/16 at 15 fps gives the ActivityNet one. Features: per-class prototypes plus a shared
"actionness" direction in a small latent space, with ramped boundaries, scene shots and noise, smoothed,
projected to each folder's channels and passed through a ReLU. Each video is drawn from its own sub-seed
(``[seed, kind, split, number, stream]``); statistics come from :mod:`.synthetic_like_stats`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import math
import os
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tadformer.data import synthetic_like_stats as st
from tadformer.data.synthetic import SyntheticPaths, _atomic_write, generate_dataset
from tadformer.data.synthetic_features import _smooth_rows, _unit_rows
from tadformer.data.synthetic_like_stats import KINDS, class_names, kind_spec

__all__ = ["KINDS", "EXT_SCORE_NAME", "LikePaths", "generate_like", "make_database_like", "ext_scores_like",
           "activity_label", "num_steps_like", "kind_spec", "class_names"]

EXT_SCORE_NAME = "cuhk_val_simp_share_synth.json"
_KIND_CODE = {"thumos": 0, "activitynet": 1, "epic": 2, "ego4d": 3}
_F32 = np.float32
Segment = tuple[int, float, float]  # (label_id, start s, end s)


@dataclass(frozen=True)
class LikePaths(SyntheticPaths):
    """Where :func:`generate_like` wrote its outputs (absolute paths).

    ``feat_folder`` is the feature root (for Ego4D the parent of the per-type folders); ``feat_folders``
    lists the folders holding the files (one per feature type); ``ext_score_file`` is set for ActivityNet.
    """

    feat_folders: tuple[Path, ...] = ()
    ext_score_file: Path | None = None
    kind: str = "thumos"


def num_steps_like(duration_sec: float, fps: float, feat_stride: int, num_frames: int) -> int:
    """Feature steps of a video: ``floor((duration_sec * fps - num_frames) / feat_stride) + 1``, at least 1."""
    return max(1, math.floor((duration_sec * fps - num_frames) / feat_stride) + 1)


# ------------------------------------------------------------------------------------ annotations


def _video_id(kind: str, seed: int, code: int, number: int) -> str:
    if kind == "epic":  # participants P01..P37; training 'P01_101' (EPIC-100 style), validation 'P01_01'
        k = number - 1
        video = 101 + k // st.EPIC_PARTICIPANTS if code == 0 else f"{1 + k // st.EPIC_PARTICIPANTS:02d}"
        return f"P{k % st.EPIC_PARTICIPANTS + 1:02d}_{video}"
    digest = hashlib.sha256(f"tadformer-synth/{kind}/{seed}/{code}/{number}".encode()).digest()
    if kind == "ego4d":
        return str(uuid.UUID(bytes=digest[:16], version=4))
    return base64.urlsafe_b64encode(digest).decode()[:11]  # a YouTube-like id


def _anet_video(rng: np.random.Generator, scale: float, label: int,
                extra: list[int]) -> tuple[float, float, list[Segment]]:
    """One activity ``label`` (~1.5 long instances); ``extra`` classes get one short instance each."""
    duration = round(float(st.ANET_DURATION.at(rng.random())) * scale, 2)
    counts = list(st.ANET_INSTANCES_PMF)
    pmf = np.array([st.ANET_INSTANCES_PMF[k] for k in counts])
    n = counts[int(rng.choice(len(counts), p=pmf / pmf.sum()))]
    cover = rng.uniform(*(st.ANET_COVER_ONE if n == 1 else st.ANET_COVER_MANY))
    lengths = np.maximum(rng.dirichlet(np.full(n, 2.0)) * cover * duration, st.ANET_MIN_INSTANCE_SEC)
    labels = [label] * n + extra
    if extra:  # short, so that ``label`` keeps most of the annotated time
        short = min(0.05 * duration, 0.5 * duration / len(extra), 0.5 * lengths.min())
        order = rng.permutation(len(labels))
        labels = [labels[i] for i in order]
        lengths = np.concatenate([lengths, np.full(len(extra), short)])[order]
    lengths *= min(1.0, 0.98 * duration / lengths.sum())
    gaps = rng.dirichlet(np.ones(len(labels) + 1)) * (duration - lengths.sum())
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    segs = [(int(c), float(s), float(s + d)) for c, s, d in zip(labels, starts, lengths)]
    if rng.random() < st.ANET_DUPLICATE_PROB:
        segs.append(segs[int(rng.integers(len(segs)))])
    return duration, st.pick(rng, st.ANET_FPS), segs


def _anet_classes(perm: list[int], split: int, number: int, plan_index: int, num_train: int,
                  num_videos: int) -> tuple[int, list[int]]:
    """The activity of a video, and extra classes it must hold so that every class occurs in the file.

    Training video ``n`` takes ``perm[n - 1]``, validation video ``n`` takes ``perm[-n]`` (both modulo the
    class count), so with at least 200 videos in all every class occurs and each video's class depends
    only on its split and number. With fewer videos the classes left over are spread as extra instances
    over the training videos (over all videos if there are none), so evaluation videos keep one class.
    """
    num = len(perm)
    label = perm[(number - 1) % num] if split == 0 else perm[-number % num]
    uncovered = perm[min(num_train, num):max(num - (num_videos - num_train), min(num_train, num))]
    hosts = num_train or num_videos
    return label, uncovered[plan_index::hosts] if plan_index < hosts else []


def _epic_video(rng: np.random.Generator, scale: float, class_z: np.ndarray,
                base_probs: np.ndarray) -> tuple[float, float, list[Segment]]:
    duration = round(float(st.EPIC_DURATION.at(rng.random())) * scale, 2)
    n = max(1, round(st.EPIC_RATE_MEDIAN * math.exp(st.EPIC_RATE_LOG_SD * rng.standard_normal()) * duration))
    probs = base_probs * np.exp(st.EPIC_VIDEO_PREF_SD * rng.standard_normal(len(base_probs)))
    labels = rng.choice(len(probs), size=n, p=probs / probs.sum())
    r = st.EPIC_CLASS_LEN_CORR
    u = st.normal_cdf(r * class_z[labels] + math.sqrt(1.0 - r * r) * rng.standard_normal(n))
    lengths = st.EPIC_SEG_LEN.at(u)
    overlap = rng.random(n) < st.EPIC_OVERLAP_PROB
    adv = np.where(overlap, rng.uniform(0.05, 0.95, n) * lengths, lengths)  # start-to-start without gaps
    budget = (1.0 - st.EPIC_MIN_BACKGROUND) * duration
    squeeze = max(st.EPIC_MIN_SQUEEZE, min(1.0, budget / (adv[:-1].sum() + lengths[-1])))
    lengths, adv = lengths * squeeze, adv * squeeze  # dense videos: shorter segments ...
    fixed = np.cumsum(adv) - adv + lengths  # time used by the first k+1 segments
    n = max(1, int(np.searchsorted(fixed, budget, side="right")))  # ... and what still does not fit is dropped
    labels, lengths, overlap, adv = labels[:n], np.minimum(lengths[:n], budget), overlap[:n], adv[:n]
    gap_slot = np.concatenate([[True], ~overlap[:-1]])  # a gap before the first and after each non-overlap
    weights = np.exp(st.EPIC_GAP_LOG_SD * rng.standard_normal(n + 1)) * np.append(gap_slot, True)
    gaps = weights / weights.sum() * max(duration - (adv[:-1].sum() + lengths[-1]), 0.0)
    starts = np.cumsum(gaps[:-1] + np.concatenate([[0.0], adv[:-1]]))
    segs = [(int(c), float(s), float(s + d)) for c, s, d in zip(labels, starts, lengths)]
    return duration, st.pick(rng, st.EPIC_FPS), segs


def _ego4d_video(rng: np.random.Generator, scale: float, required: list[int],
                 base_probs: np.ndarray) -> tuple[float, float, list[Segment]]:
    duration = st.EGO4D_CLIP_SEC
    if rng.random() < st.EGO4D_SHORT_CLIP_PROB:
        duration = rng.uniform(st.EGO4D_SHORT_CLIP_MIN_SEC, st.EGO4D_CLIP_SEC)
    duration = round(float(duration) * scale, 3)
    n_draw = st.EGO4D_MOMENTS_MEDIAN * math.exp(st.EGO4D_MOMENTS_LOG_SD * rng.standard_normal())
    n = max(1, round(n_draw * duration / st.EGO4D_CLIP_SEC), len(required))
    labels = rng.choice(len(base_probs), size=n, p=base_probs)
    labels[:len(required)] = required  # every class appears somewhere in the file
    lengths = np.minimum(st.EGO4D_MOMENT_LEN.at(rng.random(n)), 0.9 * duration)
    starts = rng.random(n) * (duration - lengths)
    return duration, st.EGO4D_FPS, [(int(c), float(s), float(s + d)) for c, s, d in zip(labels, starts, lengths)]


def _entry(kind: str, subset: str, duration: float, fps: float, segs: list[Segment],
           names: tuple[str, ...], digits: int) -> dict[str, Any]:
    anns = []
    for label, s, e in sorted(segs, key=lambda x: (x[1], x[2], x[0])):
        start = round(s, digits)
        end = max(round(min(e, duration), digits), round(start + 10.0**-digits, digits))
        ann: dict[str, Any] = {"label": names[label], "segment": [start, end]}
        if kind == "epic":
            ann["segment(frames)"] = [round(start * fps), round(end * fps)]
        ann["label_id"] = label
        anns.append(ann)
    return {"subset": subset, "duration": duration, "fps": fps, "annotations": anns}


def _plan(kind: str, train_videos: int, test_videos: int, seed: int) -> list[tuple[str, int, int, str]]:
    """(video id, split code, number, subset) of every video, training first."""
    out = []
    for code, count in enumerate((train_videos, test_videos)):
        for number in range(1, count + 1):
            out.append((_video_id(kind, seed, code, number), code, number, st.SUBSETS[code]))
    if len({vid for vid, *_ in out}) != len(out):  # EPIC with > 3663 validation videos (or a sha256 collision)
        raise ValueError(f"{kind}: synthetic video ids collide; use fewer videos")
    return out


def _check(train_videos: int, test_videos: int, scale: float) -> None:
    if train_videos < 0 or test_videos < 0 or train_videos + test_videos == 0:
        raise ValueError(f"need train_videos >= 0, test_videos >= 0 and at least one video, "
                         f"got {train_videos} and {test_videos}")
    if not scale > 0:
        raise ValueError(f"duration_scale must be > 0, got {scale}")


def make_database_like(kind: str, *, train_videos: int | None = None, test_videos: int | None = None,
                       seed: int = 0, duration_scale: float | None = None,
                       vocabulary: str = "verb") -> dict[str, Any]:
    """Sample the annotation json of ``kind`` ('activitynet', 'epic' or 'ego4d') without writing anything.

    Returns:
        ``{"version": ..., "database": {video_id: {"subset", "duration", "fps", "annotations"}}}``, ids sorted.
    """
    spec = kind_spec(kind, vocabulary)
    train_videos = spec.default_train if train_videos is None else train_videos
    test_videos = spec.default_test if test_videos is None else test_videos
    scale = spec.default_duration_scale if duration_scale is None else duration_scale
    _check(train_videos, test_videos, scale)
    code, names = _KIND_CODE[kind], class_names(kind, vocabulary)
    plan = _plan(kind, train_videos, test_videos, seed)
    shared = np.random.default_rng([seed, code, 0x5EED])  # dataset-level structure (class tables)
    if kind == "activitynet":
        perm = shared.permutation(st.ANET_NUM_CLASSES).tolist()
    elif kind == "epic":
        num = st.EPIC_NUM_CLASSES[vocabulary]
        base = st.zipf_probs(num, st.EPIC_ZIPF, num - st.EPIC_EMPTY_CLASSES[vocabulary])
        class_z = st.balanced_scores(shared, base)
    elif kind == "ego4d":
        perm = shared.permutation(st.EGO4D_NUM_CLASSES).tolist()
        base = st.zipf_probs(st.EGO4D_NUM_CLASSES, st.EGO4D_ZIPF, st.EGO4D_NUM_CLASSES)[shared.permutation(
            st.EGO4D_NUM_CLASSES)]
    database: dict[str, Any] = {}
    for index, (vid, split, number, subset) in enumerate(plan):
        rng = np.random.default_rng([seed, code, split, number, 0])
        if kind == "activitynet":
            video = _anet_video(rng, scale, *_anet_classes(perm, split, number, index, train_videos, len(plan)))
        elif kind == "epic":
            video = _epic_video(rng, scale, class_z, base)
        else:
            video = _ego4d_video(rng, scale, perm[index::len(plan)], base)
        database[vid] = _entry(kind, subset, *video, names, spec.round_digits)
    return {"version": f"{kind}-synthetic", "database": dict(sorted(database.items()))}


def activity_label(entry: dict[str, Any]) -> int:
    """The label_id with the most annotated time in a video's json entry (ActivityNet: its activity)."""
    total: dict[int, float] = {}
    for ann in entry["annotations"]:
        total[ann["label_id"]] = total.get(ann["label_id"], 0.0) + ann["segment"][1] - ann["segment"][0]
    return max(total, key=lambda c: (total[c], -c))


def ext_scores_like(database: dict[str, Any], *, seed: int = 0, accuracy: float = 0.8) -> dict[str, Any]:
    """CUHK-style video-level class scores for every ActivityNet video of ``database`` (its ``database`` dict).

    The true class (the video's activity: the class with the most annotated time) gets the highest score
    with probability ``accuracy``, else a random other class does and the true class is usually second;
    scores are a softmax (positive, sum to 1).
    """
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"ext_accuracy must be in [0, 1], got {accuracy}")
    num = st.ANET_NUM_CLASSES
    results = {}
    for vid, entry in database.items():
        rng = np.random.default_rng([seed, _KIND_CODE["activitynet"], 0xE87, *vid.encode()])
        logits = st.EXT_LOGIT_SD * rng.standard_normal(num)
        true = activity_label(entry) if entry["annotations"] else int(rng.integers(num))
        logits[true] += st.EXT_TRUE_BOOST
        top = true if rng.random() < accuracy else (true + 1 + int(rng.integers(num - 1))) % num
        logits[top] = np.delete(logits, top).max() + 0.1 + rng.exponential(st.EXT_TOP_MARGIN)
        z = np.exp((logits - logits.max()) / st.EXT_TEMPERATURE)
        results[vid] = [float(v) for v in z / z.sum()]
    return {"results": results, "class": list(st.ANET_CLASS_NAMES)}


# ------------------------------------------------------------------------------------ features


@dataclass(frozen=True)
class _Space:
    protos: np.ndarray  # (K, L) unit rows
    action: np.ndarray  # (L,) unit
    edges: np.ndarray  # (2, L) unit: class-agnostic start and end directions
    projs: tuple[np.ndarray, ...]  # per folder (L + 1, C_j); last row = offset


def _space(seed: int, code: int, num_classes: int, dims: Sequence[int]) -> _Space:
    rng = np.random.default_rng([seed, code, 0xC1A55])
    lat = st.LATENT_DIM
    protos = _unit_rows(rng.standard_normal((num_classes, lat)))
    action = _unit_rows(rng.standard_normal((1, lat)))[0]
    edges = _unit_rows(rng.standard_normal((2, lat)))
    projs = []
    for j, dim in enumerate(dims):
        r = np.random.default_rng([seed, code, 0xF00D, j, dim])
        proj = np.empty((lat + 1, dim), dtype=_F32)
        proj[:-1] = r.standard_normal((lat, dim), dtype=_F32) * _F32(1.5 / math.sqrt(lat))
        proj[-1] = 0.1
        projs.append(proj)
    return _Space(protos, action, edges, tuple(projs))


def _features(entry: dict[str, Any], num_steps: int, spec: st.KindSpec, space: _Space,
              rng: np.random.Generator) -> list[np.ndarray]:
    """``[T, C_j]`` float32 non-negative features of one video, one array per feature folder."""
    lat, sps = st.LATENT_DIM, spec.feat_fps / spec.feat_stride
    offset = 0.5 * spec.num_frames / spec.feat_stride  # clip-centre offset, grid units
    z = np.empty((num_steps, lat), dtype=_F32)
    n_shots = max(1, int(rng.poisson(num_steps / (st.SHOT_SEC * sps))))
    bounds = [0, *np.sort(rng.integers(0, num_steps, n_shots - 1)).tolist(), num_steps]
    base = 0.6 * _unit_rows(rng.standard_normal((1, lat)))[0]
    shots = 0.3 * _unit_rows(rng.standard_normal((n_shots, lat)))
    for i in range(n_shots):
        z[bounds[i]:bounds[i + 1]] = base + shots[i]
    tau = st.RAMP_STEPS
    for ann in entry["annotations"]:
        s, e = (x * sps - offset for x in ann["segment"])
        if e - s < 1.0:
            s, e = 0.5 * (s + e) - 0.5, 0.5 * (s + e) + 0.5
        width = max(1.0, st.EDGE_WIDTH * (e - s))  # boundary bumps, wider for longer instances
        reach = max(6 * tau, 3 * width)
        t0, t1 = max(0, math.floor(s - reach)), min(num_steps, math.ceil(e + reach) + 1)
        if t1 <= t0:
            continue
        t = np.arange(t0, t1, dtype=np.float64)
        env = 1.0 / (1.0 + np.exp(-(t - s) / tau)) / (1.0 + np.exp(-(e - t) / tau))
        vec = space.protos[ann["label_id"]] + st.INTRA_CLASS_SD * _unit_rows(rng.standard_normal((1, lat)))[0]
        vec = _unit_rows(vec[None])[0] + st.ACTIONNESS * space.action
        amp = st.EVIDENCE_AMP * math.exp(0.2 * rng.standard_normal())
        progress = np.clip((t - s) / (e - s), 0.0, 1.0)[:, None]  # start -> end drift inside the instance
        edge = np.exp(-0.5 * ((t - s) / width) ** 2)[:, None] * space.edges[0] \
            + np.exp(-0.5 * ((t - e) / width) ** 2)[:, None] * space.edges[1]
        z[t0:t1] += (amp * env[:, None] * (vec + st.PROGRESS_AMP * ((1.0 - progress) * space.edges[0]
                                                                    + progress * space.edges[1]))
                     + st.EDGE_AMP * amp * edge).astype(_F32)
    z += _F32(st.LATENT_NOISE) * rng.standard_normal((num_steps, lat), dtype=_F32)
    z = _smooth_rows(z)
    outs = []
    for proj in space.projs:
        feats = z @ proj[:-1] + proj[-1]
        feats += _F32(st.CHANNEL_NOISE) * rng.standard_normal(feats.shape, dtype=_F32)
        outs.append(np.maximum(feats, 0.0, out=feats))
    return outs


def _save(f: Any, arr: np.ndarray, npz: bool) -> None:
    """``np.save``, or a ``.npz`` holding ``feats`` with a fixed zip timestamp (``np.savez`` stamps the time)."""
    if not npz:
        return np.save(f, arr)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo("feats.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def _dims(spec: st.KindSpec, kind: str, input_dim: int | Sequence[int] | None) -> tuple[int, ...]:
    if input_dim is None:
        return spec.default_dims
    dims = (input_dim,) if isinstance(input_dim, int) else tuple(int(d) for d in input_dim)
    if len(dims) != len(spec.feat_dirs) or min(dims) < 1:
        raise ValueError(f"{kind}: input_dim must give {len(spec.feat_dirs)} positive channel count(s) (one per "
                         f"feature folder {list(spec.feat_dirs)}), got {input_dim!r}")
    return dims


def _write_config(paths: LikePaths, spec: st.KindSpec, dims: tuple[int, ...]) -> None:
    """The packaged official config with this dataset's paths and channels (same form as the shipped one:
    a list ``input_dim`` stays a list, a single number becomes the total of the folders)."""
    from tadformer.config import dump_config, load_config, packaged_config

    cfg = load_config(packaged_config(spec.config_name))
    shipped = cfg.dataset.input_dim
    input_dim: int | tuple[int, ...] = dims if isinstance(shipped, tuple) and len(dims) > 1 else sum(dims)
    folders = tuple(str(f) for f in paths.feat_folders)
    dataset = dataclasses.replace(cfg.dataset, json_file=str(paths.json_file), input_dim=input_dim,
                                  feat_folder=folders[0] if len(folders) == 1 else folders)
    test_cfg = cfg.test_cfg
    if paths.ext_score_file is not None:
        test_cfg = dataclasses.replace(test_cfg, ext_score_file=str(paths.ext_score_file))
    cfg = dataclasses.replace(cfg, dataset=dataset, test_cfg=test_cfg, output_folder=str(paths.root / "ckpt"))
    dump_config(cfg, paths.config_file)


def generate_like(kind: str, out_dir: str | os.PathLike[str], *, train_videos: int | None = None,
                  test_videos: int | None = None, input_dim: int | Sequence[int] | None = None, seed: int = 0,
                  progress: bool = False, duration_scale: float | None = None, vocabulary: str = "verb",
                  ext_accuracy: float = 0.8) -> LikePaths:
    """Write a synthetic dataset shaped like ``kind`` ('activitynet', 'epic', 'ego4d' or 'thumos').

    Args:
        kind: the benchmark; 'thumos' delegates to :func:`tadformer.data.synthetic.generate_dataset`.
        out_dir: output root (created if missing); files are overwritten atomically.
        train_videos, test_videos: numbers of 'training' / 'validation' videos (THUMOS: 'Validation' / 'Test');
            None: 160/60 (ActivityNet), 24/8 (EPIC, Ego4D), 200/212 (THUMOS).
        input_dim: channels per feature folder: an int, or for Ego4D a pair (omnivore, egovlp). None: 128
            (ActivityNet, EPIC), (64, 32) (Ego4D), 2048 (THUMOS).
        seed: master seed; output bytes are a pure function of all arguments.
        progress: show a tqdm progress bar over videos.
        duration_scale: factor on video durations (segment counts follow, segment lengths do not). None:
            0.5 for EPIC (median video 108 s instead of 216 s), 1.0 otherwise.
        vocabulary: EPIC classes, 'verb' (97) or 'noun' (300).
        ext_accuracy: top-1 accuracy of the simulated ActivityNet video classifier.

    Returns:
        The absolute paths of what was written.
    """
    if kind == "thumos":
        if input_dim is not None and not isinstance(input_dim, int):
            raise ValueError(f"thumos: input_dim must be one channel count, got {input_dim!r}")
        base = generate_dataset(out_dir, train_videos=200 if train_videos is None else train_videos,
                                test_videos=212 if test_videos is None else test_videos,
                                input_dim=2048 if input_dim is None else input_dim,
                                seed=seed, duration_scale=1.0 if duration_scale is None else duration_scale,
                                progress=progress)
        return LikePaths(**dataclasses.asdict(base), feat_folders=(base.feat_folder,), kind=kind)
    spec = kind_spec(kind, vocabulary)
    dims = _dims(spec, kind, input_dim)
    train_videos = spec.default_train if train_videos is None else train_videos
    test_videos = spec.default_test if test_videos is None else test_videos
    db = make_database_like(kind, train_videos=train_videos, test_videos=test_videos, seed=seed,
                            duration_scale=duration_scale, vocabulary=vocabulary)
    ext_db = ext_scores_like(db["database"], seed=seed, accuracy=ext_accuracy) if kind == "activitynet" else None
    root = Path(out_dir).resolve()
    paths = LikePaths(root=root, json_file=root / "annotations" / spec.json_name, feat_folder=root / "features",
                      config_file=root / "config.yaml", feat_folders=tuple(root / d for d in spec.feat_dirs),
                      ext_score_file=root / "annotations" / EXT_SCORE_NAME if ext_db else None, kind=kind)
    for folder in (paths.json_file.parent, *paths.feat_folders):
        folder.mkdir(parents=True, exist_ok=True)
    code = _KIND_CODE[kind]
    space = _space(seed, code, len(class_names(kind, vocabulary)), dims)
    numbers = {vid: (split, number) for vid, split, number, _ in _plan(kind, train_videos, test_videos, seed)}
    items: Any = db["database"].items()
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(db["database"]), desc=f"synthetic {kind} videos", unit="video")
    for vid, entry in items:
        rng = np.random.default_rng([seed, code, *numbers[vid], 1])
        steps = num_steps_like(entry["duration"], spec.feat_fps, spec.feat_stride, spec.num_frames)
        for folder, feats in zip(paths.feat_folders, _features(entry, steps, spec, space, rng)):
            path = folder / f"{spec.file_prefix}{vid}{spec.file_ext}"
            _atomic_write(path, lambda f, a=feats: _save(f, a, spec.file_ext == ".npz"), "wb")
    _atomic_write(paths.json_file, lambda f: json.dump(db, f))
    if ext_db is not None and paths.ext_score_file is not None:
        _atomic_write(paths.ext_score_file, lambda f: json.dump(ext_db, f))
    _write_config(paths, spec, dims)
    return paths

