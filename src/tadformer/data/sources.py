"""Where a video's features are stored, and reading them as one ``[T, C]`` array.

The official datasets read features from:

- one ``.npy`` file per video (THUMOS14, ActivityNet, Ego4D): ``folder / (prefix + id + ext)``;
- one ``.npz`` file per video holding the array ``feats`` (EPIC-Kitchens);
- an HDF5 store (ActivityNet with ``feat_folder`` set to a ``.hdf5``/``.h5`` file): one dataset per
  video, named ``prefix + id`` (needs the optional ``h5py``: ``pip install tadformer[hdf5]``);
- several folders at once (Ego4D feature combinations): the per-folder ``[T, C_j]`` arrays are
  concatenated along channels in folder order; ``input_dim`` is then a list with one entry per folder.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tadformer.data.features import FeatureError, feature_path, load_features

HDF5_SUFFIXES = (".hdf5", ".h5")
NPZ_KEY = "feats"


def feat_folders(feat_folder: str | Sequence[str] | None) -> tuple[str, ...]:
    """``dataset.feat_folder`` as a tuple of folders (or HDF5 files)."""
    if feat_folder is None or feat_folder == "" or (not isinstance(feat_folder, str) and len(feat_folder) == 0):
        raise ValueError("dataset.feat_folder is not set: point it at the feature folder (or a list of folders)")
    return (feat_folder,) if isinstance(feat_folder, str) else tuple(str(f) for f in feat_folder)


def expected_dims(input_dim: int | Sequence[int], num_folders: int) -> tuple[int | None, ...]:
    """Channels expected from each folder: ``input_dim`` itself (one folder), its entries (a list, one per
    folder), or None per folder when several folders share one total ``input_dim`` (as in the official
    Ego4D SlowFast+EgoVLP config; the total is checked after concatenation, see :func:`read_features`).

    Raises:
        ValueError: a list ``input_dim`` whose length differs from the number of folders.
    """
    if isinstance(input_dim, int):
        return (input_dim,) if num_folders == 1 else (None,) * num_folders
    dims = tuple(int(d) for d in input_dim)
    if len(dims) != num_folders:
        raise ValueError(f"dataset.input_dim has {len(dims)} entries {list(dims)} but dataset.feat_folder lists "
                         f"{num_folders} folder(s); they must pair up (one channel count per folder)")
    return dims


def is_hdf5(folder: str) -> bool:
    return folder.lower().endswith(HDF5_SUFFIXES)


def source_path(folder: str, video_id: str, file_prefix: str | None, file_ext: str | None) -> Path:
    """The file that holds ``video_id`` in ``folder`` (the HDF5 store itself for an HDF5 source)."""
    if is_hdf5(folder):
        return Path(folder)
    if not file_ext:
        raise ValueError(f"dataset.file_ext must be set (e.g. '.npy'), got {file_ext!r}")
    return feature_path(folder, video_id, file_prefix, file_ext)


def has_features(folders: Sequence[str], video_id: str, file_prefix: str | None, file_ext: str | None) -> bool:
    """Whether every folder has the video's file (HDF5 stores are checked when read)."""
    return all(source_path(f, video_id, file_prefix, file_ext).is_file() for f in folders)


