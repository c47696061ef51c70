"""Training crops drawn by the official THUMOS dataset (run in ``bench/.venv-official``).

``python -m bench.official_crops CONFIG SEED DRAWS OUT.json JSON_OVERRIDES``: after the official
``fix_random_seed(SEED)``, every training item is read ``DRAWS`` times (a pass over the dataset per draw,
as epochs do); each crop window is recovered by locating the crop's first feature column in the
uncropped features. Writes ``{"videos": [ids], "lengths": [T], "windows": [[[start, end] per video] per draw]}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def run(config_path: str, seed: int, draws: int, overrides: dict[str, Any]) -> dict[str, Any]:
    import actionformer

    cfg: dict[str, Any] = actionformer.load_config(config_path)
    for key, value in overrides.items():
        section, name = key.split(".")
        cfg[section][name] = value
    actionformer.fix_random_seed(seed, include_cuda=False)
    train = actionformer.make_dataset(cfg["dataset_name"], True, cfg["train_split"], **cfg["dataset"])
    full = actionformer.make_dataset(cfg["dataset_name"], False, cfg["train_split"], **cfg["dataset"])
    whole = [full[i]["feats"].numpy() for i in range(len(full))]  # [C, T] each
    videos = [full[i]["video_id"] for i in range(len(full))]
    windows = []
    for _ in range(draws):
        row = []
        for i in range(len(train)):
            item = train[i]
            assert item["video_id"] == videos[i]
            crop = item["feats"].numpy()
            length = crop.shape[1]
            starts = np.flatnonzero((whole[i] == crop[:, :1]).all(axis=0))
            start = int(starts[0]) if length < whole[i].shape[1] else 0
            row.append([start, start + length])
        windows.append(row)
    return {"videos": videos, "lengths": [int(w.shape[1]) for w in whole], "windows": windows}


if __name__ == "__main__":
    out = run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[5]))
    with open(sys.argv[4], "w") as fh:
        json.dump(out, fh)
