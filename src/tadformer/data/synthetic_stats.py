"""A small table of facts about THUMOS14, used by the synthetic generator (:mod:`.synthetic`).

Every number here was computed once from the real ActionFormer annotation file
(``thumos14.json``, 412 videos, 6,365 segments; see ``shared/data/thumos14/STATS.md``) and is
written down so the package runs without that file. Times are in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The 20 THUMOS14 classes; ``label_id`` is the index (alphabetical order, as in the real json).
CLASS_NAMES: tuple[str, ...] = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing",
    "HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault",
    "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)
NUM_CLASSES = len(CLASS_NAMES)
CLIFF_DIVING, CRICKET_BOWLING, CRICKET_SHOT, DIVING = 4, 5, 6, 7


@dataclass(frozen=True)
class ClassFacts:
    """Per-class facts: segment length is log-normal(log(median_len_sec), len_log_sd).

    ``median_segments`` is the median number of this class's segments in a real video holding
    this class alone.
    """

    median_len_sec: float
    len_log_sd: float
    median_segments: float


#: Indexed by label_id. Medians and log-sds of segment length over val+test.
CLASS_FACTS: tuple[ClassFacts, ...] = (
    ClassFacts(3.0, 0.47, 2.0), ClassFacts(1.5, 0.52, 31.5), ClassFacts(2.2, 0.72, 7.0),
    ClassFacts(8.75, 0.68, 4.0), ClassFacts(2.7, 0.55, 7.5), ClassFacts(1.2, 0.62, 6.0),
    ClassFacts(1.1, 0.55, 9.0), ClassFacts(2.5, 0.53, 14.5), ClassFacts(2.3, 0.67, 4.5),
    ClassFacts(4.2, 0.99, 3.0), ClassFacts(7.1, 0.40, 13.0), ClassFacts(4.5, 0.53, 12.0),
    ClassFacts(6.3, 0.40, 18.5), ClassFacts(7.1, 0.46, 7.5), ClassFacts(6.4, 0.48, 18.0),
    ClassFacts(4.65, 0.75, 6.0), ClassFacts(2.9, 0.52, 3.0), ClassFacts(1.5, 0.69, 10.5),
    ClassFacts(4.25, 0.97, 4.0), ClassFacts(1.7, 0.79, 8.0),
)

#: Real videos per class program (412 in all). "single:<id>" holds one class; "cricket" holds
#: CricketBowling+CricketShot events; "cliff" holds CliffDiving with every segment duplicated as
#: Diving; "mix" holds two classes from :data:`MIX_PAIRS` (the real rare co-occurrences).
PROGRAM_WEIGHTS: dict[str, int] = {
    **{f"single:{i}": n for i, n in enumerate(
        (21, 20, 20, 21, 0, 6, 8, 20, 16, 18, 19, 20, 20, 20, 19, 23, 21, 18, 18, 23))},
    "cricket": 27,
    "cliff": 26,
    "mix": 8,
}
MIX_PAIRS: tuple[tuple[int, int], ...] = (
    (15, 18), (15, 18), (3, 10), (3, 18), (0, 8), (13, 14), (9, 17), (11, 12),
)

#: Median number of events (a Cricket event is a bowling + shot pair, a cliff event is a CliffDiving
#: segment + its Diving copy) of the multi-class programs.
PROGRAM_MEDIAN_EVENTS: dict[str, float] = {"cricket": 7.0, "cliff": 7.5, "mix": 13.0}
#: Spread of the number of events per video around the median (log-normal sd), and its rank
#: correlation with the video duration (a Gaussian copula; the real Spearman rho is 0.65).
EVENTS_LOG_SD = 0.95
EVENTS_DURATION_CORR = 0.7
#: When the actions do not fit, the duration grows to span / U(lo, hi) (foreground fraction).
MAX_FG_FRACTION_RANGE = (0.4, 0.9)

#: Video duration quantiles (val+test) at these probabilities; sampled log-linearly between knots.
DURATION_PROBS: tuple[float, ...] = (0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99, 1.0)
DURATION_QUANTILES_SEC: tuple[float, ...] = (8.9, 42.6, 88.8, 154.6, 228.7, 430.4, 1144.2, 1673.4)
MIN_DURATION_SEC = 6.0

#: fps mix: (fps, count) for videos up to / longer than LONG_VIDEO_SEC (381 x 30, 18 x 29.97,
#: 11 x 25, 2 x 24 in all; the non-30 fps videos are mostly the long ones).
LONG_VIDEO_SEC = 300.0
FPS_SHORT: tuple[tuple[float, int], ...] = ((30.0, 341), (29.97, 5))
FPS_LONG: tuple[tuple[float, int], ...] = ((30.0, 40), (29.97, 13), (25.0, 11), (24.0, 2))

#: Background time is split into gaps with log-normal weights of this sd (bursty repetitions).
GAP_WEIGHT_LOG_SD = 1.1
#: Cricket: the shot starts this many seconds after the bowling ends (negative = overlap).
CRICKET_SHOT_DELAY_SEC = (-0.5, 0.2)
#: Share of cricket-program events that only hold a bowling or only a shot.
CRICKET_SINGLE_EVENT_PROB = 0.15
#: Per-video probability that the last segments run past the video's end (5 of 412 videos).
PAST_END_VIDEO_PROB = 5 / 412
PAST_END_MAX_SEC = 3.0

#: Classes sharing part of their feature subspace (similar motions / scenes).
CLASS_GROUPS: tuple[tuple[int, ...], ...] = (
    (4, 7),  # CliffDiving, Diving
    (5, 6),  # CricketBowling, CricketShot
    (10, 15, 18, 12),  # HammerThrow, Shotput, ThrowDiscus, JavelinThrow
    (11, 13, 14),  # HighJump, LongJump, PoleVault
    (1, 19),  # BasketballDunk, VolleyballSpiking
    (0, 8, 9, 17),  # BaseballPitch, FrisbeeCatch, GolfSwing, TennisSwing
)

#: Real reference quantiles (p25, p50, p75) for tests: segment length (s) and segments/video.
REAL_LENGTH_QUARTILES_SEC = (1.6, 3.0, 5.9)
REAL_SEGMENTS_PER_VIDEO_QUARTILES = (3.0, 8.0, 20.0)


@dataclass(frozen=True)
class Difficulty:
    """Feature-synthesis knobs (latent units; the class evidence has unit-norm directions).

    Attributes:
        amp: mean amplitude of class evidence inside ground truth.
        tau_steps: boundary ramp time constant, in feature steps.
        jitter_sec: sd of the offset between annotated and "true" (evidence) boundaries.
        intra_sd: per-segment coefficient spread around the class mean (intra-class variation).
        distractor_rate: distractor bursts per ground-truth segment, placed in the background.
        distractor_amp: distractor amplitude relative to ``amp``.
        noise: sd of the per-step latent noise (before temporal smoothing).
        hd_noise: sd of the high-dimensional (full input_dim) noise.
    """

    amp: float
    tau_steps: float
    jitter_sec: float
    intra_sd: float
    distractor_rate: float
    distractor_amp: float
    noise: float
    hd_noise: float


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(3.0, 0.5, 0.0, 0.3, 0.1, 0.25, 0.4, 0.05),
    "thumos": Difficulty(1.6, 1.5, 0.3, 0.6, 0.6, 0.55, 0.7, 0.10),
    "hard": Difficulty(1.1, 2.5, 0.5, 0.8, 1.0, 0.75, 0.9, 0.15),
}
