"""``tadformer demo``: synthetic THUMOS-shaped data -> train -> eval (regular + EMA) -> infer -> report.

Everything runs on a 2-core CPU with no data and no GPU. The recipe differs from the paper's
THUMOS14 recipe only where a few CPU minutes demand it (see :data:`DEMO_RECIPE` and the README):
narrower features and model, shorter videos, a larger learning rate and fewer epochs. The
architecture (conv embedding, local-attention transformer pyramid with 6 levels and window 19,
shared heads, focal + DIoU losses, EMA, Soft-NMS) is the official one.

``--model tridet|temporalmaxer`` trains that architecture instead, with its own THUMOS14 recipe
(``configs/thumos_i3d_<model>.yaml``: model, training and test settings, weight decay) scaled the same
way (:func:`architecture_recipe`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from tadformer.config import ConfigError, ExperimentConfig, apply_overrides, config_from_dict, load_config
from tadformer.metrics import EvalResult


@dataclass(frozen=True)
class DemoSize:
    """Dataset size and training length of a demo variant."""

    train_videos: int
    test_videos: int
    input_dim: int
    duration_scale: float
    epochs: int
    warmup_epochs: int


FULL = DemoSize(train_videos=80, test_videos=40, input_dim=256, duration_scale=0.3, epochs=12, warmup_epochs=2)
QUICK = DemoSize(train_videos=16, test_videos=8, input_dim=64, duration_scale=0.2, epochs=8, warmup_epochs=1)

# Other datasets (``--like``): sizes and recipe changes on top of the generated config (the shipped one).
LIKE_SIZES: dict[str, tuple[DemoSize, DemoSize]] = {
    "activitynet": (DemoSize(160, 60, 128, 1.0, 12, 2), DemoSize(48, 16, 64, 1.0, 4, 1)),
    "epic": (DemoSize(24, 8, 128, 0.5, 16, 2), DemoSize(8, 4, 64, 0.3, 4, 1)),
    "ego4d": (DemoSize(24, 8, 96, 0.5, 14, 2), DemoSize(8, 4, 48, 0.3, 4, 1)),
}
LIKE_RECIPES: dict[str, tuple[str, ...]] = {
    "activitynet": ("model.embd_dim=128", "model.fpn_dim=128", "model.head_dim=128", "opt.ema_decay=0.99",
                    "loader.num_workers=0"),
    # training crops of 768 steps instead of 2304 (window 9 -> multiples of 256), for the demo's speed
    "epic": ("model.embd_dim=128", "model.fpn_dim=128", "model.head_dim=128", "dataset.max_seq_len=768",
             "opt.learning_rate=0.001", "opt.ema_decay=0.99", "loader.num_workers=0"),
    "ego4d": ("model.embd_dim=128", "model.fpn_dim=128", "model.head_dim=128", "model.n_head=4",
              "opt.learning_rate=0.001", "opt.ema_decay=0.99", "loader.num_workers=0"),
}

# Config overrides on top of the THUMOS14 config the generator writes (official key names).
DEMO_RECIPE: tuple[str, ...] = (
    "model.embd_dim=128", "model.fpn_dim=128", "model.head_dim=128",
    "dataset.max_seq_len=576",
    "opt.learning_rate=0.001",
    "loader.batch_size=4", "loader.num_workers=0",
    "train_cfg.droppath=0.1",
    # ~300 optimiser steps instead of 3500: an EMA time constant of 100 steps instead of 1000
    "opt.ema_decay=0.99",
)


MODELS = ("actionformer", "tridet", "temporalmaxer")
# extra overrides of an architecture's scaled recipe: TriDet's MLP keeps its 768/512 ratio to the width
MODEL_RECIPES: dict[str, tuple[str, ...]] = {"tridet": ("model.sgp_mlp_dim=192",)}


def architecture_recipe(raw: dict[str, Any], model: str) -> dict[str, Any]:
    """A THUMOS-style config dict switched to ``model`` with that architecture's own THUMOS14 recipe.

    The data sections (``dataset``, ``loader``, splits, paths) of ``raw`` are kept; ``model_name``, ``model``,
    ``train_cfg``, ``test_cfg`` and the optimiser's weight decay / final LR come from the architecture's packaged
    config (``thumos_i3d_tridet.yaml`` ...). ``actionformer`` returns ``raw`` unchanged.
    """
    from tadformer.config import packaged_config
    from tadformer.config_arch import arch_info

    info = arch_info(model)
    if info.key == "actionformer":
        return dict(raw)
    recipe = yaml.safe_load(packaged_config(info.thumos_config).read_text(encoding="utf-8"))
    out = {**raw, "model_name": info.model_name}
    for key in ("model", "train_cfg", "test_cfg"):
        out[key] = recipe[key]
    opt = dict(raw.get("opt", {}))
    opt.update({k: v for k, v in recipe["opt"].items() if k in ("weight_decay", "eta_min")})
    out["opt"] = opt
    return out


def demo_config(config_file: Path, size: DemoSize, seed: int, like: str = "thumos",
                model: str = "actionformer") -> ExperimentConfig:
    """The demo recipe: the generated config (switched to ``model``, see :func:`architecture_recipe`) plus
    :data:`DEMO_RECIPE` (THUMOS) or :data:`LIKE_RECIPES`, and the size's epochs."""
    recipe = DEMO_RECIPE if like == "thumos" else LIKE_RECIPES[like]
    overrides = [*recipe, *MODEL_RECIPES.get(model, ()), f"opt.epochs={size.epochs}",
                 f"opt.warmup_epochs={size.warmup_epochs}", f"init_rand_seed={seed}"]
    if model == "actionformer":
        return load_config(config_file, overrides)
    raw = architecture_recipe(yaml.safe_load(config_file.read_text(encoding="utf-8")), model)
    try:
        return config_from_dict(apply_overrides(raw, overrides))
    except ConfigError as err:
        raise ConfigError(f"{config_file} with the {model} recipe: {err}") from None


