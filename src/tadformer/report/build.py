"""``tadformer report RUN_DIR``: a self-contained HTML report and its Markdown twin.

Reads only the saved files of a run directory (never the model)::

    config.yaml, class_names.json, train_log.jsonl          optional
    eval/metrics.json, eval/predictions.json                required (EMA weights)
    eval_regular/metrics.json, eval_regular/predictions.json optional (regular weights)
    dataset.json_file of config.yaml                        optional (GT-based sections)

and writes ``RUN_DIR/report/report.html`` (PNG figures embedded as base64 data URIs, inline CSS,
one tiny script that records in ``body[data-images-ok]`` how many images loaded) and
``RUN_DIR/report/report.md`` (linking the PNGs saved beside it). A missing optional input turns
its section into a note; a missing required one raises :class:`MissingRunFileError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tadformer.metrics import GroundTruth, interpolated_ap, load_ground_truth
from tadformer.report import figures
from tadformer.report.analysis import (
    ERROR_TYPES,
    TRUE_POSITIVE,
    Matching,
    MissedByLength,
    class_pr_curve,
    false_positive_analysis,
    match_predictions,
    mean_pr_curve,
    missed_by_length,
    per_video_ap,
    pick_videos,
)
from tadformer.report.render import Image, Section, Table, render_html, render_markdown
from tadformer.results_io import atomic_write_text, flatten_results, read_results_json

EVAL_COMMAND = "tadformer eval --ckpt RUN_DIR (writes RUN_DIR/eval/metrics.json and predictions.json)"
TOP_FACTOR = 10
_METRIC_KEYS = ("tiou_thresholds", "mAP", "average_mAP", "class_ids", "ap_per_class")
_CONFIG_KEYS = (
    "dataset_name", "train_split", "val_split", "init_rand_seed", "dataset.json_file", "dataset.num_classes",
    "dataset.input_dim", "dataset.feat_stride", "dataset.num_frames", "dataset.max_seq_len",
    "dataset.trunc_thresh", "dataset.crop_ratio", "model.backbone_type", "model.backbone_arch", "model.embd_dim",
    "model.n_head", "model.n_mha_win_size", "model.n_sgp_win_size", "model.sgp_mlp_dim", "model.k",
    "model.init_conv_vars", "model.num_bins", "model.iou_weight_power", "model.input_noise", "model.assigner",
    "model.fpn_type", "model.regression_range", "opt.type", "opt.learning_rate",
    "opt.weight_decay", "opt.epochs", "opt.warmup_epochs", "opt.schedule_type", "loader.batch_size",
    "train_cfg.center_sample_radius", "train_cfg.init_loss_norm", "train_cfg.clip_grad_l2norm",
    "train_cfg.droppath", "test_cfg.pre_nms_topk", "test_cfg.nms_method", "test_cfg.nms_sigma",
    "test_cfg.max_seg_num", "test_cfg.min_score", "test_cfg.multiclass_nms",
)
class MissingRunFileError(FileNotFoundError):
    """A file the report cannot do without is missing from the run directory."""


def _lookup(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def architecture_name(cfg: Mapping[str, Any] | None) -> str:
    """The detector of a run's ``config.yaml``, e.g. ``TriDet (model_name: TriDet)``."""
    from tadformer.config_arch import ARCHITECTURES, resolve_model_name

    name = str((cfg or {}).get("model_name") or "LocPointTransformer")
    official = resolve_model_name(name)
    return name if official is None else f"{ARCHITECTURES[official].display} (model_name: {official})"


def config_section(cfg: Mapping[str, Any] | None, note: str | None) -> Section:
    """Key recipe values of ``config.yaml`` (or the note saying why there are none)."""
    sec = Section("Configuration")
    if cfg is None:
        sec.blocks.append(note or "no config.yaml")
        return sec
    rows = [["architecture", architecture_name(cfg)]]
    rows += [[k, json.dumps(v) if not isinstance(v, str) else v] for k in _CONFIG_KEYS
             if (v := _lookup(cfg, k)) is not None]
    sec.blocks.append(Table(["key", "value"], rows))
    return sec


