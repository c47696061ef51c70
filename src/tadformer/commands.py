"""Subcommand handlers: each reads its flags and calls library code."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

from tadformer.config import ExperimentConfig, load_config


def _config(args: argparse.Namespace) -> ExperimentConfig:
    cfg = load_config(args.config, args.overrides)
    if getattr(args, "seed", None) is not None:
        cfg = replace(cfg, init_rand_seed=args.seed)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """``tadformer train CONFIG``."""
    from tadformer.engine.train import FitOptions, fit

    cfg = _config(args)
    out = Path(args.out) if args.out else Path(cfg.output_folder or "./ckpt") / Path(args.config).stem
    opts = FitOptions(device=args.device, resume=args.resume, ckpt_freq=args.ckpt_freq,
                      progress=not args.no_progress, skip_nonfinite=args.skip_nonfinite, max_steps=args.max_steps,
                      amp=args.amp, tf32=args.tf32, scale_lr=args.scale_lr, batch_order=args.batch_order)
    ckpt = fit(cfg, out, opts)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, only rank 0 reports
        print(f"checkpoint: {ckpt}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``tadformer eval``: network, ``--raw`` or ``--predictions`` mode."""
    from tadformer.engine import evaluate as ev
    from tadformer.engine.runtime import resolve_device
    from tadformer.metrics import format_map_table

    tiou = args.tiou
    if args.predictions:
        if not args.annotations:
            raise ValueError("--predictions needs --annotations GT.json")
        return _score_file(args.predictions, args.annotations, args.split or "test", tiou, args.out)
    if args.raw:
        raw = ev.RawOutputs.load(args.raw)
        if args.config is None:
            raise ValueError("--raw needs the CONFIG (its test_cfg and dataset.json_file are used; change them "
                             "with --set test_cfg.KEY=VALUE)")
        cfg = _config(args)
        out = Path(args.out) if args.out else Path(args.raw).parent
    else:
        if not args.ckpt:
            raise ValueError("give --ckpt CKPT_OR_RUN_DIR (or --raw RAW_FILE, or --predictions/--annotations)")
        from tadformer.engine import distributed as dist_
        from tadformer.engine.loading import load_for_inference

        env = dist_.init_from_env(args.device)  # under torchrun: videos sharded over the processes
        device = env.device if env is not None else resolve_device(args.device)
        loaded = load_for_inference(args.ckpt, args.config, overrides=args.overrides, seed=args.seed,
                                    device=device, use_ema=not args.no_ema, epoch=args.epoch)
        cfg = loaded.cfg
        dataset, _ = ev.build_eval_dataset(cfg, [args.split] if args.split else None)
        if env is None:
            raw = ev.predict_raw(loaded.model, dataset, cfg, device, loaded.class_names, progress=not args.no_progress,
                                 amp=args.amp)
        else:
            gathered = dist_.predict_raw_distributed(loaded.model, dataset, cfg, env, loaded.class_names,
                                                     progress=not args.no_progress, amp=args.amp)
            dist_.shutdown()
            if gathered is None:  # not rank 0: rank 0 post-processes and writes
                return 0
            raw = gathered
        print(f"weights: {loaded.weights_description}")
        out = Path(args.out) if args.out else loaded.checkpoint_path.parent.parent / "eval"
        raw.save(out / "raw_outputs.pt")
    if args.topk is not None and args.topk > 0:
        cfg = replace(cfg, test_cfg=replace(cfg.test_cfg, max_seg_num=args.topk))
    split = args.split or (cfg.val_split[0] if cfg.val_split else "test")
    # fusion with external class scores when given; thresholds default to the dataset's official ones
    result, detections, names = ev.score_raw(raw, cfg, annotations_path(args, cfg), split, tiou, args.ext_scores)
    ev.write_eval_outputs(out, result, detections, names, split=split,
                          annotation_json=annotations_path(args, cfg))
    print(format_map_table(result))
    print(f"wrote {out / 'metrics.json'}, {out / 'predictions.json'}")
    return 0


def annotations_path(args: argparse.Namespace, cfg: ExperimentConfig) -> str:
    """``--annotations`` if given, else the config's ``dataset.json_file``."""
    return str(args.annotations or cfg.dataset.json_file)


