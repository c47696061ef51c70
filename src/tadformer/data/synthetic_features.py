"""Feature synthesis for the synthetic THUMOS14 stand-in (see :mod:`.synthetic`).

A video's features are built in a ``LATENT_DIM``-dimensional latent space, one row per feature
step, as the sum of:

* a per-video **scene** (class-correlated context + a random part) that changes at camera cuts;
* **class evidence** inside each ground-truth segment, in the class's rank-``CLASS_RANK``
  subspace, with per-segment random coefficients (intra-class variation) and three **phases**
  (a start bump, a middle plateau and an end bump), with boundaries that ramp over a few steps and
  are offset from the annotated ones by a random jitter;
* **distractors** in the background: weaker middle-phase-only evidence of the video's classes
  (or, sometimes, another class);
* per-step latent noise.

The latent sequence is smoothed with a 5-tap kernel (I3D clips of 16 frames at stride 4 overlap by
75 %), projected with a fixed random ``(LATENT_DIM, input_dim)`` matrix, offset, given
high-dimensional noise (rows of a temporally smooth noise bank) and passed through a ReLU.
Cost per video is O(T * input_dim) with one float32 matmul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tadformer.data import synthetic_stats as st

LATENT_DIM = 64
CLASS_RANK = 8
SMOOTH_KERNEL = np.array([1.0, 2.0, 2.0, 2.0, 1.0], dtype=np.float32) / 8.0
NOISE_BANK_ROWS = 4099
SHOT_LEN_SEC = 8.0
PROJ_GAIN = 1.5
PROJ_BIAS = 0.1
_F32 = np.float32


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(_F32)


def _smooth_rows(x: np.ndarray, circular: bool = False) -> np.ndarray:
    """Convolve ``(T, K)`` along T with :data:`SMOOTH_KERNEL` (edge-replicated or circular)."""
    half = len(SMOOTH_KERNEL) // 2
    padded = np.pad(x, ((half, half), (0, 0)), mode="wrap" if circular else "edge")
    out = np.zeros_like(x)
    for i, w in enumerate(SMOOTH_KERNEL):
        out += w * padded[i:i + len(x)]
    return out


@dataclass(frozen=True)
class FeatureSpace:
    """The fixed (per seed) random structure shared by all videos of a dataset.

    Attributes:
        class_basis: ``(C, CLASS_RANK, LATENT_DIM)`` unit rows; classes of a group share part of it.
        phase_means: ``(C, 3, CLASS_RANK)`` mean coefficients of the start/middle/end phases.
        context: ``(C, LATENT_DIM)`` unit scene-context direction of each class.
        proj: ``(LATENT_DIM + 1, input_dim)`` projection; the last row is the constant offset.
        noise_bank: ``(NOISE_BANK_ROWS, input_dim)`` noise of sd ``hd_noise``, smooth along rows
            (circularly).
    """

    class_basis: np.ndarray
    phase_means: np.ndarray
    context: np.ndarray
    proj: np.ndarray
    noise_bank: np.ndarray

    @classmethod
    def build(cls, seed: int, input_dim: int, hd_noise: float) -> FeatureSpace:
        """Latent structure from ``seed`` alone; projection and noise bank from ``(seed, input_dim)``."""
        rng = np.random.default_rng([seed, 0xC1A55])
        n_cls = st.NUM_CLASSES
        own = rng.standard_normal((n_cls, CLASS_RANK, LATENT_DIM))
        own_ctx = rng.standard_normal((n_cls, LATENT_DIM))
        basis, ctx = 0.8 * own, 0.7 * own_ctx
        for group in st.CLASS_GROUPS:
            shared = rng.standard_normal((CLASS_RANK, LATENT_DIM))
            shared_ctx = rng.standard_normal(LATENT_DIM)
            for c in group:
                basis[c] += 0.6 * shared
                ctx[c] += 0.7 * shared_ctx
        phase_means = rng.standard_normal((n_cls, 3, CLASS_RANK)).astype(_F32)
        rng_dim = np.random.default_rng([seed, 0xF00D, input_dim])
        proj = np.empty((LATENT_DIM + 1, input_dim), dtype=_F32)
        proj[:-1] = rng_dim.standard_normal((LATENT_DIM, input_dim), dtype=_F32)
        proj[:-1] *= _F32(PROJ_GAIN / math.sqrt(LATENT_DIM))
        proj[-1] = PROJ_BIAS
        bank = _smooth_rows(rng_dim.standard_normal((NOISE_BANK_ROWS, input_dim), dtype=_F32), circular=True)
        bank *= _F32(hd_noise) / bank.std()
        return cls(_unit_rows(basis), phase_means, _unit_rows(ctx), proj, bank)


def _add_evidence(z: np.ndarray, space: FeatureSpace, label: int, start: float, end: float, amp: float,
                  diff: st.Difficulty, rng: np.random.Generator, phases: bool) -> None:
    """Add one instance of class ``label`` between grid positions ``start`` and ``end`` to ``z``."""
    tau = diff.tau_steps
    pad = 4.0 * tau + 2.0
    t0, t1 = max(0, math.floor(start - pad)), min(len(z), math.ceil(end + pad) + 1)
    if t1 <= t0:
        return
    t = np.arange(t0, t1, dtype=_F32)
    env = 1.0 / (1.0 + np.exp(-(t - start) / tau)) / (1.0 + np.exp(-(end - t) / tau))
    coefs = space.phase_means[label] + diff.intra_sd * rng.standard_normal((3, CLASS_RANK))
    vecs = _unit_rows(coefs @ space.class_basis[label])  # (3, K): start, middle, end
    profile = env[:, None] * vecs[1]
    if phases:
        width = max(1.0, 0.15 * (end - start))
        bump_start = env * np.exp(-0.5 * ((t - start) / width) ** 2)
        bump_end = env * np.exp(-0.5 * ((t - end) / width) ** 2)
        profile += bump_start[:, None] * vecs[0] + bump_end[:, None] * vecs[2]
    z[t0:t1, :-1] += _F32(amp) * profile.astype(_F32)


def _scene(num_steps: int, steps_per_sec: float, classes: list[int], space: FeatureSpace,
           rng: np.random.Generator) -> np.ndarray:
    """``(T, K)`` per-video scene: class context + random part, changing partly at camera cuts."""
    ctx = space.context[classes].sum(axis=0) if classes else np.zeros(LATENT_DIM, _F32)
    base = 0.8 * ctx / max(float(np.linalg.norm(ctx)), 1e-6)
    base += 0.6 * _unit_rows(rng.standard_normal(LATENT_DIM))
    z = np.empty((num_steps, LATENT_DIM + 1), dtype=_F32)
    z[:, -1] = 1.0
    n_shots = max(1, int(rng.poisson(num_steps / (SHOT_LEN_SEC * steps_per_sec))))
    cuts = np.sort(rng.integers(0, num_steps, n_shots - 1)) if n_shots > 1 else np.zeros(0, np.int64)
    bounds = [0, *cuts.tolist(), num_steps]
    shot_offsets = 0.5 * _unit_rows(rng.standard_normal((n_shots, LATENT_DIM)))
    for i in range(n_shots):
        z[bounds[i]:bounds[i + 1], :-1] = base + shot_offsets[i]
    return z


def synthesize_video(entry: dict[str, Any], num_steps: int, space: FeatureSpace, diff: st.Difficulty,
                     rng: np.random.Generator) -> np.ndarray:
    """Features of one video.

    Args:
        entry: the video's json entry (``duration`` s, ``fps``, ``annotations`` with ``segment`` s).
        num_steps: T, the number of feature steps.
        space: the dataset's shared random structure.
        diff: difficulty knobs.
        rng: the video's own generator (its content depends only on this and ``space``).

    Returns:
        ``(T, input_dim)`` float32, non-negative.
    """
    fps = float(entry["fps"])
    steps_per_sec = fps / 4.0
    anns = entry["annotations"]
    classes = sorted({int(a["label_id"]) for a in anns})
    z = _scene(num_steps, steps_per_sec, classes, space, rng)  # (T, K + 1), last column = 1
    grid = [(int(a["label_id"]), a["segment"][0] * steps_per_sec - 2.0, a["segment"][1] * steps_per_sec - 2.0)
            for a in anns]
    jitter = diff.jitter_sec * steps_per_sec
    for label, s, e in grid:
        s_ev, e_ev = s + jitter * rng.standard_normal(), e + jitter * rng.standard_normal()
        if e_ev - s_ev < 1.0:
            s_ev, e_ev = s, e
        amp = diff.amp * math.exp(0.3 * rng.standard_normal())
        _add_evidence(z, space, label, s_ev, e_ev, amp, diff, rng, phases=True)
    _add_distractors(z, grid, classes, steps_per_sec, space, diff, rng)
    z[:, :-1] += _F32(diff.noise) * rng.standard_normal((num_steps, LATENT_DIM), dtype=_F32)
    z = _smooth_rows(z)
    feats = z @ space.proj
    _add_bank_noise(feats, space.noise_bank, int(rng.integers(NOISE_BANK_ROWS)))
    np.maximum(feats, 0.0, out=feats)
    return feats


def _add_distractors(z: np.ndarray, grid: list[tuple[int, float, float]], classes: list[int],
                     steps_per_sec: float, space: FeatureSpace, diff: st.Difficulty,
                     rng: np.random.Generator) -> None:
    """Weak middle-phase-only class evidence at background places (a few tries to avoid the GT)."""
    n_dis = int(rng.poisson(diff.distractor_rate * max(len(grid), 1)))
    busy = np.zeros(len(z), dtype=bool)
    for _, s, e in grid:
        busy[max(0, math.floor(s)):max(0, math.ceil(e) + 1)] = True
    for _ in range(n_dis):
        own = classes and rng.random() < 0.8
        label = classes[int(rng.integers(len(classes)))] if own else int(rng.integers(st.NUM_CLASSES))
        facts = st.CLASS_FACTS[label]
        length = facts.median_len_sec * math.exp(facts.len_log_sd * rng.standard_normal()) * steps_per_sec
        length = min(max(length, 2.0), 0.5 * len(z))
        for _try in range(4):
            start = float(rng.uniform(-2.0, len(z) - length))
            a, b = max(0, int(start)), min(len(z), int(start + length) + 1)
            if not busy[a:b].any():
                amp = diff.amp * diff.distractor_amp * float(rng.uniform(0.5, 1.5))
                _add_evidence(z, space, label, start, start + length, amp, diff, rng, phases=False)
                break


def _add_bank_noise(feats: np.ndarray, bank: np.ndarray, offset: int) -> None:
    """``feats[t] += bank[(offset + t) % rows]`` in contiguous chunks (no gather copy)."""
    t, rows = 0, len(bank)
    while t < len(feats):
        r = (offset + t) % rows
        n = min(rows - r, len(feats) - t)
        feats[t:t + n] += bank[r:r + n]
        t += n
