"""Find a checkpoint, resolve its config and build the model for evaluation or inference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tadformer.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    load_config,
)
from tadformer.data.annotations import thumos14_class_names
from tadformer.engine.checkpoint import WeightsMismatchError, load_checkpoint, load_model_weights
from tadformer.model import ActionFormer, build_model


@dataclass
class LoadedModel:
    """A model ready for inference, with where its weights and config came from."""

    cfg: ExperimentConfig
    model: ActionFormer
    class_names: tuple[str, ...]
    weights_description: str
    checkpoint_path: Path


def resolve_checkpoint(path: str | Path, epoch: int | None = None) -> Path:
    """A checkpoint file from a file or a run directory (``epoch_XXX.pth.tar``, else the latest)."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {p} not found")
    folder = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    if epoch is not None:
        cand = folder / f"epoch_{epoch:03d}.pth.tar"
        if not cand.is_file():
            raise FileNotFoundError(f"{cand} not found (--epoch {epoch})")
        return cand
    epochs = sorted(folder.glob("epoch_*.pth.tar"))
    if epochs:
        return epochs[-1]
    others = sorted(folder.glob("*.pth.tar")) + sorted(folder.glob("*.pth"))
    if not others:
        raise FileNotFoundError(f"no checkpoint (*.pth.tar) in {folder}")
    return others[-1]


def resolve_config(config_path: str | Path | None, ckpt: dict, overrides: Sequence[str], seed: int | None,
                   ckpt_path: Path) -> ExperimentConfig:
    """The config given on the command line, else the one stored in our checkpoint."""
    if config_path is not None:
        cfg = load_config(config_path, overrides)
    elif isinstance(ckpt.get("config"), dict):
        raw = apply_overrides(ckpt["config"], overrides)
        try:
            cfg = config_from_dict(raw)
        except ConfigError as err:
            raise ConfigError(f"{ckpt_path}: the config stored in the checkpoint"
                              f"{' (with the --set overrides)' if overrides else ''} is invalid: {err}") from None
    else:
        raise ValueError(f"{ckpt_path} holds no config (an official checkpoint?): pass the YAML config it was "
                         "trained with, e.g. `--config configs/thumos_i3d.yaml`")
    if seed is not None:
        cfg = replace(cfg, init_rand_seed=seed)
    return cfg


def class_names_for(cfg: ExperimentConfig, ckpt: dict, classes: str | None = None) -> tuple[str, ...]:
    """Checkpoint metadata, else ``--classes`` (file or comma list), else THUMOS14's names, else ids."""
    n = cfg.dataset.num_classes
    if ckpt.get("class_names"):
        return tuple(ckpt["class_names"])
    if classes:
        p = Path(classes)
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()] if p.is_file() \
            else [c.strip() for c in classes.split(",")]
        if len(names) != n:
            raise ValueError(f"--classes gives {len(names)} names but the model has {n} classes")
        return tuple(names)
    if cfg.dataset_name.startswith("thumos") and n == 20:
        return thumos14_class_names()
    return tuple(f"class_{i}" for i in range(n))


def load_for_inference(ckpt_path: str | Path, config_path: str | Path | None = None, *,
                       overrides: Sequence[str] = (), seed: int | None = None, device: torch.device | None = None,
                       use_ema: bool = True, epoch: int | None = None, classes: str | None = None) -> LoadedModel:
    """Build the model of a checkpoint (ours or official) in eval mode, on ``device``."""
    path = resolve_checkpoint(ckpt_path, epoch)
    ckpt = load_checkpoint(path, map_location="cpu")
    cfg = resolve_config(config_path, ckpt, overrides, seed, path)
    model = build_model(cfg)
    try:
        desc = load_model_weights(model, ckpt, prefer_ema=use_ema, source=path.name)
    except WeightsMismatchError as err:
        hint = ("\n  the checkpoint was trained with another architecture: omit the config to use the one stored "
                "in the checkpoint" if config_path is not None and isinstance(ckpt.get("config"), dict) else
                "\n  pass the YAML config the checkpoint was trained with (model and dataset sections)")
        raise WeightsMismatchError(f"{err}{hint}") from None
    model = model.to(device or torch.device("cpu")).eval()
    return LoadedModel(cfg, model, class_names_for(cfg, ckpt, classes), f"{desc} ({path})", path)