def _score_file(pred_path: str, gt_path: str, split: str, tiou: list[float] | None, out: str | None) -> int:
    import numpy as np

    from tadformer.engine.evaluate import read_ground_truth
    from tadformer.metrics import evaluate_detections, format_map_table
    from tadformer.results_io import atomic_write_text, read_results_json

    preds = read_results_json(pred_path)
    gt = read_ground_truth(gt_path, split)
    thr = np.linspace(0.3, 0.7, 5) if tiou is None else np.asarray(tiou, dtype=np.float64)
    result = evaluate_detections(gt, preds, split=split, tiou_thresholds=thr)
    print(format_map_table(result))
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(out) / "metrics.json", json.dumps(result.to_dict(), indent=2))
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    """``tadformer infer --ckpt CKPT --feat VIDEO.npy`` (or ``--video VIDEO.mp4``)."""
    from tadformer.engine.infer import format_table, infer_video, top_k, video_meta_from_annotations
    from tadformer.engine.loading import load_for_inference
    from tadformer.engine.runtime import resolve_device
    from tadformer.results_io import write_results_csv, write_results_json

    ckpt, config = args.ckpt, args.config
    if args.hf_repo:
        from tadformer.hub import download_checkpoint

        ckpt, hub_config = download_checkpoint(args.hf_repo)
        config = config or hub_config
    if not ckpt:
        raise ValueError("give --ckpt CKPT (or --hf-repo OWNER/NAME)")
    device = resolve_device(args.device)
    loaded = load_for_inference(ckpt, config, overrides=args.overrides, seed=args.seed, device=device,
                                use_ema=not args.no_ema, classes=args.classes)
    fps, duration = args.fps, args.duration
    if args.video:
        from tadformer.commands_video import features_from_video

        feat_file, video_fps, video_sec = features_from_video(args, loaded, device)
        args.feat = [str(feat_file)]
        fps, duration = fps or video_fps, duration or video_sec
    feat = args.feat[0] if len(args.feat) == 1 else args.feat
    vid = args.video_id or Path(args.feat[0]).stem
    prefix = loaded.cfg.dataset.file_prefix
    if not args.video_id and prefix and vid.startswith(prefix):  # v_XXXX.npy holds ActivityNet video XXXX
        vid = vid[len(prefix):]
    if args.annotations and (fps is None or duration is None):
        ann_fps, ann_dur = video_meta_from_annotations(args.annotations, vid)
        fps, duration = fps or ann_fps, duration or ann_dur
    det = infer_video(loaded, feat, fps=fps, duration_sec=duration, video_id=vid, device=device, amp=args.amp)
    class_names = loaded.class_names
    ext_file = args.ext_scores or loaded.cfg.test_cfg.ext_score_file
    if ext_file:
        if not args.annotations:
            raise ValueError("--ext-scores needs --annotations GT.json (its class names give the label ids)")
        from tadformer.engine.evaluate import fuse_for_annotations

        # fused labels are the annotation file's label ids
        fused, class_names = fuse_for_annotations([det], ext_file, args.annotations, loaded.cfg.dataset.num_classes)
        det = fused[0] if fused else det
    best = top_k(det, args.top_k, args.min_score)
    print(f"weights: {loaded.weights_description}")
    print(format_table(best, class_names))
    if args.json:
        write_results_json(args.json, [best], class_names)
    if args.csv:
        write_results_csv(args.csv, [best], class_names)
    if args.save_fig:
        from tadformer.report.figures import save_timeline_figure

        save_timeline_figure(args.save_fig, best, class_names, annotation_json=args.annotations)
    for what, path in (("json", args.json), ("csv", args.csv), ("figure", args.save_fig)):
        if path:
            print(f"wrote {what}: {path}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    """``tadformer extract VIDEO_OR_FOLDER... --out DIR``."""
    from tadformer.commands_video import cmd_extract as run

    return run(args)


def cmd_synth(args: argparse.Namespace) -> int:
    """``tadformer synth --out DIR``."""
    from tadformer.data.synthetic import generate_dataset
    from tadformer.data.synthetic_like import generate_like

    dims = args.input_dim
    if args.like == "thumos":
        paths = generate_dataset(args.out, train_videos=args.train_videos or 200, test_videos=args.test_videos or 212,
                                 input_dim=dims[0] if dims else 2048, seed=args.seed, difficulty=args.difficulty,
                                 duration_scale=args.duration_scale or 1.0, progress=True)
        print(f"annotations: {paths.json_file}\nfeatures: {paths.feat_folder}\nconfig: {paths.config_file}")
        return 0
    like = generate_like(args.like, args.out, train_videos=args.train_videos, test_videos=args.test_videos,
                         input_dim=(dims[0] if len(dims) == 1 else tuple(dims)) if dims else None, seed=args.seed,
                         progress=True, duration_scale=args.duration_scale, vocabulary=args.vocabulary)
    folders = ", ".join(map(str, like.feat_folders or [like.feat_folder]))
    ext = f"\nexternal scores: {like.ext_score_file}" if like.ext_score_file else ""
    print(f"annotations: {like.json_file}\nfeatures: {folders}\nconfig: {like.config_file}{ext}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``tadformer demo``."""
    from tadformer.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, seed=args.seed, device=args.device, progress=not args.no_progress,
             like=args.like, model=args.model)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``tadformer report RUN_DIR``."""
    from tadformer.report.build import build_report

    html, md = build_report(Path(args.run_dir))
    print(f"report: {html}\nmarkdown: {md}")
    return 0