def read_train_log(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of ``train_log.jsonl`` (empty when absent) and the count of malformed lines skipped."""
    if not path.is_file():
        return [], 0
    rows: list[dict[str, Any]] = []
    skipped = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1  # e.g. a half-written last line of an interrupted run
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def map_rows(evals: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the mAP (%) table: one row per weights set, one column per tIoU + Avg."""
    thr = [float(t) for t in evals[0][1]["tiou_thresholds"]]
    header = ["weights"] + [f"{t:.2f}" for t in thr] + ["Avg"]
    rows = [[name] + [f"{100 * float(v):.2f}" for v in m["mAP"]] + [f"{100 * float(m['average_mAP']):.2f}"]
            for name, m in evals]
    return header, rows


@dataclass
class EvalFiles:
    """One evaluated weights set: ``metrics.json`` and the matching ``predictions.json``."""

    name: str
    metrics: dict[str, Any]
    predictions: dict[str, Any]


@dataclass
class RunFiles:
    """Everything the report reads, with notes on what was missing."""

    run_dir: Path
    config: dict[str, Any] | None
    class_names: list[str] | None
    train_log: list[dict[str, Any]]
    evals: list[EvalFiles]
    gt: GroundTruth | None
    gt_database: Mapping[str, Any]
    notes: dict[str, str] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def _read_eval(run_dir: Path, sub: str, name: str) -> EvalFiles | None:
    """``sub/metrics.json`` + ``sub/predictions.json``; None when either is missing."""
    metrics_path, pred_path = run_dir / sub / "metrics.json", run_dir / sub / "predictions.json"
    if not (metrics_path.is_file() and pred_path.is_file()):
        return None
    metrics = _read_json(metrics_path)
    missing = [k for k in _METRIC_KEYS if not isinstance(metrics, dict) or k not in metrics]
    if missing:
        raise ValueError(f"{metrics_path}: missing key(s) {missing}; expected EvalResult.to_dict() output")
    return EvalFiles(name, metrics, read_results_json(pred_path))


def _resolve(path_str: str, run_dir: Path) -> Path | None:
    for cand in (Path(path_str), run_dir / path_str, run_dir / Path(path_str).name):
        if cand.is_file():
            return cand
    return None


def _load_gt(run: RunFiles) -> None:
    cfg = run.config or {}
    json_file = (cfg.get("dataset") or {}).get("json_file")
    split = run.evals[0].metrics.get("split") or (cfg.get("val_split") or ["test"])[0]
    if not json_file:
        run.notes["gt"] = "config.yaml gives no dataset.json_file, so the ground truth is unknown"
        return
    path = _resolve(str(json_file), run.run_dir)
    if path is None:
        run.notes["gt"] = f"annotation file {json_file} (dataset.json_file) was not found"
        return
    raw = _read_json(path)
    run.gt = load_ground_truth(raw, str(split).lower())
    run.gt_database = raw["database"]
    run.notes["gt_source"] = f"ground truth: {path}, split {split!r} ({len(run.gt.labels)} segments)"


def load_run(run_dir: Path) -> RunFiles:
    """Read the run directory; raise :class:`MissingRunFileError` for a missing required file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MissingRunFileError(f"report: run directory {run_dir} does not exist")
    ema = _read_eval(run_dir, "eval", "EMA")
    if ema is None:
        missing = next(p for p in (run_dir / "eval" / n for n in ("metrics.json", "predictions.json"))
                       if not p.is_file())
        raise MissingRunFileError(f"report: {missing} is missing; run `{EVAL_COMMAND}` first")
    regular = _read_eval(run_dir, "eval_regular", "regular")
    run = RunFiles(run_dir, None, None, [], [ema] + ([regular] if regular else []), None, {})
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        run.config = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    else:
        run.notes["config"] = f"{cfg_path} not found (written by `tadformer train`)"
    names_path = run_dir / "class_names.json"
    if names_path.is_file():
        run.class_names = [str(n) for n in _read_json(names_path)]
    run.train_log, skipped = read_train_log(run_dir / "train_log.jsonl")
    if not run.train_log:
        run.notes["train"] = f"{run_dir / 'train_log.jsonl'} not found or empty (written by `tadformer train`)"
    elif skipped:
        run.notes["train"] = f"{skipped} malformed line(s) of train_log.jsonl were skipped"
    if regular is None:
        run.notes["regular"] = ("no eval_regular/ (the non-EMA weights were not evaluated: "
                                "`tadformer eval --ckpt RUN_DIR --no-ema --out RUN_DIR/eval_regular`)")
    _load_gt(run)
    return run


def _names_by_id(run: RunFiles) -> dict[int, str]:
    names = {i: n for i, n in enumerate(run.class_names or [])}
    metrics = run.evals[0].metrics
    for cid, name in zip(metrics["class_ids"], metrics["ap_per_class"]):
        names.setdefault(int(cid), str(name))
    return names


def _training_section(run: RunFiles, out: Path) -> Section:
    sec = Section("Training curves")
    if not run.train_log:
        sec.blocks.append(run.notes["train"])
        return sec
    last = run.train_log[-1]
    sec.blocks.append(f"{len(run.train_log)} logged optimiser steps, last epoch {last.get('epoch', '?')}; "
                      f"final losses: " + ", ".join(f"{k} {float(last[k]):.4f}" for k in
                                                    ("cls_loss", "reg_loss", "final_loss") if k in last))
    if "train" in run.notes:
        sec.blocks.append(run.notes["train"])
    sec.blocks.append(Image(figures.plot_loss_curves(out / "loss_curves.png", run.train_log),
                            "losses per optimiser step (faint: raw, solid: smoothed)"))
    sec.blocks.append(Image(figures.plot_lr_curve(out / "lr_curve.png", run.train_log),
                            "learning rate and gradient norm"))
    return sec


def _map_sections(run: RunFiles, out: Path) -> list[Section]:
    table = Section("Detection mAP", [Table(*map_rows([(e.name, e.metrics) for e in run.evals]))])
    table.blocks.append("mAP (%) of the official ActivityNet-style evaluator per tIoU threshold, and their mean.")
    if "regular" in run.notes:
        table.blocks.append(run.notes["regular"])
    curve = Section("mAP vs tIoU", [Image(figures.plot_map_vs_tiou(
        out / "map_vs_tiou.png", {e.name: (e.metrics["tiou_thresholds"], e.metrics["mAP"]) for e in run.evals}),
        "mAP against the tIoU threshold")])
    m = run.evals[0].metrics
    names = list(m["ap_per_class"])
    thr = np.asarray(m["tiou_thresholds"], dtype=float)
    ap = np.asarray([m["ap_per_class"][n] for n in names], dtype=float).reshape(len(names), len(thr))
    t05 = int(np.argmin(np.abs(thr - 0.5)))
    shown = best_and_worst(ap.mean(axis=1), names)
    what = (f"all {len(names)} classes" if len(shown) == len(names) else
            f"the {PER_CLASS_SHOWN} best and {PER_CLASS_SHOWN} worst of {len(names)} classes")
    per_class = Section("Per-class AP", [Image(figures.plot_per_class_ap(
        out / "per_class_ap.png", [names[i] for i in shown], ap[shown, t05].tolist(), ap[shown].mean(axis=1).tolist(),
        avg_label=f"avg tIoU {thr.min():.2f}-{thr.max():.2f}"),
        f"AP per class (EMA weights) at tIoU {thr[t05]:.2f} and averaged over the thresholds: {what}")])
    per_class.blocks.append(Table(["class", f"AP@{thr[t05]:.2f} (%)", "avg AP (%)"],
                                  [[names[i], f"{100 * ap[i, t05]:.2f}", f"{100 * ap[i].mean():.2f}"]
                                   for i in shown]))
    return [table, curve, per_class]


PER_CLASS_SHOWN = 15  # with more than twice this many classes, the report shows the best and worst ones


def best_and_worst(values: np.ndarray, names: list[str], k: int = PER_CLASS_SHOWN) -> list[int]:
    """Indices by descending value (ties by name): all of them, or the ``k`` best then the ``k`` worst."""
    order = sorted(range(len(names)), key=lambda i: (-float(values[i]), names[i]))
    return order if len(order) <= 2 * k else order[:k] + order[-k:]


def _pr_section(run: RunFiles, matching: Matching, names: Mapping[int, str], out: Path) -> Section:
    sec = Section("Precision-recall curves")
    curves = {names.get(c, f"class {c}"): class_pr_curve(matching, c, 0.5) for c in matching.class_ids.tolist()}
    ap = {n: interpolated_ap(*pr) for n, pr in curves.items()}
    if len(curves) > 2 * PER_CLASS_SHOWN:  # many classes: panels of the best and the worst ones
        keys = list(curves)
        keep = [keys[i] for i in best_and_worst(np.asarray([ap[k] for k in keys]), keys)]
        sec.blocks.append(f"{len(keys)} classes: panels of the {PER_CLASS_SHOWN} best and {PER_CLASS_SHOWN} worst "
                          "by AP at tIoU 0.5; the dashed mean is over every class.")
        mean = mean_pr_curve(list(curves.values()))
        curves = {k: curves[k] for k in keep}
    else:
        mean = mean_pr_curve(list(curves.values()))
    reported = run.evals[0].metrics["ap_per_class"]
    t05 = int(np.argmin(np.abs(np.asarray(run.evals[0].metrics["tiou_thresholds"]) - 0.5)))
    off = [n for n in ap if n in reported and abs(ap[n] - float(reported[n][t05])) > 1e-6]
    if off:
        sec.blocks.append(f"WARNING: AP recomputed from predictions.json differs from metrics.json for {off[:5]}; "
                          "the two files may come from different evaluations.")
    sec.blocks.append(Image(figures.plot_pr_curves(out / "pr_curves.png", curves, mean, ap),
                            "precision-recall at tIoU 0.5 per class (EMA weights)"))
    return sec


def _timeline_section(run: RunFiles, matching: Matching, names: Mapping[int, str], out: Path) -> Section:
    sec = Section("Timelines")
    video_ap = per_video_ap(matching)
    picks = pick_videos(video_ap)
    sec.blocks.append(f"Best, median and worst of {len(video_ap)} videos by per-video AP (mean over its GT classes "
                      "and the tIoU thresholds). Top 30 detections per video; opacity follows the score.")
    gt, pred = matching.gt, matching.pred
    for which, vid in picks.items():
        g = gt.video_index == gt.video_names.index(vid)
        p = (pred.video_index == pred.video_names.index(vid)) if vid in pred.video_names else np.zeros(len(pred), bool)
        duration = (run.gt_database.get(vid) or {}).get("duration")
        path = figures.plot_timeline(
            out / f"timeline_{which}.png", video_id=vid, class_names=names,
            det_segments_sec=np.stack([pred.t_start_sec[p], pred.t_end_sec[p]], axis=1),
            det_scores=pred.scores[p], det_labels=pred.labels[p],
            gt_segments_sec=np.stack([gt.t_start_sec[g], gt.t_end_sec[g]], axis=1), gt_labels=gt.labels[g],
            duration_sec=float(duration) if duration else None, top_n=30,
            subtitle=f"{which}, AP {100 * video_ap[vid]:.1f}%")
        sec.blocks.append(Image(path, f"{which}: {vid} (AP {100 * video_ap[vid]:.1f}%)"))
    return sec


def _score_section(matching: Matching, out: Path) -> Section:
    t = matching.threshold_index(0.5)
    counted, tp = matching.counted, matching.is_tp[t]
    scores = matching.pred.scores
    path = figures.plot_score_histogram(out / "score_histogram.png", scores[tp], scores[counted & ~tp])
    return Section("Score distribution", [
        f"{int(tp.sum())} true positives and {int((counted & ~tp).sum())} false positives at tIoU 0.5 "
        "(predictions of classes without GT are ignored, as by the evaluator).",
        Image(path, "scores of true and false positives at tIoU 0.5")])


def _missed_rows(missed: MissedByLength) -> list[list[str]]:
    rows = []
    for name, (lo, hi), g, m in zip(missed.bins, missed.edges_sec, missed.num_gt.tolist(),
                                    missed.num_missed.tolist()):
        span = f"({lo:g}, {hi:g}]" if np.isfinite(hi) else f"> {lo:g}"
        rows.append([name, span, str(g), str(m), f"{100 * m / g:.1f}" if g else "-"])
    return rows


def _error_section(matching: Matching, out: Path) -> Section:
    fpa = false_positive_analysis(matching, 0.5, TOP_FACTOR)
    counts = fpa.counts()
    total = max(sum(counts.values()), 1)
    missed = missed_by_length(matching, 0.5)
    sec = Section("Error analysis", [
        f"DETAD-style analysis at tIoU 0.5 of the top {TOP_FACTOR}·G predictions of each class (G = its GT count): "
        "double detection (tIoU ≥ 0.5 with an already matched GT of the class), wrong label (tIoU ≥ 0.5 with a "
        "GT of another class), localization (0.1 ≤ tIoU < 0.5, same class), confusion (0.1 ≤ tIoU < 0.5, other "
        "class), background (tIoU < 0.1 with every GT).",
        Table(["outcome", "count", "share (%)"],
              [[k, str(counts[k]), f"{100 * counts[k] / total:.1f}"] for k in (TRUE_POSITIVE, *ERROR_TYPES)]),
        "Missed ground truth (not matched at tIoU 0.5 by any prediction), by length:",
        Table(["length", "range (s)", "GT", "missed", "missed (%)"], _missed_rows(missed)),
    ])
    sec.blocks.append(Image(figures.plot_error_analysis(out / "error_analysis.png", counts, missed.bins,
                                                        missed.num_gt, missed.num_missed),
                            "outcome of the top predictions and missed GT by length"))
    return sec


def _gt_sections(run: RunFiles, out: Path) -> list[Section]:
    titles = ("Precision-recall curves", "Timelines", "Score distribution", "Error analysis")
    if run.gt is None:
        return [Section(t, [f"Skipped: {run.notes['gt']}."]) for t in titles]
    ema = run.evals[0]
    thr = list(ema.metrics["tiou_thresholds"])
    if not any(abs(t - 0.5) < 1e-6 for t in thr):
        thr.append(0.5)
    matching = match_predictions(run.gt, flatten_results(ema.predictions, "eval/predictions.json"),
                                 tiou_thresholds=thr)
    names = _names_by_id(run)
    return [_pr_section(run, matching, names, out), _timeline_section(run, matching, names, out),
            _score_section(matching, out), _error_section(matching, out)]


def _write(path: Path, text: str) -> None:
    atomic_write_text(path, text)
    os.chmod(path, 0o644)


def build_sections(run: RunFiles, out_dir: Path) -> list[Section]:
    """All report sections, drawing their figures into ``out_dir``."""
    summary = config_section(run.config, run.notes.get("config"))
    summary.blocks.insert(0, f"Run directory: {run.run_dir.resolve()}")
    if "gt_source" in run.notes:
        summary.blocks.append(run.notes["gt_source"])
    return [summary, _training_section(run, out_dir), *_map_sections(run, out_dir), *_gt_sections(run, out_dir)]


def build_report(run_dir: Path) -> tuple[Path, Path]:
    """Write ``RUN_DIR/report/report.html`` and ``report.md`` from the saved files of a run.

    Returns:
        (html path, markdown path).

    Raises:
        MissingRunFileError: ``eval/metrics.json`` or ``eval/predictions.json`` is missing.
        ValueError: an input file is malformed (the file and key are named).
    """
    run = load_run(Path(run_dir))
    out = run.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(run, out)
    arch = architecture_name(run.config).split(" (")[0] if run.config is not None else None
    title = f"tadformer report: {run.run_dir.resolve().name}" + (f" ({arch})" if arch else "")
    html_path, md_path = out / "report.html", out / "report.md"
    _write(html_path, render_html(title, sections))
    _write(md_path, render_markdown(title, sections, out))
    return html_path, md_path

