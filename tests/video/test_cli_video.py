"""``tadformer extract`` and ``tadformer infer --video`` end to end, with seeded synthetic I3D weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_OVERRIDES
from tadformer.cli import main
from tadformer.config import config_to_dict, load_config, packaged_config
from tadformer.engine.checkpoint import save_checkpoint
from tadformer.model import build_model
from tadformer.video.decode import iter_frames, write_test_video
from tadformer.video.i3d import build_i3d
from tadformer.video.i3d_synthetic import synthetic_i3d_state_dict
from tadformer.video.preprocess import resize_frames, scale_codes
from tadformer.video.weights import file_sha256


def _moving_square(n: int) -> np.ndarray:
    frames = np.full((n, 180, 320, 3), 30, dtype=np.uint8)
    for k in range(n):
        x = 20 + 8 * k
        frames[k, 60:120, x:x + 60] = (220, 80, 40)
    return frames


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("video_cli")
    video = root / "walk.mkv"
    write_test_video(video, _moving_square(25), fps=30)
    files = {"video": video, "root": root}
    for stream, seed in (("rgb", 1003), ("flow", 1002)):
        path = root / f"{stream}_synthetic.pt"
        torch.save(synthetic_i3d_state_dict(build_i3d(stream), seed), path)
        files[stream] = path
    for dim in (1024, 2048):
        cfg = load_config(packaged_config("thumos_i3d"), (*TINY_OVERRIDES, f"dataset.input_dim={dim}"))
        ckpt = root / f"tiny_{dim}.pth.tar"
        torch.manual_seed(0)
        save_checkpoint(ckpt, model=build_model(cfg), ema=None, optimizer=None, scheduler=None, epoch=1,
                        config_dict=config_to_dict(cfg))
        files[f"ckpt{dim}"] = ckpt
    return files


def _weights(a: dict[str, Path]) -> list[str]:
    return ["--rgb-weights", str(a["rgb"]), "--flow-weights", str(a["flow"])]


def test_extract_two_stream_features_and_sidecar(assets: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "feat"
    args = ["extract", str(assets["video"]), "--out", str(out), *_weights(assets), "--flow", "dis", "--device", "cpu",
            "--no-progress"]
    assert main(args) == 0
    feats = np.load(out / "walk.npy")
    assert feats.shape == ((25 - 17) // 4 + 1, 2048) == (3, 2048) and feats.dtype == np.float32
    meta = json.loads((out / "walk.json").read_text())
    assert meta["weights_sha256"] == {"rgb": file_sha256(assets["rgb"]), "flow": file_sha256(assets["flow"])}
    assert meta["flow_method"] == "dis" and meta["streams"] == ["rgb", "flow"] and meta["first_frame"] == 1
    # the RGB half of clip 1 equals the network run by hand on frames 5..20 (dense_flow layout)
    frames = [scale_codes(resize_frames(f)) for f in iter_frames(assets["video"])]
    clip = np.stack(frames[5:21])[:, 16:240, 58:282, :]  # [16, 224, 224, 3]
    x = torch.from_numpy(clip).permute(3, 0, 1, 2)[None]  # [1, 3, 16, 224, 224]
    net = build_i3d("rgb")
    net.load_state_dict(torch.load(assets["rgb"], weights_only=True))
    with torch.inference_mode():
        ref = net.clip_features(x)[0].numpy()
    assert np.abs(feats[1, :1024] - ref).max() <= 1e-4 * np.abs(ref).max()
    assert main(args) == 0  # complete output: skipped
    assert "skipped" in capsys.readouterr().out


def test_extract_rgb_only(assets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "feat"
    assert main(["extract", str(assets["video"]), "--out", str(out), "--streams", "rgb", "--rgb-weights",
                 str(assets["rgb"]), "--batch-size", "1", "--device", "cpu", "--no-progress"]) == 0
    assert np.load(out / "walk.npy").shape == ((25 - 16) // 4 + 1, 1024)


def test_extract_bad_inputs_are_one_line_errors(assets: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "feat"
    base = ["--out", str(out), "--device", "cpu", "--no-progress", "--flow", "dis"]
    # flow weights given for the RGB network: the mismatching keys are named
    bad = ["extract", str(assets["video"]), *base, "--rgb-weights", str(assets["flow"]), "--flow-weights",
           str(assets["flow"])]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Conv3d_1a_7x7.conv3d.weight" in err
    fake = tmp_path / "fake.mp4"
    fake.write_text("hello")
    assert main(["extract", str(fake), *base, *_weights(assets)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fake.mp4" in err
    assert main(["extract", str(assets["video"]), *base, "--rgb-weights", str(tmp_path / "none.pt"),
                 "--flow-weights", str(assets["flow"])]) == 1
    assert "none.pt" in capsys.readouterr().err
    assert main(["extract", str(assets["video"]), *base, "--flow-weights", str(assets["flow"])]) == 2
    assert "--rgb-weights" in capsys.readouterr().err
    assert not out.exists() or not list(out.glob("*.npy"))


def test_infer_video_end_to_end(assets: dict[str, Path], tmp_path: Path, capsys) -> None:
    out_json, out_csv, fig = tmp_path / "det.json", tmp_path / "det.csv", tmp_path / "det.png"
    feat_dir = tmp_path / "kept"
    assert main(["infer", "--ckpt", str(assets["ckpt2048"]), "--video", str(assets["video"]), *_weights(assets),
                 "--flow", "dis", "--top-k", "5", "--json", str(out_json), "--csv", str(out_csv), "--save-fig",
                 str(fig), "--feat-out", str(feat_dir), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "start_s" in printed and fig.stat().st_size > 0
    results = json.loads(out_json.read_text())["results"]["walk"]
    assert 1 <= len(results) <= 5
    assert all(0 <= r["segment"][0] <= r["segment"][1] <= 25 / 30 + 1e-6 for r in results)
    assert len(list(csv.reader(out_csv.open()))) == len(results) + 1
    assert np.load(feat_dir / "walk.npy").shape == (3, 2048)


def test_infer_video_refuses_a_checkpoint_of_other_streams(assets: dict[str, Path], capsys) -> None:
    assert main(["infer", "--ckpt", str(assets["ckpt1024"]), "--video", str(assets["video"]), *_weights(assets),
                 "--streams", "rgb+flow", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "expects input_dim 1024 but --streams rgb+flow gives 2048; use --streams rgb" in err
