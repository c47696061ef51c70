"""Facts about ActivityNet-1.3, EPIC-Kitchens-100 and Ego4D Moment Queries, for :mod:`.synthetic_like`.

Quantile tables are sampled log-linearly between knots (``probs`` -> ``values``). Times are in seconds.
The EPIC-Kitchens-100 numbers were measured on the public validation annotations (138 videos, 9,668
segments); the ActivityNet and Ego4D numbers are rounded published facts about those benchmarks
(one activity class per ActivityNet video, ~1.5 long instances per video; Ego4D MQ clips of 8 minutes
with a handful of short moments each).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Quantiles:
    """A distribution given by quantile knots, sampled log-linearly between them."""

    probs: tuple[float, ...]
    values: tuple[float, ...]

    def at(self, u: float | np.ndarray) -> Any:
        """The value at quantile(s) ``u`` in [0, 1] (feed uniform draws to sample)."""
        return np.exp(np.interp(u, self.probs, np.log(np.asarray(self.values))))


@dataclass(frozen=True)
class KindSpec:
    """On-disk layout and feature grid of one benchmark (values of its official config).

    Attributes:
        config_name: the packaged config the written config starts from.
        json_name: annotation file name (under ``annotations/``).
        feat_dirs: feature folders under the root (one per feature type).
        file_prefix, file_ext: feature file name = prefix + video id + ext.
        feat_stride, num_frames, feat_fps: one feature per ``feat_stride`` frames at ``feat_fps``, each
            from ``num_frames`` frames.
        default_dims: default channels per feature folder.
        default_train, default_test: default numbers of training / validation videos.
        default_duration_scale: default factor on the video durations (and so on the counts).
        round_digits: decimals of the annotation times.
    """

    config_name: str
    json_name: str
    feat_dirs: tuple[str, ...]
    file_prefix: str
    file_ext: str
    feat_stride: int
    num_frames: int
    feat_fps: float
    default_dims: tuple[int, ...]
    default_train: int
    default_test: int
    default_duration_scale: float
    round_digits: int


SPECS: dict[str, KindSpec] = {
    "activitynet": KindSpec("anet_tsp", "anet1.3_tsp_synth.json", ("features",), "v_", ".npy",
                            16, 16, 15.0, (128,), 160, 60, 1.0, 2),
    "epic": KindSpec("epic_slowfast_verb", "epic_kitchens_100_verb_synth.json", ("features",), "", ".npz",
                     16, 32, 30.0, (128,), 24, 8, 0.5, 2),
    "ego4d": KindSpec("ego4d_omnivore_egovlp", "ego4d_synth.json", ("features/omnivore", "features/egovlp"),
                      "", ".npy", 16, 32, 30.0, (64, 32), 24, 8, 1.0, 3),
}
SUBSETS = ("training", "validation")
KINDS = ("activitynet", "epic", "ego4d", "thumos")

# ------------------------------------------------------------------------------------ ActivityNet 1.3

ANET_NUM_CLASSES = 200
ANET_CLASS_NAMES: tuple[str, ...] = tuple(f"Class {i:03d}" for i in range(ANET_NUM_CLASSES))
#: Number of instances per video (mean 1.53; one activity class per video).
ANET_INSTANCES_PMF: dict[int, float] = {1: 0.70, 2: 0.17, 3: 0.07, 4: 0.03, 5: 0.02, 6: 0.01}
ANET_DURATION = Quantiles((0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 1.0), (25.0, 50.0, 80.0, 125.0, 170.0, 205.0, 240.0))
#: Share of the video covered by the instances: U(lo, hi) for one instance, for several.
ANET_COVER_ONE = (0.25, 0.98)
ANET_COVER_MANY = (0.35, 0.90)
ANET_MIN_INSTANCE_SEC = 1.0
#: Raw video frame rates in the json (the config's default_fps 15 is what the features use).
ANET_FPS: tuple[tuple[float, float], ...] = ((29.97, 0.55), (30.0, 0.25), (25.0, 0.15), (24.0, 0.05))
#: Per-video probability that one annotation is repeated (the official dataset removes duplicates).
ANET_DUPLICATE_PROB = 0.03
#: External classifier: logit noise sd, boost of the true class, margin of the top class, softmax temperature.
EXT_LOGIT_SD = 1.0
EXT_TRUE_BOOST = 2.0
EXT_TOP_MARGIN = 1.5
EXT_TEMPERATURE = 0.6

# ------------------------------------------------------------------------------------ EPIC-Kitchens-100

EPIC_NUM_CLASSES: dict[str, int] = {"verb": 97, "noun": 300}
#: Classes (the highest ids, i.e. the rarest) that never occur in the file, so their head bias is the
#: empty-class one (the real validation split holds 78 of the 97 verbs).
EPIC_EMPTY_CLASSES: dict[str, int] = {"verb": 7, "noun": 30}
#: Class frequency ~ (rank + 1) ** -EPIC_ZIPF (label ids are frequency ranks, as in EPIC), times a per-video
#: log-normal preference of sd EPIC_VIDEO_PREF_SD.
EPIC_ZIPF = 1.05
EPIC_VIDEO_PREF_SD = 0.7
EPIC_DURATION = Quantiles((0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 1.0), (32.0, 65.0, 105.0, 216.0, 500.0, 900.0, 1200.0))
#: Segments per second of video: log-normal with this median and sd (gives ~35 segments per video at the
#: median and ~65 on average, for the real 35 / 70; the densest videos cannot hold all their draws).
EPIC_RATE_MEDIAN = 0.168
EPIC_RATE_LOG_SD = 0.8
#: Segment length before dense videos are squeezed (see EPIC_MIN_SQUEEZE); tuned so that the generated
#: lengths match the real 5/25/50/75/95th percentiles EPIC_REAL_LEN_PCTS_SEC.
EPIC_SEG_LEN = Quantiles((0.0, 0.05, 0.25, 0.50, 0.75, 0.95, 1.0), (0.45, 1.15, 1.45, 2.38, 4.62, 13.2, 66.0))
#: Rank correlation between a class's typical length and its segments' lengths (Gaussian copula).
EPIC_CLASS_LEN_CORR = 0.5
#: Share of consecutive segments (sorted by start) that overlap.
EPIC_OVERLAP_PROB = 0.26
#: Background gaps get log-normal weights of this sd; at least this share of a video is background.
EPIC_GAP_LOG_SD = 1.0
EPIC_MIN_BACKGROUND = 0.05
#: Dense videos get segments up to this factor shorter before segments are dropped.
EPIC_MIN_SQUEEZE = 0.6
#: Native frame rates written in the json (features are at 30 fps whatever the video's rate).
EPIC_FPS: tuple[tuple[float, float], ...] = ((50.0, 0.50), (60.0, 0.38), (30.0, 0.07), (90.0, 0.05))
EPIC_PARTICIPANTS = 37
#: Reference statistics of the real validation split (for tests and docs).
EPIC_REAL_LEN_PCTS_SEC = {5: 0.74, 25: 1.2, 50: 1.96, 75: 3.88, 95: 11.9}
EPIC_REAL_DURATION = {"min": 32.0, "median": 216.0, "mean": 344.0, "max": 1200.0}
EPIC_REAL_SEGMENTS = {"median": 35.0, "mean": 70.0}

# ------------------------------------------------------------------------------------ Ego4D MQ

EGO4D_NUM_CLASSES = 110
EGO4D_CLASS_NAMES: tuple[str, ...] = tuple(f"moment_{i:03d}" for i in range(EGO4D_NUM_CLASSES))
EGO4D_ZIPF = 0.8
EGO4D_CLIP_SEC = 480.0
#: Share of clips that are the (shorter) end of their video, with a duration U(lo, CLIP_SEC).
EGO4D_SHORT_CLIP_PROB = 0.15
EGO4D_SHORT_CLIP_MIN_SEC = 120.0
#: Moments per clip: log-normal median and sd (at least 1).
EGO4D_MOMENTS_MEDIAN = 6.0
EGO4D_MOMENTS_LOG_SD = 0.6
EGO4D_MOMENT_LEN = Quantiles((0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 1.0), (0.5, 2.5, 5.5, 13.0, 32.0, 75.0, 400.0))
EGO4D_FPS = 30.0

# ------------------------------------------------------------------------------------ features

#: Latent size, class-evidence amplitude, shared "actionness" weight, intra-class spread, boundary ramp
#: (feature steps), latent noise sd (before smoothing), per-channel noise sd, scene shot length (s).
LATENT_DIM = 48
EVIDENCE_AMP = 2.2
ACTIONNESS = 0.6
INTRA_CLASS_SD = 0.35
RAMP_STEPS = 0.6
LATENT_NOISE = 0.6
CHANNEL_NOISE = 0.1
SHOT_SEC = 20.0
#: Class-agnostic boundary cues: bumps of relative amplitude EDGE_AMP and width EDGE_WIDTH x instance length
#: (at least one step) on the start and end directions, and a drift from the start to the end direction
#: across each instance (relative amplitude PROGRESS_AMP), so boundaries can be regressed from inside.
EDGE_AMP = 0.6
EDGE_WIDTH = 0.08
PROGRESS_AMP = 0.5


def kind_spec(kind: str, vocabulary: str = "verb") -> KindSpec:
    """Layout of ``kind`` ('activitynet', 'epic' or 'ego4d'; EPIC: of its ``vocabulary``, 'verb' or 'noun')."""
    if kind not in SPECS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    spec = SPECS[kind]
    if kind == "epic":
        if vocabulary not in EPIC_NUM_CLASSES:
            raise ValueError(f"vocabulary must be 'verb' or 'noun', got {vocabulary!r}")
        spec = dataclasses.replace(spec, config_name=f"epic_slowfast_{vocabulary}",
                                   json_name=f"epic_kitchens_100_{vocabulary}_synth.json")
    return spec


def class_names(kind: str, vocabulary: str = "verb") -> tuple[str, ...]:
    """Class names of ``kind`` indexed by label_id."""
    kind_spec(kind, vocabulary)
    if kind == "activitynet":
        return ANET_CLASS_NAMES
    if kind == "ego4d":
        return EGO4D_CLASS_NAMES
    return tuple(f"{vocabulary}_{i:03d}" for i in range(EPIC_NUM_CLASSES[vocabulary]))


# ------------------------------------------------------------------------------------ sampling helpers


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (elementwise)."""
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)))


def pick(rng: np.random.Generator, table: Sequence[tuple[float, float]]) -> float:
    """A value from a ``(value, weight)`` table."""
    weights = np.array([w for _, w in table], dtype=np.float64)
    return float(table[int(rng.choice(len(table), p=weights / weights.sum()))][0])


def zipf_probs(num: int, exponent: float, active: int) -> np.ndarray:
    """Class probabilities ``(id + 1) ** -exponent`` for the first ``active`` ids, 0 for the rest."""
    p = np.zeros(num)
    p[:active] = (np.arange(active) + 1.0) ** -exponent
    return p / p.sum()


def balanced_scores(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """A normal score per class, spread so that the ``weights``-weighted distribution is ~ N(0, 1).

    Classes in random order take the normal quantile at the middle of their cumulative weight, so the
    overall segment-length distribution does not hinge on where the few frequent classes land.
    """
    order = rng.permutation(len(weights))
    w = weights[order]
    mids = np.clip(np.cumsum(w) - 0.5 * w, 1e-6, 1.0 - 1e-6)
    z = np.empty(len(weights))
    z[order] = [NormalDist().inv_cdf(float(m)) for m in mids]
    return z
