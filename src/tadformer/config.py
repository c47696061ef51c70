"""Typed, frozen experiment config that round-trips the official ActionFormer YAML schema.

Key names and defaults are those of the official ``libs/core/config.py`` ``DEFAULTS``. The official
derived copies (``model.input_dim``, ``model.num_classes``, ``model.max_seq_len``, ``model.train_cfg``,
``model.test_cfg``) are accepted on load, checked for agreement and never stored: read them from their
source sections (or the shortcuts on :class:`ExperimentConfig`). Every derived quantity (pyramid
strides, per-level windows, ``max_div_factor``) is computed here, in one place.

Typical use::

    cfg = load_config("configs/thumos_i3d.yaml", overrides=["opt.learning_rate=1e-3"])
    cfg = scale_for_devices(cfg, n_devices)
    dump_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tadformer.config_arch import (  # re-exported: the model sections are part of this module's API
    AnyModelConfig,
    ModelConfig,
    SimOTAConfig,
    TemporalMaxerModelConfig,
    TriDetModelConfig,
)
from tadformer.config_select import MODEL_CLASSES, foreign_key_error, model_section_class
from tadformer.config_validate import ConfigError, validate  # re-exported: both are part of this module's API
from tadformer.config_validate import coerce_key as _coerce_key
from tadformer.config_validate import type_hints as _hints

__all__ = [
    "ConfigError", "ExperimentConfig", "DatasetConfig", "LoaderConfig", "ModelConfig", "TriDetModelConfig",
    "TemporalMaxerModelConfig", "SimOTAConfig", "AnyModelConfig", "TrainConfig",
    "TestConfig", "OptConfig", "load_config", "config_from_dict", "config_to_dict", "dump_config",
    "dumps_config", "apply_overrides", "validate", "scale_for_devices", "with_empty_classes",
    "packaged_config", "model_section_class",
]

log = logging.getLogger(__name__)

NmsMethod = Literal["soft", "hard", "none"]
CenterSample = Literal["radius", "none"]
ScheduleType = Literal["cosine", "multistep"]
OptimizerType = Literal["AdamW", "SGD"]

# keys the official `_update_config` copies into `model`; accepted on load, never stored or dumped
_DERIVED_MODEL_KEYS = {"input_dim": "dataset", "num_classes": "dataset", "max_seq_len": "dataset",
                       "train_cfg": "", "test_cfg": ""}


@dataclass(frozen=True)
class DatasetConfig:
    """``dataset`` section (passed to the dataset). Times are in frames/feature steps as named."""

    feat_stride: int = 16  # temporal stride of the features, in frames
    num_frames: int = 32  # number of frames seen by each feature
    default_fps: float | None = None  # None: read fps per video from the json
    input_dim: int | tuple[int, ...] = 2304  # input feature channels (a list for multi-feature inputs)
    num_classes: int = 97
    downsample_rate: int = 1  # feature downsampling, 1 keeps the original resolution
    max_seq_len: int = 2304  # max sequence length (feature steps) during training
    trunc_thresh: float = 0.5  # min fraction of an action kept when truncating
    crop_ratio: tuple[float, float] | None = None  # e.g. (0.9, 1.0) enables random feature cropping
    force_upsampling: bool = False  # resample features to a fixed length (ActivityNet only)
    json_file: str | None = None  # not in official DEFAULTS; every official YAML sets it
    feat_folder: str | tuple[str, ...] | None = None  # not in official DEFAULTS
    file_prefix: str | None = None  # not in official DEFAULTS
    file_ext: str | None = None  # not in official DEFAULTS


@dataclass(frozen=True)
class LoaderConfig:
    """``loader`` section."""

    batch_size: int = 8
    num_workers: int = 4
    accum_steps: int = 1  # tadformer extra: gradient accumulation steps (1 = official behaviour)


@dataclass(frozen=True)
class TrainConfig:
    """``train_cfg`` section: label assignment, losses and regularisation."""

    center_sample: CenterSample = "radius"
    center_sample_radius: float = 1.5
    loss_weight: float = 1.0  # weight of the regression loss; <= 0 switches on auto balancing
    cls_prior_prob: float = 0.01
    init_loss_norm: float = 2000
    clip_grad_l2norm: float = -1  # <= 0 disables gradient clipping
    head_empty_cls: tuple[int, ...] = ()  # classes without training data
    dropout: float = 0.0  # dropout in the transformers
    droppath: float = 0.1
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class TestConfig:
    """``test_cfg`` section: decoding and NMS (durations in feature steps)."""

    __test__ = False  # not a pytest test class

    pre_nms_thresh: float = 0.001
    pre_nms_topk: int = 5000  # applied per pyramid level
    iou_threshold: float = 0.1
    min_score: float = 0.01
    max_seg_num: int = 1000
    nms_method: NmsMethod = "soft"
    nms_sigma: float = 0.5
    duration_thresh: float = 0.05
    multiclass_nms: bool = True
    ext_score_file: str | None = None
    voting_thresh: float = 0.75  # only used when multiclass_nms is False


@dataclass(frozen=True)
class OptConfig:
    """``opt`` section: optimiser and schedule (epochs exclude warmup)."""

    type: OptimizerType = "AdamW"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    learning_rate: float = 1e-3
    epochs: int = 30  # excluding the warmup epochs
    warmup: bool = True
    warmup_epochs: int = 5
    schedule_type: ScheduleType = "cosine"
    schedule_steps: tuple[int, ...] = ()  # multistep milestones, in epochs excluding warmup
    schedule_gamma: float = 0.1
    early_stop_epochs: int | None = None  # read by the official train.py; None = epochs + warmup_epochs
    eta_min: float = 1e-8  # final LR of the cosine schedule (TriDet's key; ActionFormer hard-codes 1e-8)
    ema_decay: float = 0.999  # tadformer extra: model-EMA decay per optimiser step (official: fixed 0.999)


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment (top level of the YAML)."""

    init_rand_seed: int = 1234567891
    dataset_name: str = "epic"
    devices: tuple[str, ...] = ("cuda:0",)
    train_split: tuple[str, ...] = ("training",)
    val_split: tuple[str, ...] = ("validation",)
    model_name: str = "LocPointTransformer"  # the architecture: a key of ARCHITECTURES (or its short name)
    output_folder: str | None = None  # not in official DEFAULTS; every official YAML sets ./ckpt/
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    model: AnyModelConfig = field(default_factory=ModelConfig)
    train_cfg: TrainConfig = field(default_factory=TrainConfig)
    test_cfg: TestConfig = field(default_factory=TestConfig)
    opt: OptConfig = field(default_factory=OptConfig)

    def __post_init__(self) -> None:
        validate(self)  # also on dataclasses.replace: an ExperimentConfig is always valid

    @property
    def max_seq_len(self) -> int:
        """``dataset.max_seq_len`` (the official ``model.max_seq_len``)."""
        return self.dataset.max_seq_len

    @property
    def input_dim(self) -> int | tuple[int, ...]:
        """``dataset.input_dim`` (the official ``model.input_dim``)."""
        return self.dataset.input_dim

    @property
    def num_classes(self) -> int:
        """``dataset.num_classes`` (the official ``model.num_classes``)."""
        return self.dataset.num_classes


