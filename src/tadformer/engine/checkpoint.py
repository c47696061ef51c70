"""Checkpoints: atomic saving, safe loading, official-checkpoint weights, RNG state for exact resume.

Our checkpoint is a ``torch.save`` dict that loads with ``torch.load(weights_only=True)``. It keeps
the official key names (``epoch``, ``state_dict``, ``state_dict_ema``, ``optimizer``,
``scheduler``; SPEC §5.7) without the ``module.`` prefix, plus ``format``, ``format_version``,
``loss_normalizer``, ``rng_state`` (tensors and plain numbers), ``config`` (plain dict),
``class_names`` (list of str) and ``extra`` (plain dict).

:func:`load_model_weights` also reads official ActionFormer checkpoints (``epoch_034.pth.tar``:
``state_dict`` / ``state_dict_ema`` with ``module.`` prefixes) and bare state dicts.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tadformer.engine.ema import ModelEma

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointWriteError",
    "WeightsMismatchError",
    "atomic_torch_save",
    "capture_rng_state",
    "load_checkpoint",
    "load_model_weights",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT_NAME = "tadformer-checkpoint"
FORMAT_VERSION = 1
_MODULE_PREFIX = "module."
_LIST_LIMIT = 10


class CheckpointError(ValueError):
    """A file or object is not a usable checkpoint (corrupted, truncated, wrong content)."""


class WeightsMismatchError(CheckpointError):
    """Checkpoint weights do not fit the model (missing/unexpected keys, shape mismatches)."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed; the previous file at that path (if any) is untouched."""


# ----------------------------------------------------------------------------------------- saving
_SAFE_LEAVES = (str, int, float, bool, type(None))
_SAFE_MAPPINGS = (dict, OrderedDict, Counter)


def _check_plain(obj: Any, where: str) -> None:
    """Raise unless ``obj`` is built only from types that ``torch.load(weights_only=True)`` accepts."""
    if type(obj) in _SAFE_LEAVES or isinstance(obj, torch.Tensor):
        return
    if type(obj) in _SAFE_MAPPINGS:
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise TypeError(f"checkpoint field {where}: key {key!r} must be str or int")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(
        f"checkpoint field {where} has type {type(obj).__name__}; only plain dict/list/tuple/str/int/"
        "float/bool/None/Tensor values can be stored (so the file loads with weights_only=True)"
    )


