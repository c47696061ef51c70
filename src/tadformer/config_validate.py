"""Validation of an :class:`~tadformer.config.ExperimentConfig`: every constraint the official code
asserts (and a few it should), each problem naming its dotted key and the allowed values; and the
typed reading of single values (YAML scalars to the annotated types, with errors naming the key).

Kept apart from :mod:`tadformer.config` (which defines the dataclasses and calls :func:`validate` on every
construction) so that the schema and its checks stay small and readable.
"""

from __future__ import annotations

import re
import types
import typing
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:
    from tadformer.config import ExperimentConfig

__all__ = ["ConfigError", "coerce_key", "describe_type", "type_hints", "validate"]


class ConfigError(ValueError):
    """An invalid config: unknown key, wrong type, impossible value or malformed YAML."""


def _range_problems(cfg: ExperimentConfig) -> list[str]:
    d, t, s, o = cfg.dataset, cfg.train_cfg, cfg.test_cfg, cfg.opt
    checks: list[tuple[str, Any, bool, str]] = [
        ("dataset.feat_stride", d.feat_stride, d.feat_stride > 0, "> 0"),
        ("dataset.num_frames", d.num_frames, d.num_frames > 0, "> 0"),
        ("dataset.default_fps", d.default_fps, d.default_fps is None or d.default_fps > 0, "> 0 or null"),
        ("dataset.num_classes", d.num_classes, d.num_classes >= 1, ">= 1"),
        ("dataset.downsample_rate", d.downsample_rate, d.downsample_rate >= 1, ">= 1"),
        ("dataset.max_seq_len", d.max_seq_len, d.max_seq_len > 0, "> 0"),
        ("dataset.trunc_thresh", d.trunc_thresh, 0.0 <= d.trunc_thresh <= 1.0, "in [0, 1]"),
        ("dataset.crop_ratio", d.crop_ratio,
         d.crop_ratio is None or 0.0 < d.crop_ratio[0] <= d.crop_ratio[1] <= 1.0, "0 < lo <= hi <= 1"),
        ("loader.batch_size", cfg.loader.batch_size, cfg.loader.batch_size >= 1, ">= 1"),
        ("loader.num_workers", cfg.loader.num_workers, cfg.loader.num_workers >= 0, ">= 0"),
        ("loader.accum_steps", cfg.loader.accum_steps, cfg.loader.accum_steps >= 1, ">= 1"),
        ("train_cfg.center_sample_radius", t.center_sample_radius, t.center_sample_radius > 0, "> 0"),
        ("train_cfg.cls_prior_prob", t.cls_prior_prob, 0.0 < t.cls_prior_prob < 1.0, "in (0, 1)"),
        ("train_cfg.init_loss_norm", t.init_loss_norm, t.init_loss_norm > 0, "> 0"),
        ("train_cfg.head_empty_cls", t.head_empty_cls,
         all(0 <= c < d.num_classes for c in t.head_empty_cls), f"class ids in [0, {d.num_classes})"),
        ("train_cfg.dropout", t.dropout, 0.0 <= t.dropout < 1.0, "in [0, 1)"),
        ("train_cfg.droppath", t.droppath, 0.0 <= t.droppath < 1.0, "in [0, 1)"),
        ("train_cfg.label_smoothing", t.label_smoothing, 0.0 <= t.label_smoothing < 1.0, "in [0, 1)"),
        ("test_cfg.pre_nms_thresh", s.pre_nms_thresh, 0.0 <= s.pre_nms_thresh <= 1.0, "in [0, 1]"),
        ("test_cfg.pre_nms_topk", s.pre_nms_topk, s.pre_nms_topk >= 1, ">= 1"),
        ("test_cfg.iou_threshold", s.iou_threshold, 0.0 <= s.iou_threshold <= 1.0, "in [0, 1]"),
        ("test_cfg.min_score", s.min_score, 0.0 <= s.min_score <= 1.0, "in [0, 1]"),
        ("test_cfg.max_seg_num", s.max_seg_num, s.max_seg_num >= 1, ">= 1"),
        ("test_cfg.nms_sigma", s.nms_sigma, s.nms_sigma > 0, "> 0"),
        ("test_cfg.duration_thresh", s.duration_thresh, s.duration_thresh >= 0, ">= 0"),
        ("test_cfg.voting_thresh", s.voting_thresh, 0.0 <= s.voting_thresh <= 1.0, "in [0, 1]"),
        ("opt.momentum", o.momentum, 0.0 <= o.momentum < 1.0, "in [0, 1)"),
        ("opt.weight_decay", o.weight_decay, o.weight_decay >= 0, ">= 0"),
        ("opt.learning_rate", o.learning_rate, o.learning_rate > 0, "> 0"),
        ("opt.epochs", o.epochs, o.epochs >= 1, ">= 1"),
        ("opt.warmup_epochs", o.warmup_epochs, o.warmup_epochs >= 0, ">= 0"),
        ("opt.schedule_steps", o.schedule_steps, all(v >= 0 for v in o.schedule_steps), "non-negative"),
        ("opt.schedule_gamma", o.schedule_gamma, o.schedule_gamma > 0, "> 0"),
        ("opt.ema_decay", o.ema_decay, 0.0 <= o.ema_decay < 1.0, "in [0, 1)"),
        ("opt.eta_min", o.eta_min, o.eta_min >= 0.0, ">= 0"),
        ("opt.early_stop_epochs", o.early_stop_epochs,
         o.early_stop_epochs is None or o.early_stop_epochs >= 1, ">= 1 or null"),
    ]
    return [f"{key} = {value!r} must be {rule}" for key, value, ok, rule in checks if not ok]