# ----------------------------------------------------------------------------------------- building


def _unknown_key(key: str, section_cls: Any, prefix: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(section_cls)]
    if section_cls in MODEL_CLASSES:
        names += list(_DERIVED_MODEL_KEYS)
        foreign = foreign_key_error(key, section_cls, prefix)
        if foreign is not None:
            return foreign
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{prefix}{close[0]}'?"
    else:
        sections = {name: tp for name, tp in _hints(ExperimentConfig).items() if dataclasses.is_dataclass(tp)}
        sections["model"] = section_cls if section_cls in MODEL_CLASSES else ModelConfig
        elsewhere = [f"{name}.{key}" for name, tp in sections.items() if key in _hints(tp)]
        hint = (f"did you mean '{elsewhere[0]}'?" if elsewhere
                else f"valid keys: {', '.join(sorted(names))}")
    return ConfigError(f"unknown config key '{prefix}{key}'; {hint}")


def _build(cls: Any, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, defaults filling missing keys."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config key '{prefix.rstrip('.') or '<root>'}': expected a mapping, "
                          f"got {type(raw).__name__} {raw!r}")
    hints = _hints(cls)
    for key in raw:
        if not isinstance(key, str) or key not in hints:
            raise _unknown_key(str(key), cls, prefix)
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        tp = hints[name]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a section built by the caller
            kwargs[name] = value
        elif dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce_key(value, tp, prefix + name)
    return cls(**kwargs)


def _check_derived(derived: Mapping[str, Any], cfg: ExperimentConfig) -> None:
    """The official copies in ``model`` must agree with their source sections."""
    for key, value in derived.items():
        if key in ("train_cfg", "test_cfg"):
            section = getattr(cfg, key)
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key 'model.{key}': expected a mapping, got {value!r}")
            for sub, sub_value in value.items():
                if sub not in _hints(type(section)):
                    raise _unknown_key(str(sub), type(section), f"model.{key}.")
                got = _coerce_key(sub_value, _hints(type(section))[sub], f"model.{key}.{sub}")
                if got != getattr(section, sub):
                    raise ConfigError(f"config key 'model.{key}.{sub}' = {got!r} contradicts "
                                      f"'{key}.{sub}' = {getattr(section, sub)!r} (it is a derived copy)")
        else:
            got = _coerce_key(value, _hints(DatasetConfig)[key], f"model.{key}")
            if got != getattr(cfg.dataset, key):
                raise ConfigError(f"config key 'model.{key}' = {got!r} contradicts 'dataset.{key}' = "
                                  f"{getattr(cfg.dataset, key)!r} (it is a derived copy)")


# ----------------------------------------------------------------------------------------- loading