def _load_npz(path: Path, video_id: str, expected_dim: int | None) -> np.ndarray:
    where = f"video {video_id!r}: feature file {path}"
    if not path.is_file():
        raise FeatureError(f"{where} not found (the path is feat_folder / (file_prefix or '') + video_id + file_ext)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if NPZ_KEY not in archive.files:
                raise FeatureError(f"{where} has no array {NPZ_KEY!r} (arrays: {sorted(archive.files)}); the .npz "
                                   f"must hold the [T, C] features as {NPZ_KEY!r}")
            feats = np.asarray(archive[NPZ_KEY])
    except FeatureError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise FeatureError(f"{where} could not be read as a .npz archive: {exc}") from exc
    return _checked(feats, where, expected_dim)


def _load_hdf5(store: Path, key: str, video_id: str, expected_dim: int | None) -> np.ndarray:
    try:
        import h5py  # type: ignore[import-untyped]
    except ImportError:
        raise FeatureError(f"reading HDF5 features ({store}) needs the optional package h5py: "
                           "pip install 'tadformer[hdf5]' (or pip install h5py)") from None
    where = f"video {video_id!r}: HDF5 store {store}"
    if not store.is_file():
        raise FeatureError(f"{where} not found (dataset.feat_folder names the .hdf5 file)")
    try:
        with h5py.File(store, "r") as fid:
            if key not in fid:
                raise FeatureError(f"{where} has no dataset {key!r} (file_prefix + video id)")
            feats = np.asarray(fid[key][()])
    except FeatureError:
        raise
    except OSError as exc:
        raise FeatureError(f"{where} could not be read: {exc}") from exc
    return _checked(feats, where, expected_dim)


def _checked(feats: np.ndarray, where: str, expected_dim: int | None) -> np.ndarray:
    if feats.dtype.kind != "f":
        raise FeatureError(f"{where} has dtype {feats.dtype}; only float16/float32/float64 features are accepted")
    if feats.ndim != 2:
        raise FeatureError(f"{where} has shape {feats.shape}; expected a 2-D [T, C] array")
    if expected_dim is not None and feats.shape[1] != expected_dim:
        hint = " (it looks transposed: save it as [T, C])" if feats.shape[0] == expected_dim else ""
        raise FeatureError(f"{where} has shape {feats.shape}: found C={feats.shape[1]} channels but "
                           f"input_dim={expected_dim}{hint}")
    if feats.shape[0] == 0:
        raise FeatureError(f"{where} has zero length (shape {feats.shape})")
    return feats


def read_feature_file(path: str | Path, expected_dim: int | None, video_id: str) -> np.ndarray:
    """One video's ``[T, C]`` features from a ``.npy`` file or a ``.npz`` archive (array ``feats``)."""
    path = Path(path)
    if path.suffix == ".npz":
        return _load_npz(path, video_id, expected_dim)
    return load_features(path, expected_dim, video_id, check_finite=False)


def read_features(folders: Sequence[str], video_id: str, file_prefix: str | None, file_ext: str | None,
                  dims: Sequence[int | None], total_dim: int | None = None) -> np.ndarray:
    """The ``[T, C]`` features of ``video_id`` (float16/32/64 as stored; several folders concatenated).

    Raises:
        FeatureError: a missing file or HDF5 key, a ``.npz`` without ``feats``, a wrong channel count, or
            folders whose feature lengths differ (each named).
    """
    parts = []
    for folder, dim in zip(folders, dims):
        path = source_path(folder, video_id, file_prefix, file_ext)
        if is_hdf5(folder):
            parts.append(_load_hdf5(path, f"{file_prefix or ''}{video_id}", video_id, dim))
        else:
            parts.append(read_feature_file(path, dim, video_id))
    return concat_streams(parts, list(folders), video_id, total_dim)


def concat_streams(parts: Sequence[np.ndarray], sources: Sequence[str | Path], video_id: str,
                   total_dim: int | None = None, kind: str = "folders") -> np.ndarray:
    """One video's per-stream ``[T, C_j]`` arrays side by side, ``[T, sum C_j]`` float32 (a single
    array is returned as stored).

    Raises:
        FeatureError: the streams have different lengths, or (``total_dim``) their channels do not add
            up to it; the ``sources`` are named (``kind``: "folders" or "files").
    """
    if len(parts) == 1:
        return parts[0]
    lengths = [p.shape[0] for p in parts]
    if len(set(lengths)) != 1:
        raise FeatureError(f"video {video_id!r}: the feature {kind} {[str(s) for s in sources]} hold {lengths} "
                           "steps; they must have the same length to be concatenated")
    feats = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts], axis=1)  # [T, sum C_j]
    if total_dim is not None and feats.shape[1] != total_dim:
        raise FeatureError(f"video {video_id!r}: the feature {kind} {[str(s) for s in sources]} hold "
                           f"{[p.shape[1] for p in parts]} channels, {feats.shape[1]} in all, "
                           f"but input_dim={total_dim}")
    return feats