def _evaluate(run_dir: Path, ckpt: Path, use_ema: bool, device: torch.device, progress: bool) -> EvalResult:
    from tadformer.engine import evaluate as ev
    from tadformer.engine.loading import load_for_inference

    loaded = load_for_inference(ckpt, None, device=device, use_ema=use_ema)
    dataset, _ = ev.build_eval_dataset(loaded.cfg)
    raw = ev.predict_raw(loaded.model, dataset, loaded.cfg, device, loaded.class_names, progress=progress)
    out = run_dir / ("eval" if use_ema else "eval_regular")
    raw.save(out / "raw_outputs.pt")
    split = loaded.cfg.val_split[0]
    ann = str(loaded.cfg.dataset.json_file)
    # the dataset's official thresholds; ActivityNet fuses the external class scores of its config
    result, detections, names = ev.score_raw(raw, loaded.cfg, ann, split)
    ev.write_eval_outputs(out, result, detections, names, extra={"weights": loaded.weights_description},
                          split=split, annotation_json=ann)
    return result


def _busiest_test_video(json_file: Path, split: str = "test") -> str:
    db = json.loads(json_file.read_text(encoding="utf-8"))["database"]
    tests = {k: v for k, v in db.items() if v["subset"].lower() == split.lower()}
    return max(tests, key=lambda k: len(tests[k].get("annotations", [])))


def _infer_one(run_dir: Path, ckpt: Path, cfg: ExperimentConfig, device: torch.device) -> Path:
    from tadformer.data.features import feature_path
    from tadformer.data.sources import feat_folders
    from tadformer.engine.evaluate import fuse_for_annotations
    from tadformer.engine.infer import format_table, infer_video, top_k
    from tadformer.engine.loading import load_for_inference
    from tadformer.report.figures import save_timeline_figure
    from tadformer.results_io import write_results_json

    json_file = Path(str(cfg.dataset.json_file))
    vid = _busiest_test_video(json_file, cfg.val_split[0])
    entry = json.loads(json_file.read_text(encoding="utf-8"))["database"][vid]
    loaded = load_for_inference(ckpt, None, device=device)
    feat = [feature_path(folder, vid, cfg.dataset.file_prefix, str(cfg.dataset.file_ext))  # one file per stream
            for folder in feat_folders(cfg.dataset.feat_folder)]
    fps = cfg.dataset.default_fps or entry["fps"]
    det = infer_video(loaded, feat, fps=fps, duration_sec=entry["duration"], video_id=vid, device=device)
    names = loaded.class_names
    if cfg.test_cfg.ext_score_file:  # ActivityNet: the classes come from the external scores
        fused, names = fuse_for_annotations([det], cfg.test_cfg.ext_score_file, json_file, cfg.dataset.num_classes)
        det = fused[0]
    best = top_k(det, 10)
    print(f"\nSingle-video inference on {vid} (top 10):\n{format_table(best, names)}")
    out = run_dir / "infer"
    write_results_json(out / "detections.json", [best], names)
    fig = save_timeline_figure(out / "timeline.png", det, names, annotation_json=json_file, video_id=vid)
    return Path(fig)