def config_from_dict(raw: Mapping[str, Any]) -> ExperimentConfig:
    """Build and validate a config from an official-style nested dict (missing keys take defaults).

    Raises:
        ConfigError: unknown key (with a suggestion), wrong type, contradicting derived copy or
            impossible value; the message names the dotted key.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(raw).__name__}")
    data: dict[str, Any] = copy.deepcopy(dict(raw))
    model_cls = model_section_class(data)
    data["model_name"] = model_cls.MODEL_NAME
    derived: dict[str, Any] = {}
    model = dict(data["model"]) if isinstance(data.get("model"), Mapping) else data.get("model", {})
    if isinstance(model, dict):
        derived = {k: model.pop(k) for k in list(model) if k in _DERIVED_MODEL_KEYS}
    data["model"] = _build(model_cls, model, "model.")
    cfg: ExperimentConfig = _build(ExperimentConfig, data, "")  # validates in __post_init__
    _check_derived(derived, cfg)
    return cfg


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from err
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load an official-style YAML, apply ``section.key=value`` overrides, validate.

    Args:
        path: YAML file (flow mappings, comments and ``~`` are fine).
        overrides: ``--set`` items such as ``"opt.learning_rate=1e-3"``; each value is parsed with
            ``yaml.safe_load`` and applied to the raw dict before the dataclasses are built.

    Raises:
        ConfigError: malformed YAML (with file and line), unknown key, wrong type, bad value.
    """
    path = Path(path)
    raw = apply_overrides(_read_yaml(path), overrides)
    try:
        return config_from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _schema_at(parts: list[str], item: str, raw: Mapping[str, Any]) -> None:
    """Check that a dotted override key exists in the schema; raise with a suggestion otherwise.

    ``model.*`` keys are looked up in the architecture ``raw`` selects (or in any architecture that has them,
    so ``model_name`` may be overridden in the same command); the full check happens when the config is built.
    """
    cls: Any = ExperimentConfig
    for depth, part in enumerate(parts):
        prefix = "".join(p + "." for p in parts[:depth])
        if cls == AnyModelConfig:
            try:
                cls = model_section_class(raw)
            except ConfigError:
                cls = ModelConfig
            if part not in _hints(cls):
                cls = next((c for c in MODEL_CLASSES if part in _hints(c)), cls)
        if cls in MODEL_CLASSES and part in _DERIVED_MODEL_KEYS:
            source = _DERIVED_MODEL_KEYS[part] or ""
            raise ConfigError(f"override {item!r}: 'model.{part}' is derived; set "
                              f"'{source + '.' if source else ''}{part}' instead")
        if not dataclasses.is_dataclass(cls) or part not in _hints(cls):
            if not dataclasses.is_dataclass(cls):
                raise ConfigError(f"override {item!r}: '{prefix.rstrip('.')}' has no sub-keys")
            raise ConfigError(f"override {item!r}: {_unknown_key(part, cls, prefix)}")
        cls = _hints(cls)[part]


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a deep copy of ``raw`` with ``dotted.key=value`` overrides applied (values via YAML)."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"override {item!r}: expected 'section.key=value'")
        _schema_at(parts, item, out)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({err})") from None
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = value
    return out


def packaged_config(name: str = "thumos_i3d") -> Path:
    """Path of a YAML shipped inside the package (``tadformer/configs/<name>.yaml``)."""
    path = Path(__file__).resolve().parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no packaged config {name!r}; available: {', '.join(shipped)}")
    return path


# ----------------------------------------------------------------------------------------- dumping


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict (lists, not tuples) in official key order; derived copies are not included."""
    out = _plain(cfg)
    assert isinstance(out, dict)
    return out


class _Dumper(yaml.SafeDumper):
    """Block-style mappings with inline lists, like the official YAMLs."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def dumps_config(cfg: ExperimentConfig) -> str:
    """YAML text of the fully resolved config; ``load`` of it gives back an equal config."""
    return yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     width=100)


def dump_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps_config(cfg))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------------------- run time


def scale_for_devices(cfg: ExperimentConfig, n_devices: int) -> ExperimentConfig:
    """Official train.py rule: learning_rate and num_workers are multiplied by the number of devices."""
    if n_devices < 1:
        raise ConfigError(f"n_devices must be >= 1, got {n_devices}")
    if n_devices == 1:
        return cfg
    lr = cfg.opt.learning_rate * n_devices
    workers = cfg.loader.num_workers * n_devices
    log.info("scaling for %d devices: opt.learning_rate %g -> %g, loader.num_workers %d -> %d",
             n_devices, cfg.opt.learning_rate, lr, cfg.loader.num_workers, workers)
    return dataclasses.replace(cfg, opt=dataclasses.replace(cfg.opt, learning_rate=lr),
                               loader=dataclasses.replace(cfg.loader, num_workers=workers))


def with_empty_classes(cfg: ExperimentConfig, class_ids: Sequence[int]) -> ExperimentConfig:
    """Set ``train_cfg.head_empty_cls`` to the dataset's classes without training data."""
    ids = tuple(int(c) for c in class_ids)
    if ids != cfg.train_cfg.head_empty_cls:
        log.info("train_cfg.head_empty_cls %s -> %s", list(cfg.train_cfg.head_empty_cls), list(ids))
    return dataclasses.replace(cfg, train_cfg=dataclasses.replace(cfg.train_cfg, head_empty_cls=ids))
