"""Bad inputs of the ActivityNet / EPIC / Ego4D paths: one-line errors naming the file, key, video or
class, through the CLI, and nothing already written is lost.

A tiny ActivityNet-style dataset is written by hand (``v_`` prefixed features, 3 classes, an external
score file); a model is trained for one step with the shipped ``anet_tsp`` config, then evaluated with
good and bad score files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rel_helpers import assert_error, one_thread, run_cli  # noqa: F401  (autouse)

from tadformer.config import packaged_config

CLASSES = ["Long jump", "Playing piano", "Making a sandwich"]
TINY = ["model.embd_dim=16", "model.fpn_dim=16", "model.head_dim=16", "dataset.input_dim=8", "loader.batch_size=2",
        "loader.num_workers=0", "opt.epochs=1", "opt.warmup_epochs=0"]


def _sets(root: Path, *extra: str) -> list[str]:
    out: list[str] = []
    base = [f"dataset.json_file={root / 'ann.json'}", f"dataset.feat_folder={root / 'feats'}",
            f"test_cfg.ext_score_file={root / 'scores.json'}", f"output_folder={root}"]
    for item in (*TINY, *base, *extra):
        out += ["--set", item]
    return out


@pytest.fixture(scope="module")
def anet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tadformer.cli import main

    root = tmp_path_factory.mktemp("anet_bad")
    rng = np.random.default_rng(0)
    (root / "feats").mkdir()
    db: dict[str, Any] = {}
    scores: dict[str, list[float]] = {}
    for i in range(6):
        vid = f"vid{i}"
        t = int(rng.integers(40, 300))
        np.save(root / "feats" / f"v_{vid}.npy", rng.standard_normal((t, 8)).astype(np.float32))
        duration = t * 16 / 15
        c = i % 3
        db[vid] = {"subset": "training" if i < 4 else "validation", "duration": duration, "fps": 30.0,
                   "annotations": [{"label": CLASSES[c], "label_id": c,
                                    "segment": [0.2 * duration, 0.7 * duration]}]}
        scores[vid] = rng.dirichlet(np.ones(3)).tolist()
    (root / "ann.json").write_text(json.dumps({"database": db}))
    (root / "scores.json").write_text(json.dumps({"results": scores, "class": CLASSES}))
    run = root / "run"
    code = main(["train", str(packaged_config("anet_tsp")), "--out", str(run), "--no-progress", "--device", "cpu",
                 *_sets(root)])
    assert code == 0
    return {"root": root, "run": run, "db": db, "scores": scores}


def _eval(anet: dict[str, Any], capsys: pytest.CaptureFixture[str], scores: Any, out: str,
          *extra: str) -> tuple[int, str, Path]:
    path = anet["root"] / f"{out}.json"
    if scores is not None:
        path.write_text(scores if isinstance(scores, str) else json.dumps(scores))
    dest = anet["root"] / out
    code, err = run_cli(["eval", str(packaged_config("anet_tsp")), "--ckpt", str(anet["run"]), "--out", str(dest),
                         "--no-progress", "--ext-scores", str(path), *_sets(anet["root"]), *extra], capsys)
    return code, err, path


def test_good_score_file_fuses_and_uses_the_anet_thresholds(anet: dict[str, Any], capsys) -> None:
    code, err, _ = _eval(anet, capsys, {"results": anet["scores"], "class": CLASSES}, "good")
    assert code == 0, err
    metrics = json.loads((anet["root"] / "good" / "metrics.json").read_text())
    assert metrics["tiou_thresholds"] == np.linspace(0.5, 0.95, 10).tolist()
    preds = json.loads((anet["root"] / "good" / "predictions.json").read_text())["results"]
    for vid, dets in preds.items():  # top-2 external classes, labels are the annotation's ids
        top2 = np.argsort(anet["scores"][vid])[::-1][:2].tolist()
        assert sorted({d["label_id"] for d in dets}) == sorted(top2)
        assert {d["label"] for d in dets} <= set(CLASSES)


@pytest.mark.parametrize("scores, fragments", [
    (None, ("external", "not found")),
    ("{not json", ("invalid JSON",)),
    ({"class": CLASSES}, ("'results'",)),
    ({"results": {"vid0": [0.2, 0.3, 0.5]}, "class": CLASSES}, ("'vid4'",)),
    ({"results": {f"vid{i}": [0.2, 0.3, 0.5] for i in range(6)}, "class": ["Long jump", "Piano", "Sandwich"]},
     ("Piano",)),
    ({"results": {f"vid{i}": [0.2, 0.3, 0.4, 0.1] for i in range(6)}, "class": [*CLASSES, "Surfing"]},
     ("4 classes", "has 3")),
])
def test_bad_score_files(anet: dict[str, Any], capsys, scores: Any, fragments: tuple[str, ...]) -> None:
    before = sorted(p.name for p in anet["run"].rglob("*"))
    code, err, path = _eval(anet, capsys, scores, f"bad{abs(hash(str(scores))) % 10**6}")
    assert code != 0
    assert_error(code, err, code, *fragments)
    assert sorted(p.name for p in anet["run"].rglob("*")) == before  # the run is untouched


def test_max_seq_len_not_fitting_the_pyramid(anet: dict[str, Any], capsys) -> None:
    code, err = run_cli(["train", str(packaged_config("anet_tsp")), "--out", str(anet["root"] / "bad_len"),
                         "--no-progress", "--device", "cpu", *_sets(anet["root"], "dataset.max_seq_len=200")], capsys)
    assert_error(code, err, code, "max_seq_len", "200")
    assert code != 0


def test_feature_folder_list_must_pair_with_input_dim(anet: dict[str, Any], capsys) -> None:
    root = anet["root"]
    code, err = run_cli(["train", str(packaged_config("anet_tsp")), "--out", str(root / "bad_dims"), "--no-progress",
                         "--device", "cpu", *_sets(root),
                         "--set", f"dataset.feat_folder=[{root / 'feats'}, {root / 'feats'}]",
                         "--set", "dataset.input_dim=[8, 8, 8]"], capsys)
    assert code != 0
    assert_error(code, err, code, "input_dim has 3 entries", "lists 2 folder")


def test_npz_without_feats_and_hdf5_without_key(anet: dict[str, Any], capsys, tmp_path: Path) -> None:
    import h5py

    root = anet["root"]
    npz = tmp_path / "npz"
    npz.mkdir()
    for vid in anet["db"]:
        np.savez(npz / f"v_{vid}.npz", features=np.zeros((50, 8), np.float32))
    code, err = run_cli(["train", str(packaged_config("anet_tsp")), "--out", str(tmp_path / "r1"), "--no-progress",
                         "--device", "cpu", *_sets(root), "--set", f"dataset.feat_folder={npz}",
                         "--set", "dataset.file_ext=.npz"], capsys)
    assert code != 0
    assert_error(code, err, code, "has no array 'feats'", "v_vid")
    store = tmp_path / "feats.hdf5"
    with h5py.File(store, "w") as fid:
        fid.create_dataset("v_vid0", data=np.zeros((50, 8), np.float32))
    code, err = run_cli(["train", str(packaged_config("anet_tsp")), "--out", str(tmp_path / "r2"), "--no-progress",
                         "--device", "cpu", *_sets(root), "--set", f"dataset.feat_folder={store}"], capsys)
    assert code != 0
    assert_error(code, err, code, "has no dataset 'v_vid", "feats.hdf5")
