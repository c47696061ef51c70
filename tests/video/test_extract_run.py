"""Folder runs of ``extract``: outputs, sidecars, skipping, refusing partial outputs, Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tadformer.video.decode import write_test_video
from tadformer.video.extract import ExtractSettings
from tadformer.video.extract_run import ExtractOutputError, check_output_dir, collect_videos, extract_many

RGB = ExtractSettings(streams=("rgb",))
SHA = {"rgb": "a" * 64}


def _net(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(1, 3, 4))  # [B, 16]


@pytest.fixture()
def videos(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "videos"
    folder.mkdir()
    out = []
    for i, n in enumerate((24, 20)):
        frames = np.full((n, 48, 64, 3), 40 + 50 * i, dtype=np.uint8)
        out.append(folder / f"clip{i}.mkv")
        write_test_video(out[-1], frames, fps=25)
    (folder / "notes.txt").write_text("not a video")
    return out


def _run(videos: list[Path], out: Path, **kw) -> list:
    return extract_many(videos, out, {"rgb": _net}, kw.pop("settings", RGB), weights_sha256=kw.pop("sha", SHA),
                        log=lambda *_: None, **kw)


def test_writes_features_and_sidecar_then_skips(videos: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "feat"
    found = collect_videos([videos[0].parent])
    assert found == videos  # the .txt file is not taken
    first = _run(found, out)
    assert [o.status for o in first] == ["written", "written"]
    feats = np.load(out / "clip0.npy")
    assert feats.dtype == np.float32 and feats.shape == ((24 - 16) // 4 + 1, 16)
    meta = json.loads((out / "clip0.json").read_text())
    assert meta["fps"] == 25 and meta["num_frames"] == 24 and meta["num_features"] == 3
    assert meta["stride"] == 4 and meta["clip_len"] == 16 and meta["streams"] == ["rgb"]
    assert meta["weights_sha256"] == SHA and meta["crop"] == "center" and meta["first_frame"] == 0
    assert "tadformer_version" in meta and meta["flow_method"] is None
    mtime = (out / "clip0.npy").stat().st_mtime_ns
    again = _run(found, out)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert (out / "clip0.npy").stat().st_mtime_ns == mtime


def test_partial_or_foreign_outputs_are_refused_not_overwritten(videos: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "feat"
    out.mkdir()
    np.save(out / "clip1.npy", np.ones((2, 2), np.float32))  # no sidecar: partial or someone else's
    before = (out / "clip1.npy").read_bytes()
    with pytest.raises(ExtractOutputError, match=r"clip1.npy exists without its sidecar clip1.json.*--overwrite"):
        _run(videos, out)
    assert (out / "clip1.npy").read_bytes() == before
    assert not (out / "clip0.npy").exists()  # checked before any work started
    _run(videos, out, overwrite=True)
    assert np.load(out / "clip1.npy").shape == (2, 16)


def test_outputs_of_other_settings_or_truncated_are_refused(videos: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "feat"
    _run(videos, out)
    with pytest.raises(ExtractOutputError, match=r"clip0.npy was made with other settings \(crop 'center' vs 'ten'"):
        _run(videos, out, settings=ExtractSettings(streams=("rgb",), crop="ten"))
    with pytest.raises(ExtractOutputError, match="weights_sha256"):
        _run(videos, out, sha={"rgb": "b" * 64})
    (out / "clip1.npy").write_bytes((out / "clip1.npy").read_bytes()[:100])
    with pytest.raises(ExtractOutputError, match=r"clip1.npy is incomplete \(shape None, sidecar says \[2, 16\]\)"):
        _run(videos, out)


def test_ctrl_c_keeps_finished_videos_and_leaves_nothing_partial(videos: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "feat"
    calls = {"n": 0}

    def net(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > 1:  # the first video needs one batch; the second one is interrupted
            raise KeyboardInterrupt
        return _net(x)

    with pytest.raises(KeyboardInterrupt):
        extract_many(videos, out, {"rgb": net}, RGB, weights_sha256=SHA, log=lambda *_: None)
    assert sorted(p.name for p in out.iterdir()) == ["clip0.json", "clip0.npy"]
    resumed = _run(videos, out)
    assert [o.status for o in resumed] == ["skipped", "written"]


def test_unwritable_output_and_bad_inputs(videos: list[Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=r"cannot write features to .*file/feat"):
        check_output_dir(blocker / "feat")
    with pytest.raises(FileNotFoundError, match="nothing.mp4: no such video file or folder"):
        collect_videos([tmp_path / "nothing.mp4"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no video file"):
        collect_videos([empty])
    other = tmp_path / "other"
    other.mkdir()
    (other / "clip0.mp4").write_bytes(videos[0].read_bytes())
    with pytest.raises(ValueError, match="same features clip0.npy"):
        collect_videos([videos[0], other / "clip0.mp4"])