def _plain(obj: Any) -> Any:
    """Other mappings to dict, other sequences' items and NumPy scalars/arrays to plain values."""
    if type(obj) in _SAFE_MAPPINGS:
        return type(obj)({key: _plain(value) for key, value in obj.items()})
    if isinstance(obj, Mapping):
        return {key: _plain(value) for key, value in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    return obj


def _unwrap(model: nn.Module) -> nn.Module:
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, wrappers) else model


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    ema: ModelEma | None,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any | None,
    epoch: int,
    loss_normalizer_state: Any = None,
    rng_state: Mapping[str, Any] | None = None,
    config_dict: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file in the same folder, fsync, ``os.replace``).

    Args:
        path: destination file (parent folders are created).
        model: the model (DataParallel/DDP wrappers are unwrapped; keys carry no ``module.``).
        ema: the EMA, or None.
        optimizer: the optimiser, or None.
        scheduler: the LR scheduler (anything with ``state_dict()``), or None.
        epoch: number of completed epochs (the official ``epoch`` value: the epoch to resume at).
        loss_normalizer_state: plain value(s) of the loss normaliser (e.g. a float or dict).
        rng_state: from :func:`capture_rng_state`.
        config_dict: the resolved config as a plain dict.
        class_names: class names in label-id order.
        extra: any other plain values (e.g. metrics).

    Returns:
        The destination path.

    Raises:
        TypeError: a field holds a non-plain object (it would not load with weights_only=True).
        CheckpointWriteError: writing failed (e.g. disk full); the previous file is intact and no
            temporary file is left behind.
    """
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "state_dict": _unwrap(model).state_dict(),
        "state_dict_ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": _plain(scheduler.state_dict()) if scheduler is not None else None,
        "loss_normalizer": _plain(loss_normalizer_state),
        "rng_state": _plain(rng_state) if rng_state is not None else None,
        "config": _plain(config_dict) if config_dict is not None else None,
        "class_names": [str(name) for name in class_names] if class_names is not None else None,
        "extra": _plain(extra) if extra is not None else {},
    }
    for field in ("scheduler", "loss_normalizer", "rng_state", "config", "extra"):
        _check_plain(payload[field], field)
    return atomic_torch_save(payload, Path(path))


def atomic_torch_save(payload: Any, path: Path, what: str = "checkpoint") -> Path:
    """``torch.save`` to ``path`` through a same-folder temp file (fsync, ``os.replace``); all-or-nothing.

    Raises:
        CheckpointWriteError: writing failed (``what`` names the file kind in the message); the
            previous file at ``path`` is intact and the temp file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, Exception):
            hint = ""
            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                hint = "; the disk is full: free some space (the previous file is intact), then rerun"
            raise CheckpointWriteError(f"could not write {what} {path}: {err}{hint}") from err
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Persist the rename (POSIX); silently skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- loading
def _describe_file_start(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK"):
        return "it is a zip archive (torch format) but truncated or corrupted"
    if head.lstrip()[:1] in (b"{", b"["):
        return "it looks like a JSON/text file"
    return "it is not a valid torch checkpoint"


def _refusal_reason(err: Exception) -> str:
    """The informative part of torch's weights-only refusal (e.g. ``Unsupported global: ...``)."""
    marker = "WeightsUnpickler error:"
    text = str(err)
    lines = text.split(marker, 1)[1].splitlines() if marker in text else [ln for ln in text.splitlines()
                                                                          if "GLOBAL" in ln]
    for line in lines:
        if line.strip():
            return line.split(" Please use", 1)[0].strip().rstrip(".")
    return ""


def _first_sentence(err: Exception) -> str:
    """``Type: first sentence`` of an exception message (torch appends long generic advice)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text.split('. ', 1)[0].rstrip('.')}" if text else type(err).__name__


_DAMAGED_HINT = "the file is damaged or not a checkpoint: use another checkpoint (e.g. an epoch_XXX.pth.tar) or retrain"


def _torch_load(path: str | os.PathLike[str], map_location: Any, trusted: bool) -> Any:
    """``torch.load`` with clear errors; ``weights_only=True`` unless ``trusted``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a folder, expected a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as err:
        reason = _refusal_reason(err)
        if "GLOBAL" in reason:  # a well-formed pickle that names a Python class or function
            raise CheckpointError(
                f"cannot load {path} safely: it holds objects that weights_only=True loading refuses "
                f"(arbitrary Python objects, not a plain checkpoint): {reason}. "
                "Pass trusted=True only if you trust the file."
            ) from err
        detail = f" (weights_only unpickler: {reason})" if reason else ""
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_describe_file_start(path)}{detail}; {_DAMAGED_HINT}"
        ) from err
    except Exception as err:  # truncated zip, empty file, garbage bytes, ...
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_describe_file_start(path)} ({_first_sentence(err)}); {_DAMAGED_HINT}"
        ) from err


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def load_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu", *, trusted: bool = False
) -> dict[str, Any]:
    """Load a full checkpoint (ours or official) as a dict.

    Args:
        path: checkpoint file.
        map_location: where tensors go (default CPU).
        trusted: load with ``weights_only=False`` (arbitrary pickle: only for files you trust).

    Returns:
        The checkpoint dict; it has at least ``state_dict`` (a str -> Tensor mapping).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable (truncated/corrupted/not torch), or not a checkpoint dict.
    """
    obj = _torch_load(path, map_location, trusted)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} is not a checkpoint: it holds a {type(obj).__name__}, expected a dict")
    if "state_dict" not in obj:
        hint = " (it looks like a bare state dict: use load_model_weights)" if _is_state_dict(obj) else ""
        keys = sorted(map(str, obj))[:_LIST_LIMIT]
        raise CheckpointError(
            f"{path} is not a checkpoint: no 'state_dict' entry{hint}; top-level keys {keys}"
        )
    if not _is_state_dict(obj["state_dict"]):
        raise CheckpointError(
            f"{path}: 'state_dict' is not a non-empty mapping of parameter names to tensors"
        )
    return dict(obj)


def _list_some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f", ... and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else ""
    return f"({len(items)}): {shown}{more}"


def _select_weights(ckpt: Any, source: str, prefer_ema: bool) -> tuple[Mapping[str, torch.Tensor], str]:
    """Pick ``state_dict_ema`` / ``state_dict`` / a bare state dict; returns (weights, label)."""
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{source} is not a checkpoint: it holds a {type(ckpt).__name__}")
    order = ("state_dict_ema", "state_dict") if prefer_ema else ("state_dict", "state_dict_ema")
    for key in order:
        if ckpt.get(key) is not None:
            if not _is_state_dict(ckpt[key]):
                raise CheckpointError(f"{source}: {key!r} is not a mapping of parameter names to tensors")
            return ckpt[key], key
    if _is_state_dict(ckpt):
        return ckpt, "state dict"
    keys = sorted(map(str, ckpt))[:_LIST_LIMIT]
    raise CheckpointError(
        f"{source} holds no model weights: expected 'state_dict_ema'/'state_dict' or a bare state dict; "
        f"top-level keys {keys}"
    )