def _structure_problems(cfg: ExperimentConfig) -> list[str]:
    from tadformer.config_arch import arch_info, resolve_model_name

    d, m = cfg.dataset, cfg.model
    out = [f"{k} must not be empty" for k in ("devices", "train_split", "val_split") if not getattr(cfg, k)]
    if isinstance(d.input_dim, int) and d.input_dim < 1 or isinstance(d.input_dim, tuple) and (
            not d.input_dim or min(d.input_dim) < 1):
        out.append(f"dataset.input_dim = {d.input_dim!r} must be >= 1 (or a non-empty list of such)")
    embd = getattr(m, "embd_dim", None)
    if isinstance(embd, tuple) and (not isinstance(d.input_dim, tuple) or len(d.input_dim) != len(embd)):
        out.append(f"model.embd_dim = {embd!r} is a list, so dataset.input_dim must be a list of "
                   f"the same length, got {d.input_dim!r}")
    if resolve_model_name(cfg.model_name) != type(m).MODEL_NAME:
        out.append(f"model_name = {cfg.model_name!r} does not match the model section, which is "
                   f"{arch_info(m).display}'s (model_name: {type(m).MODEL_NAME})")
    return out + m.problems(d.max_seq_len if d.max_seq_len > 0 else 0)


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check every constraint the official code asserts (and a few it should); return ``cfg``.

    Raises:
        ConfigError: listing every problem, each naming its key and the allowed values.
    """
    problems = _range_problems(cfg) + _structure_problems(cfg)
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))
    return cfg


# ----------------------------------------------------------------------------------------- typed values


def type_hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def describe_type(tp: Any) -> str:
    """Human-readable description of an annotation, e.g. 'int or list of int'."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "null"
    if _is_union(tp):
        return " or ".join(describe_type(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {describe_type(args[0])}"
        return f"list of {len(args)} [{', '.join(describe_type(a) for a in args)}]"
    return "number" if tp is float else getattr(tp, "__name__", str(tp))


_NUMBER_RE = re.compile(r"[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(value: Any, tp: Any) -> Any:
    """Convert a YAML value to annotation ``tp`` (lists become tuples); raise TypeError on mismatch."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        for arm in args:
            try:
                return _coerce(value, arm)
            except TypeError:
                continue
        raise TypeError
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise TypeError
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(value) != len(args):
            raise TypeError
        return tuple(_coerce(v, a) for v, a in zip(value, args))
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):  # PyYAML reads `1e-4` as str
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - only reached if a new annotation kind is added above
        raise NotImplementedError(f"unsupported annotation {tp!r}")
    raise TypeError


def coerce_key(value: Any, tp: Any, key: str) -> Any:
    try:
        return _coerce(value, tp)
    except TypeError:
        raise ConfigError(f"config key '{key}': expected {describe_type(tp)}, got "
                          f"{type(value).__name__} {value!r}") from None
