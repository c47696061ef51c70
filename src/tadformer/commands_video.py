"""``tadformer extract`` and the video half of ``tadformer infer --video``."""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import tempfile
from pathlib import Path

from tadformer.engine.loading import LoadedModel
from tadformer.video.extract import STREAM_CHOICES, STREAM_DIM, ExtractSettings


def _settings(args: argparse.Namespace, streams: tuple[str, ...]) -> ExtractSettings:
    return ExtractSettings(streams=streams, crop=args.crop, flow_method=args.flow_method,
                           batch_size=args.batch_size, fps=args.extract_fps)


def cmd_extract(args: argparse.Namespace) -> int:
    """``tadformer extract VIDEO_OR_FOLDER... --out DIR --rgb-weights A --flow-weights B``."""
    from tadformer.engine.runtime import resolve_device
    from tadformer.video.backbones import load_i3d_backbones
    from tadformer.video.extract_run import check_output_dir, collect_videos, extract_many

    settings = _settings(args, STREAM_CHOICES[args.streams])
    videos = collect_videos(args.inputs)
    check_output_dir(Path(args.out))
    device = resolve_device(args.device)
    nets = load_i3d_backbones(settings.streams, {"rgb": args.rgb_weights, "flow": args.flow_weights}, device)
    outcomes = extract_many(videos, Path(args.out), nets.networks, settings, weights_sha256=nets.sha256,
                            weight_files=nets.files, overwrite=args.overwrite, device=device,
                            progress=not args.no_progress)
    written = sum(o.status == "written" for o in outcomes)
    print(f"{written} extracted, {len(outcomes) - written} skipped -> {args.out}")
    return 0


def streams_for_checkpoint(loaded: LoadedModel, requested: str | None) -> tuple[str, ...]:
    """The streams whose features fit the checkpoint's ``dataset.input_dim`` (the requested ones, checked)."""
    in_dim = loaded.cfg.dataset.input_dim
    total = in_dim if isinstance(in_dim, int) else sum(in_dim)
    fitting = [name for name, streams in STREAM_CHOICES.items() if STREAM_DIM * len(streams) == total]
    if requested is None:
        if not fitting:
            raise ValueError(f"checkpoint {loaded.checkpoint_path} expects input_dim {total}; I3D features have "
                             f"1024 (rgb) or 2048 (rgb+flow) values, so --video cannot feed it: extract its own "
                             f"features and use --feat")
        return STREAM_CHOICES[fitting[0]]
    streams = STREAM_CHOICES[requested]
    if STREAM_DIM * len(streams) != total:
        fix = f"use --streams {fitting[0]}" if fitting else "extract its own features and use --feat"
        raise ValueError(f"checkpoint {loaded.checkpoint_path} expects input_dim {total} but --streams {requested} "
                         f"gives {STREAM_DIM * len(streams)}; {fix}")
    return streams


def features_from_video(args: argparse.Namespace, loaded: LoadedModel, device: object) -> tuple[Path, float, float]:
    """Extract the features of ``args.video`` for ``loaded``: (features file, fps, duration in seconds).

    The checkpoint is checked against the streams before any weight is loaded or frame decoded.
    """
    from tadformer.video.backbones import load_i3d_backbones
    from tadformer.video.extract_run import check_output_dir, extract_many

    video = Path(args.video)
    if not video.is_file():
        raise FileNotFoundError(f"--video: no such file {video}")
    settings = _settings(args, streams_for_checkpoint(loaded, args.streams))
    if args.feat_out:
        out_dir = Path(args.feat_out)
    else:  # features only live as long as this command
        out_dir = Path(tempfile.mkdtemp(prefix="tadformer-feat-"))
        atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
    check_output_dir(out_dir)
    nets = load_i3d_backbones(settings.streams, {"rgb": args.rgb_weights, "flow": args.flow_weights},
                              device)  # type: ignore[arg-type]
    outcome = extract_many([video], out_dir, nets.networks, settings, weights_sha256=nets.sha256,
                           weight_files=nets.files, device=device, progress=True)[0]  # type: ignore[arg-type]
    meta = json.loads((out_dir / f"{video.stem}.json").read_text(encoding="utf-8"))
    fps = float(meta["fps"])
    return outcome.features, fps, float(meta["num_frames"]) / fps
