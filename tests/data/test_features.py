"""Feature file loading: memory-mapping and one clear error per kind of bad file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tadformer.data import features
from tadformer.data.features import FeatureError, ensure_finite, feature_path, load_features


def _save(tmp_path: Path, array: np.ndarray, name: str = "v.npy") -> Path:
    path = tmp_path / name
    np.save(path, array)
    return path


def test_feature_path_rule() -> None:
    assert feature_path("feats", "vid", None, ".npy") == Path("feats/vid.npy")
    assert feature_path("feats", "vid", "i3d_", ".npy") == Path("feats/i3d_vid.npy")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_loads_float_memmap(tmp_path: Path, dtype: type) -> None:
    array: np.ndarray = np.arange(12, dtype=dtype).reshape(4, 3)
    out = load_features(_save(tmp_path, array), 3, "vid")
    assert isinstance(out, np.memmap) and out.dtype == dtype
    np.testing.assert_array_equal(out, array)


def test_missing_file_explains_path_rule(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match=r"'vid'.*nope\.npy not found.*file_prefix.*file_ext.*feat_folder"):
        load_features(tmp_path / "nope.npy", 3, "vid")


def test_wrong_dim_and_transposed_hint(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match=r"C=5 channels but input_dim=3$"):
        load_features(_save(tmp_path, np.zeros((4, 5), np.float32)), 3, "vid")
    with pytest.raises(FeatureError, match=r"C=4 channels but input_dim=3 \(it looks transposed"):
        load_features(_save(tmp_path, np.zeros((3, 4), np.float32)), 3, "vid")
    assert load_features(_save(tmp_path, np.zeros((4, 5), np.float32)), None, "vid").shape == (4, 5)


@pytest.mark.parametrize("shape", [(6,), (2, 3, 1)])
def test_wrong_ndim(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(FeatureError, match=r"expected a 2-D \[T, C\] array"):
        load_features(_save(tmp_path, np.zeros(shape, np.float32)), None, "vid")


def test_zero_length(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match="zero length"):
        load_features(_save(tmp_path, np.zeros((0, 3), np.float32)), 3, "vid")


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.complex64])
def test_non_float_dtype(tmp_path: Path, dtype: type) -> None:
    with pytest.raises(FeatureError, match="only float16/float32/float64"):
        load_features(_save(tmp_path, np.zeros((4, 3), dtype)), 3, "vid")


def test_object_array(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([[1.0, None]], dtype=object), allow_pickle=True)
    with pytest.raises(FeatureError, match="Python objects"):
        load_features(path, 2, "vid")


def test_not_npy(tmp_path: Path) -> None:
    pickled = tmp_path / "p.npy"
    pickled.write_bytes(pickle.dumps([[1.0, 2.0]]))
    with pytest.raises(FeatureError, match="not a .npy file"):
        load_features(pickled, 2, "vid")
    npz = tmp_path / "z.npy"
    with npz.open("wb") as f:
        np.savez(f, a=np.zeros((2, 2)))
    with pytest.raises(FeatureError, match="zip/.npz"):
        load_features(npz, 2, "vid")
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(FeatureError, match="not a .npy file"):
        load_features(empty, 2, "vid")


def test_truncated_file(tmp_path: Path) -> None:
    path = _save(tmp_path, np.ones((10, 3), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    with pytest.raises(FeatureError, match=r"truncated.*120 bytes.*115 data bytes"):
        load_features(path, 3, "vid")
    path.write_bytes(data[:20])  # the header itself is cut
    with pytest.raises(FeatureError, match="unreadable .npy header"):
        load_features(path, 3, "vid")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_names_first_bad_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: float) -> None:
    monkeypatch.setattr(features, "_CHUNK_ROWS", 4)  # the bad rows sit in the 3rd chunk
    array = np.zeros((12, 3), np.float32)
    array[9, 2] = bad
    array[11, 0] = bad
    path = _save(tmp_path, array)
    with pytest.raises(FeatureError, match=r"'vid'.*NaN/Inf.*first bad row: 9\)"):
        load_features(path, 3, "vid")
    assert load_features(path, 3, "vid", check_finite=False).shape == (12, 3)


def test_ensure_finite_passes_finite() -> None:
    ensure_finite(np.ones((5, 2), np.float32), "x")
    with pytest.raises(FeatureError, match=r"^x contains NaN/Inf values \(first bad row: 0\)$"):
        ensure_finite(np.full((5, 2), np.nan, np.float32), "x")
