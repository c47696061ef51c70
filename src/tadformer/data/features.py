"""Locate and load per-video feature files (``.npy``, ``[T, C]``), with clear errors.

The file of a video is ``feat_folder / ((file_prefix or "") + video_id + file_ext)`` as in the
official datasets. Arrays are memory-mapped; the header is validated before any data is read, and
the finiteness check walks the rows in chunks so huge files are never fully loaded at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_FLOAT_KINDS = ("f",)
_CHUNK_ROWS = 4096


class FeatureError(ValueError):
    """A feature file is missing, unreadable, or does not hold a finite float ``[T, C]`` array."""


def feature_path(feat_folder: str | Path, video_id: str, file_prefix: str | None, file_ext: str) -> Path:
    """Path of a video's feature file: ``feat_folder / ((file_prefix or '') + video_id + file_ext)``."""
    return Path(feat_folder) / f"{file_prefix or ''}{video_id}{file_ext}"


def load_features(
    path: str | Path, expected_dim: int | None, video_id: str, check_finite: bool = True
) -> np.ndarray:
    """Memory-map a ``[T, C]`` float feature array and validate it.

    Args:
        path: the ``.npy`` file.
        expected_dim: required channel count C (the config's ``input_dim``), or None to accept any.
        video_id: used in error messages.
        check_finite: scan the rows (chunk by chunk) for NaN/Inf.

    Returns:
        A read-only ``[T, C]`` memmap (float16, float32 or float64; not cast here).

    Raises:
        FeatureError: missing file, not a ``.npy`` file, truncated data, non-float or object dtype,
            ndim != 2, wrong channel count, T == 0, or a non-finite value.
    """
    path = Path(path)
    where = f"video {video_id!r}: feature file {path}"
    if not path.is_file():
        raise FeatureError(
            f"{where} not found (the path is feat_folder / (file_prefix or '') + video_id + file_ext; "
            "check dataset.feat_folder, dataset.file_prefix and dataset.file_ext)"
        )
    shape, dtype = _read_header(path, where)
    if dtype.hasobject:
        raise FeatureError(f"{where} holds Python objects (a pickled array); save a float array instead")
    if dtype.kind not in _FLOAT_KINDS:
        raise FeatureError(f"{where} has dtype {dtype}; only float16/float32/float64 features are accepted")
    if len(shape) != 2:
        raise FeatureError(f"{where} has shape {shape}; expected a 2-D [T, C] array")
    num_steps, num_channels = shape
    if expected_dim is not None and num_channels != expected_dim:
        hint = " (it looks transposed: save it as [T, C])" if num_steps == expected_dim else ""
        raise FeatureError(
            f"{where} has shape {shape}: found C={num_channels} channels but input_dim={expected_dim}{hint}"
        )
    if num_steps == 0:
        raise FeatureError(f"{where} has zero length (shape {shape})")
    try:
        feats = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise FeatureError(f"{where} could not be read: {e}") from e
    if check_finite:
        ensure_finite(feats, where)
    return feats


def _read_header(path: Path, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the ``.npy`` header, after checking the data bytes are all present."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_NPY_MAGIC))
            if head[:4] == _ZIP_MAGIC:
                raise FeatureError(f"{where} is a zip/.npz archive; expected a single-array .npy file")
            if head != _NPY_MAGIC:
                raise FeatureError(f"{where} is not a .npy file (bad magic bytes {head!r})")
            f.seek(0)
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(f)
            else:
                shape, _, dtype = npy_format.read_array_header_2_0(f)
            data_offset = f.tell()
    except FeatureError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise FeatureError(f"{where} has an unreadable .npy header: {e}") from e
    if not dtype.hasobject:
        expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        found_bytes = path.stat().st_size - data_offset
        if found_bytes < expected_bytes:
            raise FeatureError(
                f"{where} is truncated: header says shape {shape} {dtype} ({expected_bytes} bytes) "
                f"but only {found_bytes} data bytes are present"
            )
    return tuple(int(d) for d in shape), dtype


def ensure_finite(feats: np.ndarray, where: str) -> None:
    """Raise :class:`FeatureError` naming the first ``[T, C]`` row holding NaN/Inf (scans in row chunks)."""
    for start in range(0, feats.shape[0], _CHUNK_ROWS):
        block = np.asarray(feats[start : start + _CHUNK_ROWS])
        finite = np.isfinite(block)
        if not finite.all():
            row = start + int(np.argmin(finite.all(axis=1)))
            raise FeatureError(f"{where} contains NaN/Inf values (first bad row: {row})")