def load_model_weights(
    model: nn.Module,
    ckpt_or_path: Mapping[str, Any] | str | os.PathLike[str],
    prefer_ema: bool = True,
    *,
    trusted: bool = False,
    source: str | None = None,
) -> str:
    """Load model weights from our checkpoint, an official one, or a bare state dict.

    ``module.`` prefixes (official DataParallel checkpoints) are stripped. With ``prefer_ema`` the
    EMA weights are used when present (official evaluation always uses them).

    Args:
        model: the model to fill (strict: every key and shape must match).
        ckpt_or_path: a checkpoint file, or an already loaded checkpoint/state dict.
        prefer_ema: use ``state_dict_ema`` when present, else ``state_dict``.
        trusted: see :func:`load_checkpoint`.
        source: how to name an already loaded checkpoint in messages (e.g. its file name).

    Returns:
        What was loaded, e.g. ``"state_dict_ema from epoch_034.pth.tar (epoch 34)"``.

    Raises:
        WeightsMismatchError: lists missing / unexpected keys and shape mismatches (first 10 of
            each, with counts).
        CheckpointError, FileNotFoundError: as in :func:`load_checkpoint`.
    """
    if isinstance(ckpt_or_path, (str, os.PathLike)):
        source = Path(ckpt_or_path).name
        ckpt: Any = _torch_load(ckpt_or_path, "cpu", trusted)
    else:
        source, ckpt = source or "in-memory checkpoint", ckpt_or_path
    weights, label = _select_weights(ckpt, source, prefer_ema)
    weights = {k[len(_MODULE_PREFIX):] if k.startswith(_MODULE_PREFIX) else k: v for k, v in weights.items()}
    target = _unwrap(model)
    expected = target.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    shapes = [
        f"{k}: checkpoint {list(weights[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        lines = [f"{label} from {source} does not fit the model ({type(target).__name__}):"]
        sections = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        for title, items in sections:
            if items:
                lines.append(f"  {title} {_list_some(items)}")
        lines += _architecture_hint(weights, expected)
        raise WeightsMismatchError("\n".join(lines))
    target.load_state_dict(weights, strict=True)
    epoch = ckpt.get("epoch") if label != "state dict" else None
    return f"{label} from {source}" + (f" (epoch {epoch})" if isinstance(epoch, int) else "")


def _architecture_hint(weights: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """A line naming the checkpoint's architecture and the config to use, when it is not the model's."""
    from tadformer.config_arch import guess_architecture

    have, want = guess_architecture(weights), guess_architecture(expected)
    if have is None or want is None or have.model_name == want.model_name:
        return []
    return [f"  the checkpoint holds {have.display} weights (model_name: {have.model_name}) but the config builds "
            f"{want.display} (model_name: {want.model_name}): use a {have.display} config, e.g. "
            f"configs/{have.thumos_config}.yaml"]


# -------------------------------------------------------------------------------------------- RNG
def capture_rng_state() -> dict[str, Any]:
    """Snapshot every RNG that training draws from, as tensors and plain numbers.

    Returns:
        ``torch_cpu`` (uint8 tensor), ``torch_cuda`` (list of uint8 tensors, empty without CUDA),
        ``numpy`` (dict: ``keys`` int64 [624], ``pos``, ``has_gauss``, ``cached_gaussian``) and
        ``python`` (dict: ``version``, ``internal`` int64 [625], ``gauss_next``).
    """
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    if np_name != "MT19937":
        raise ValueError(f"unsupported NumPy RNG {np_name!r}")
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the RNGs captured by :func:`capture_rng_state` (CUDA states only where devices exist).

    Raises:
        CheckpointError: ``state`` lacks an expected entry.
    """
    try:
        torch.set_rng_state(state["torch_cpu"].to(device="cpu", dtype=torch.uint8))
        if torch.cuda.is_available():
            for index, cuda_state in enumerate(state["torch_cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state.to(device="cpu", dtype=torch.uint8), index)
        np_state = state["numpy"]
        np_keys = np_state["keys"].cpu().numpy().astype(np.uint32)
        np_pos, np_has_gauss = int(np_state["pos"]), int(np_state["has_gauss"])
        np.random.set_state(("MT19937", np_keys, np_pos, np_has_gauss, float(np_state["cached_gaussian"])))
        py_state = state["python"]
        internal = tuple(int(v) for v in py_state["internal"].tolist())
        random.setstate((int(py_state["version"]), internal, py_state["gauss_next"]))
    except KeyError as err:
        raise CheckpointError(
            f"RNG state is missing entry {err}; expected the output of capture_rng_state()"
        ) from err