def format_side_by_side(regular: EvalResult, ema: EvalResult) -> str:
    """mAP (%) at each tIoU and the average, regular vs EMA weights."""
    head = "| weights | " + " | ".join(f"{t:.2f}" for t in ema.tiou_thresholds) + " | Avg |"
    sep = "|---" * (len(ema.tiou_thresholds) + 2) + "|"
    rows = [head, sep]
    for name, res in (("regular", regular), ("EMA", ema)):
        cells = " | ".join(f"{100 * m:.2f}" for m in res.mAP)
        rows.append(f"| {name} | {cells} | {100 * res.average_mAP:.2f} |")
    return "\n".join(rows)


def run_demo(out_dir: Path, quick: bool = False, seed: int = 0, device: str = "auto", progress: bool = True,
             like: str = "thumos", model: str = "actionformer") -> dict:
    """Run the whole demo into ``out_dir``; return a summary dict (also written to ``demo_summary.json``).

    ``like`` picks the dataset the synthetic data is shaped like: ``thumos`` (default), ``activitynet``
    (with external score fusion), ``epic`` or ``ego4d``. ``model`` picks the architecture: ``actionformer``
    (default), ``tridet`` or ``temporalmaxer`` (THUMOS-shaped data only).
    """
    from tadformer.data.synthetic import generate_dataset
    from tadformer.data.synthetic_like import generate_like
    from tadformer.engine.runtime import resolve_device
    from tadformer.engine.train import FitOptions, fit
    from tadformer.report.build import build_report
    from tadformer.results_io import atomic_write_text

    if like != "thumos" and like not in LIKE_SIZES:
        raise ValueError(f"--like must be one of thumos, {', '.join(LIKE_SIZES)}; got {like!r}")
    if model not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}; got {model!r}")
    if model != "actionformer" and like != "thumos":
        raise ValueError(f"--model {model} has a THUMOS14 recipe only: use it with --like thumos")
    size = (QUICK if quick else FULL) if like == "thumos" else LIKE_SIZES[like][int(quick)]
    dev = resolve_device(device)
    t0 = time.perf_counter()
    print(f"[demo] 1/5 synthetic {like}-shaped data: {size.train_videos} train + {size.test_videos} test videos, "
          f"{size.input_dim}-dim features")
    if like == "thumos":
        paths = generate_dataset(out_dir / "data", train_videos=size.train_videos, test_videos=size.test_videos,
                                 input_dim=size.input_dim, seed=seed, difficulty="thumos",
                                 duration_scale=size.duration_scale, progress=progress)
    else:
        dims = (size.input_dim, size.input_dim // 2) if like == "ego4d" else size.input_dim
        paths = generate_like(like, out_dir / "data", train_videos=size.train_videos, test_videos=size.test_videos,
                              input_dim=dims, seed=seed, progress=progress, duration_scale=size.duration_scale)
    cfg = demo_config(paths.config_file, size, seed, like, model)
    from tadformer.config_arch import arch_info

    display = arch_info(cfg).display
    print(f"[demo] 2/5 training {display} ({size.epochs + size.warmup_epochs} epochs on {dev})")
    ckpt = fit(cfg, out_dir, FitOptions(device=str(dev), ckpt_freq=10**6, progress=progress))
    print("[demo] 3/5 evaluating the regular and the EMA weights on the held-out split")
    regular = _evaluate(out_dir, ckpt, use_ema=False, device=dev, progress=progress)
    ema = _evaluate(out_dir, ckpt, use_ema=True, device=dev, progress=progress)
    print("[demo] 4/5 single-video inference")
    fig = _infer_one(out_dir, ckpt, cfg, dev)
    print("[demo] 5/5 report")
    html, md = build_report(out_dir)
    elapsed = time.perf_counter() - t0
    table = format_side_by_side(regular, ema)
    summary = {"like": like, "model": model, "architecture": display, "seed": seed, "quick": quick,
               "elapsed_sec": round(elapsed, 1), "device": str(dev),
               "regular": {"mAP": list(map(float, regular.mAP)), "average_mAP": float(regular.average_mAP)},
               "ema": {"mAP": list(map(float, ema.mAP)), "average_mAP": float(ema.average_mAP)},
               "checkpoint": str(ckpt), "report": str(html), "timeline": str(fig)}
    atomic_write_text(out_dir / "demo_summary.json", json.dumps(summary, indent=2))
    print(f"\n{display} mAP (%) on {size.test_videos} held-out synthetic videos:\n{table}")
    print(f"\nreport:     {html}\nmarkdown:   {md}\ncheckpoint: {ckpt}\ntime:       {elapsed:.0f} s")
    return summary
