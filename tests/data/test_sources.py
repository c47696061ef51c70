"""Feature containers: ``.npy``, ``.npz`` (``feats``), HDF5 stores and several folders, with clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tadformer.data.features import FeatureError
from tadformer.data.sources import expected_dims, has_features, read_features


def _feats(t: int, c: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((t, c)).astype(np.float32)


def test_npz_holds_feats(tmp_path: Path) -> None:
    a = _feats(7, 3, 0)
    np.savez(tmp_path / "v1.npz", feats=a)
    np.testing.assert_array_equal(read_features([str(tmp_path)], "v1", None, ".npz", [3]), a)
    np.savez(tmp_path / "v2.npz", features=a)
    with pytest.raises(FeatureError, match=r"v2.npz has no array 'feats' \(arrays: \['features'\]\)"):
        read_features([str(tmp_path)], "v2", None, ".npz", [3])
    with pytest.raises(FeatureError, match="found C=3 channels but input_dim=4"):
        read_features([str(tmp_path)], "v1", None, ".npz", [4])


def test_several_folders_are_concatenated_in_order(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _feats(5, 2, 1), _feats(5, 3, 2).astype(np.float16)
    np.save(tmp_path / "a" / "v.npy", a)
    np.save(tmp_path / "b" / "v.npy", b)
    folders = [str(tmp_path / "a"), str(tmp_path / "b")]
    got = read_features(folders, "v", None, ".npy", expected_dims((2, 3), 2))
    np.testing.assert_array_equal(got, np.concatenate([a, b.astype(np.float32)], axis=1))
    assert has_features(folders, "v", None, ".npy") and not has_features(folders, "w", None, ".npy")
    np.save(tmp_path / "b" / "w.npy", _feats(6, 3, 3))
    np.save(tmp_path / "a" / "w.npy", _feats(5, 2, 4))
    with pytest.raises(FeatureError, match=r"'w': the feature folders .* hold \[5, 6\] steps"):
        read_features(folders, "w", None, ".npy", [2, 3])
    # one total input_dim for several folders (official Ego4D two-feature configs): the sum is checked
    np.testing.assert_array_equal(read_features(folders, "v", None, ".npy", expected_dims(5, 2), 5), got)
    with pytest.raises(FeatureError, match=r"hold \[2, 3\] channels, 5 in all, but input_dim=6"):
        read_features(folders, "v", None, ".npy", expected_dims(6, 2), 6)


def test_hdf5_store(tmp_path: Path) -> None:
    import h5py

    store = tmp_path / "feats.hdf5"
    a = _feats(9, 4, 5)
    with h5py.File(store, "w") as fid:
        fid.create_dataset("v_abc", data=a)
    np.testing.assert_array_equal(read_features([str(store)], "abc", "v_", None, [4]), a)
    with pytest.raises(FeatureError, match=r"HDF5 store .*feats.hdf5 has no dataset 'v_zzz'"):
        read_features([str(store)], "zzz", "v_", None, [4])


def test_hdf5_without_h5py_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(FeatureError, match=r"needs the optional package h5py: pip install 'tadformer\[hdf5\]'"):
        read_features([str(tmp_path / "x.h5")], "abc", None, None, [4])
