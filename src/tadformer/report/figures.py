"""Report figures: each function draws one PNG with matplotlib and returns its path.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so no display
and no pyplot global state are involved (the global backend is left alone). Output is
deterministic: fixed size and dpi, no randomness, no timestamp in the PNG metadata. Each PNG is
written atomically (temp file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tadformer.results_io import DetectionsLike

DPI = 100
_LOSS_KEYS = ("cls_loss", "reg_loss", "final_loss")
ClassNames = Sequence[str] | Mapping[int, str] | None
_OUTCOME_COLORS = {"true_positive": "tab:green", "double_detection": "tab:orange", "wrong_label": "tab:red",
                   "localization": "tab:blue", "confusion": "tab:purple", "background": "tab:gray"}

__all__ = [
    "plot_loss_curves", "plot_lr_curve", "plot_map_vs_tiou", "plot_per_class_ap", "plot_pr_curves",
    "plot_timeline", "plot_score_histogram", "plot_error_analysis", "save_timeline_figure",
    "smooth_curve", "class_color",
]


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _name(label: int, class_names: ClassNames) -> str:
    if class_names is None:
        return f"class {label}"
    try:
        return str(class_names[label])
    except (IndexError, KeyError):
        return f"class {label}"


def class_color(label: int) -> tuple[float, float, float, float]:
    """Fixed RGBA colour of a class id: tab20's strong colours for ids 0-9, its light ones for 10-19."""
    label = int(label) % 20
    rgba = matplotlib.colormaps["tab20"](2 * (label % 10) + label // 10)
    return (float(rgba[0]), float(rgba[1]), float(rgba[2]), float(rgba[3]))


def smooth_curve(values: Sequence[float] | np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard-style); NaNs are carried over, not averaged."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full_like(x, np.nan)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(x.tolist()):
        if not np.isfinite(v):
            continue
        acc = weight * acc + (1.0 - weight) * v
        norm = weight * norm + (1.0 - weight)
        out[i] = acc / norm
    return out


def _steps(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    if all("step" in r for r in records):
        return np.asarray([float(r["step"]) for r in records])
    return np.arange(1, len(records) + 1, dtype=np.float64)


def _column(records: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.asarray([float(r.get(key, np.nan)) if r.get(key) is not None else np.nan for r in records])


def plot_loss_curves(path: str | os.PathLike[str], records: Sequence[Mapping[str, Any]],
                     smoothing: float = 0.9) -> Path:
    """Raw (faint) and smoothed cls / reg / final loss against the optimiser step.

    Args:
        path: PNG to write.
        records: ``train_log.jsonl`` rows (``step``, ``cls_loss``, ``reg_loss``, ``final_loss``...).
        smoothing: weight of :func:`smooth_curve`.
    """
    if not records:
        raise ValueError("plot_loss_curves: no training log records")
    steps = _steps(records)
    fig = _figure(11, 3.4)
    axes = fig.subplots(1, 3)
    for ax, key in zip(axes, _LOSS_KEYS):
        raw = _column(records, key)
        ax.plot(steps, raw, color="tab:blue", alpha=0.25, linewidth=0.8, label="raw")
        ax.plot(steps, smooth_curve(raw, smoothing), color="tab:blue", linewidth=1.8, label="smoothed")
        ax.set_title(key)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    axes[0].legend(loc="upper right")
    return _save(fig, path)


def plot_lr_curve(path: str | os.PathLike[str], records: Sequence[Mapping[str, Any]]) -> Path:
    """Learning rate (and gradient norm before clipping, when logged) against the optimiser step."""
    if not records:
        raise ValueError("plot_lr_curve: no training log records")
    steps = _steps(records)
    grad = _column(records, "grad_norm")
    fig = _figure(11, 3.0)
    axes = fig.subplots(1, 2 if np.isfinite(grad).any() else 1, squeeze=False)[0]
    axes[0].plot(steps, _column(records, "lr"), color="tab:orange", linewidth=1.5)
    axes[0].set_title("learning rate")
    axes[0].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if len(axes) > 1:
        axes[1].plot(steps, grad, color="tab:green", alpha=0.3, linewidth=0.8)
        axes[1].plot(steps, smooth_curve(grad), color="tab:green", linewidth=1.5)
        axes[1].set_title("gradient norm (before clipping)")
    for ax in axes:
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_map_vs_tiou(path: str | os.PathLike[str],
                     series: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> Path:
    """mAP (%) against the tIoU threshold, one line per weights set (e.g. EMA, regular).

    Args:
        path: PNG to write.
        series: name -> (tIoU thresholds [T], mAP fractions [T]).
    """
    fig = _figure(6.4, 4.0)
    ax = fig.subplots()
    for i, (name, (thr, m)) in enumerate(series.items()):
        t, v = np.asarray(thr, dtype=float), 100 * np.asarray(m, dtype=float)
        ax.plot(t, v, marker="o", color=f"C{i}", label=f"{name} (avg {v.mean():.2f})")
        for x, y in zip(t.tolist(), v.tolist()):
            ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6 + 10 * i),
                        ha="center", fontsize=8, color=f"C{i}")
    ax.set_xlabel("tIoU threshold")
    ax.set_ylabel("mAP (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return _save(fig, path)


def plot_per_class_ap(path: str | os.PathLike[str], class_names: Sequence[str],
                      ap_at_05: Sequence[float], ap_avg: Sequence[float], avg_label: str = "avg tIoU 0.3-0.7") -> Path:
    """Horizontal bars of per-class AP (%) at tIoU 0.5 and averaged over the thresholds, best first."""
    if not (len(class_names) == len(ap_at_05) == len(ap_avg)):
        raise ValueError("plot_per_class_ap: class_names, ap_at_05 and ap_avg must have the same length")
    order = sorted(range(len(class_names)), key=lambda i: (-ap_avg[i], class_names[i]))
    y = np.arange(len(order), dtype=float)
    fig = _figure(8, 1.2 + 0.32 * max(len(order), 1))
    ax = fig.subplots()
    ax.barh(y - 0.2, [100 * ap_avg[i] for i in order], height=0.4, color="tab:blue", label=avg_label)
    ax.barh(y + 0.2, [100 * ap_at_05[i] for i in order], height=0.4, color="tab:orange", label="tIoU 0.5")
    ax.set_yticks(y, [class_names[i] for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("AP (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr_curves(path: str | os.PathLike[str],
                   curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   mean_curve: tuple[np.ndarray, np.ndarray] | None = None,
                   ap: Mapping[str, float] | None = None, tiou: float = 0.5, max_panels: int = 30) -> Path:
    """Small multiples of precision-recall curves, one panel per class, with the class mean dashed.

    Args:
        path: PNG to write.
        curves: class name -> (precision [P], recall [P]) in the evaluator's visiting order.
        mean_curve: (precision [R], recall grid [R]) drawn in every panel, or None.
        ap: class name -> AP, shown in the panel titles.
        tiou: threshold the curves were computed at (titles only).
        max_panels: at most this many classes are drawn (in the given order).
    """
    names = list(curves)[:max_panels]
    cols = min(5, max(len(names), 1))
    rows = max(1, -(-len(names) // cols))
    fig = _figure(2.4 * cols, 2.2 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        prec, rec = curves[name]
        if mean_curve is not None:
            ax.plot(mean_curve[1], mean_curve[0], color="0.5", linestyle="--", linewidth=1)
        ax.plot(np.concatenate([[0.0], rec]), np.concatenate([[1.0], prec]) if len(prec) else [1.0],
                color="tab:blue", linewidth=1.4, drawstyle="steps-post")
        title = name if ap is None or name not in ap else f"{name} ({100 * ap[name]:.1f})"
        ax.set_title(title, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    fig.suptitle(f"precision-recall at tIoU {tiou:.2f} (dashed: class mean); x recall, y precision", fontsize=10)
    return _save(fig, path)


def _draw_rows(ax: Axes, rows: list[tuple[str, list[tuple[float, float, int, float]]]]) -> None:
    for y, (_, bars) in enumerate(rows):
        for start, end, label, alpha in bars:
            ax.broken_barh([(start, max(end - start, 1e-3))], (y - 0.38, 0.76),
                           facecolors=[class_color(label)], alpha=alpha, edgecolor="black", linewidth=0.4)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)


def plot_timeline(path: str | os.PathLike[str], *, video_id: str, class_names: ClassNames,
                  det_segments_sec: np.ndarray, det_scores: np.ndarray, det_labels: np.ndarray,
                  gt_segments_sec: np.ndarray | None = None, gt_labels: np.ndarray | None = None,
                  duration_sec: float | None = None, top_n: int = 30, subtitle: str = "") -> Path:
    """GT rows and detection rows per class for one video; detection opacity follows the score.

    Args:
        path: PNG to write.
        video_id: shown in the title.
        class_names: names by label id (None: ``class <id>``).
        det_segments_sec, det_scores, det_labels: [K, 2] seconds, [K], [K] detections.
        gt_segments_sec, gt_labels: [M, 2] seconds and [M] GT, or None for no GT rows.
        duration_sec: x-axis end (default: the latest segment end).
        top_n: only the ``top_n`` highest-scoring detections are drawn.
        subtitle: extra text for the title (e.g. the video's AP).
    """
    segs = np.asarray(det_segments_sec, dtype=float).reshape(-1, 2)
    scores = np.asarray(det_scores, dtype=float).reshape(-1)
    labels = np.asarray(det_labels, dtype=np.int64).reshape(-1)
    keep = np.argsort(-scores, kind="stable")[:top_n]
    segs, scores, labels = segs[keep], scores[keep], labels[keep]
    g_segs = np.zeros((0, 2)) if gt_segments_sec is None else np.asarray(gt_segments_sec, float).reshape(-1, 2)
    g_labels = np.zeros(0, np.int64) if gt_labels is None else np.asarray(gt_labels, np.int64).reshape(-1)
    rows: list[tuple[str, list[tuple[float, float, int, float]]]] = []
    top = float(scores.max()) if len(scores) and scores.max() > 0 else 1.0  # opacity relative to the best
    for c in sorted(set(g_labels.tolist()) | set(labels.tolist())):
        if gt_segments_sec is not None:
            rows.append((f"GT  {_name(c, class_names)}",
                         [(s, e, c, 1.0) for s, e in g_segs[g_labels == c].tolist()]))
        dets = [(s, e, c, float(np.clip(p / top, 0.08, 1.0)))
                for (s, e), p in zip(segs[labels == c].tolist(), scores[labels == c].tolist())]
        rows.append((f"det {_name(c, class_names)}", dets))
    fig = _figure(11, 1.4 + 0.3 * max(len(rows), 1))
    ax = fig.subplots()
    _draw_rows(ax, rows)
    ends = np.concatenate([segs[:, 1], g_segs[:, 1], [1.0]])
    ax.set_xlim(0, duration_sec if duration_sec else float(ends.max()) * 1.02)
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    title = f"{video_id}: top {len(keep)} detections (opacity = score / best score {top:.3f})"
    ax.set_title(title + (f" - {subtitle}" if subtitle else ""), fontsize=10)
    if not rows:
        ax.text(0.5, 0.5, "no detections and no ground truth", transform=ax.transAxes, ha="center")
    return _save(fig, path)


def plot_score_histogram(path: str | os.PathLike[str], tp_scores: np.ndarray, fp_scores: np.ndarray,
                         tiou: float = 0.5, bins: int = 40) -> Path:
    """Histograms (log counts) of the scores of true and false positives at ``tiou``."""
    tp, fp = np.asarray(tp_scores, float), np.asarray(fp_scores, float)
    top = max(1.0, float(np.concatenate([tp, fp, [0.0]]).max()))
    edges = np.linspace(0.0, top, bins + 1).tolist()
    fig = _figure(7, 3.8)
    ax = fig.subplots()
    ax.hist(fp, bins=edges, color="tab:red", alpha=0.6, label=f"false positives ({len(fp)})")
    ax.hist(tp, bins=edges, color="tab:green", alpha=0.6, label=f"true positives ({len(tp)})")
    if len(tp) + len(fp):
        ax.set_yscale("log")
    ax.set_xlabel("detection score")
    ax.set_ylabel("count (log)")
    ax.set_title(f"scores of matched (TP) and unmatched (FP) detections at tIoU {tiou:.2f}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_error_analysis(path: str | os.PathLike[str], category_counts: Mapping[str, int],
                        length_bins: Sequence[str], num_gt: Sequence[int] | np.ndarray,
                        num_missed: Sequence[int] | np.ndarray) -> Path:
    """Left: share of each category among the analysed predictions; right: missed GT per length bin."""
    fig = _figure(11, 3.8)
    left, right = fig.subplots(1, 2)
    names = list(category_counts)
    total = max(sum(category_counts.values()), 1)
    shares = [100 * category_counts[n] / total for n in names]
    left.bar(range(len(names)), shares, color=[_OUTCOME_COLORS.get(n, f"C{i}") for i, n in enumerate(names)])
    for i, n in enumerate(names):
        left.annotate(str(category_counts[n]), (i, shares[i]), textcoords="offset points", xytext=(0, 2),
                      ha="center", fontsize=8)
    left.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    left.set_ylabel("% of analysed predictions")
    left.set_title("top predictions by outcome", fontsize=10)
    gt_n, miss = np.asarray(num_gt, float), np.asarray(num_missed, float)
    rate = np.divide(100 * miss, gt_n, out=np.zeros_like(miss), where=gt_n > 0)
    right.bar(range(len(length_bins)), rate, color="tab:purple")
    for i, (m, g) in enumerate(zip(miss.tolist(), gt_n.tolist())):
        right.annotate(f"{int(m)}/{int(g)}", (i, rate[i]), textcoords="offset points", xytext=(0, 2),
                       ha="center", fontsize=8)
    right.set_xticks(range(len(length_bins)), list(length_bins))
    right.set_ylim(0, 105)
    right.set_ylabel("% of GT missed")
    right.set_title("missed ground truth by length", fontsize=10)
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _video_gt(annotation_json: str | os.PathLike[str], video_id: str
              ) -> tuple[np.ndarray, np.ndarray, float | None] | None:
    """GT segments [M, 2], labels [M] and duration of ``video_id`` in an annotation json, or None."""
    try:
        db = json.loads(Path(annotation_json).read_text(encoding="utf-8"))["database"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{annotation_json}: expected an annotation json with a 'database' key") from err
    entry = db.get(video_id)
    if entry is None:
        return None
    anns = entry.get("annotations", [])
    segs = np.asarray([a["segment"] for a in anns], dtype=float).reshape(-1, 2)
    labels = np.asarray([a["label_id"] for a in anns], dtype=np.int64)
    duration = entry.get("duration")
    return segs, labels, float(duration) if duration is not None else None


def save_timeline_figure(path: str | os.PathLike[str], detections: DetectionsLike, class_names: ClassNames,
                         annotation_json: str | os.PathLike[str] | None = None, video_id: str | None = None,
                         top_n: int = 30) -> Path:
    """Timeline of one video's detections (``tadformer infer --save-fig``), with GT rows when known.

    Args:
        path: PNG to write.
        detections: one video's detections (``segments_sec`` [K, 2], ``scores`` [K], ``labels`` [K]).
        class_names: names by label id, or None.
        annotation_json: annotation file; if it has the video, its GT rows and duration are drawn.
        video_id: video to look up (default ``detections.video_id``).
        top_n: draw the ``top_n`` highest-scoring detections.
    """
    vid = video_id or detections.video_id
    gt = _video_gt(annotation_json, vid) if annotation_json is not None else None
    note = ""
    if annotation_json is not None and gt is None:
        note = f"no ground truth for it in {Path(annotation_json).name}"
    return plot_timeline(
        path, video_id=vid, class_names=class_names,
        det_segments_sec=_to_numpy(detections.segments_sec), det_scores=_to_numpy(detections.scores),
        det_labels=_to_numpy(detections.labels),
        gt_segments_sec=gt[0] if gt else None, gt_labels=gt[1] if gt else None,
        duration_sec=gt[2] if gt else None, top_n=top_n, subtitle=note,
    )
