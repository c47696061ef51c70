"""``python -m bench extract``: speed of ``tadformer extract`` on this CPU, and the I3D network side by side
with the reference port (piergiaj/pytorch-i3d) running the same weights.

1. A synthetic 320x180, 30 fps video with moving shapes (``--frames`` frames) is extracted end to end
   (decode -> resize/scale -> flow -> I3D, batch 4, centre crop) with seeded synthetic weights:
   RGB only, two-stream with DIS flow, two-stream with TV-L1 flow. Reported: frames/s and the split
   into decode / preprocess / flow / network (``ExtractTiming``).
2. The network alone: batches of 16x224x224 clips through our ``InceptionI3d.clip_features`` and through
   the reference ``InceptionI3d.extract_features``, alternating ``--rounds`` times in one process with
   the same weights and input; the outputs are compared too.

The reference file is third-party code and is never committed: put its ``pytorch_i3d.py`` (Apache-2.0,
https://github.com/piergiaj/pytorch-i3d) at ``bench/.reference/pytorch_i3d.py``; without it step 2
reports our side only.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.driver import RESULTS, ROOT

REFERENCE = ROOT / "bench" / ".reference" / "pytorch_i3d.py"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            info["cpu"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            info["flags"] = [f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma"))]
            break
    return info


def make_video(path: Path, frames: int) -> Path:
    from tadformer.video.decode import write_test_video

    rng = np.random.default_rng(0)
    background = rng.integers(0, 60, size=(180, 320, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    for k in range(frames):
        x, y = (7 * k) % 260, 40 + int(30 * np.sin(k / 9))
        video[k, y:y + 50, x:x + 60] = (230, 120, 40)
        video[k, 120:170, (300 - 5 * k) % 280:(300 - 5 * k) % 280 + 30] = (40, 200, 90)
    write_test_video(path, video, fps=30)
    return path


def _synthetic_backbones(streams: tuple[str, ...]) -> dict[str, Any]:
    from tadformer.video.i3d import build_i3d
    from tadformer.video.i3d_synthetic import GOLDEN_SEEDS, synthetic_i3d_state_dict

    nets = {}
    for s in streams:
        net = build_i3d(s)
        net.load_state_dict(synthetic_i3d_state_dict(net, GOLDEN_SEEDS[s]))
        nets[s] = net.eval().clip_features
    return nets


def extract_runs(video: Path) -> list[dict[str, Any]]:
    from tadformer.video.extract import ExtractSettings, extract_video

    rows = []
    for name, streams, flow in (("RGB only", ("rgb",), "tvl1"), ("two-stream, DIS flow", ("rgb", "flow"), "dis"),
                                ("two-stream, TV-L1 flow", ("rgb", "flow"), "tvl1")):
        nets = _synthetic_backbones(streams)
        t0 = time.perf_counter()
        res = extract_video(video, nets, ExtractSettings(streams=streams, flow_method=flow, batch_size=4))
        wall = time.perf_counter() - t0
        rows.append({"name": name, "frames": res.num_frames, "clips": int(res.features.shape[0]), "wall_sec": wall,
                     "frames_per_sec": res.num_frames / wall, **res.timing.as_dict()})
        print(f"{name}: {res.num_frames / wall:.2f} frames/s", flush=True)
    return rows


def _load_reference() -> Any:
    spec = importlib.util.spec_from_file_location("reference_pytorch_i3d", REFERENCE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def network_side_by_side(batch: int, rounds: int) -> dict[str, Any]:
    from tadformer.video.i3d import build_i3d
    from tadformer.video.i3d_synthetic import synthetic_i3d_state_dict

    ours = build_i3d("rgb")
    weights = synthetic_i3d_state_dict(ours, 1003)
    ours.load_state_dict(weights)
    ref = None
    if REFERENCE.is_file():
        ref = _load_reference().InceptionI3d(400, in_channels=3)
        ref.load_state_dict(weights, strict=True)
        ref.eval()
    x = torch.rand(batch, 3, 16, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    out: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        ours.clip_features(x[:1])  # warm-up both
        if ref is not None:
            ref.extract_features(x[:1])
        for _ in range(rounds):
            t0 = time.perf_counter()
            out["ours"] = ours.clip_features(x)
            times["ours"].append(time.perf_counter() - t0)
            if ref is not None:
                t0 = time.perf_counter()
                out["reference"] = ref.extract_features(x)[:, :, 0, 0, 0]
                times["reference"].append(time.perf_counter() - t0)
    result: dict[str, Any] = {"batch": batch, "rounds": rounds, "times_sec": times,
                              "ours_sec_per_clip": statistics.median(times["ours"]) / batch}
    if ref is not None:
        result["reference_sec_per_clip"] = statistics.median(times["reference"]) / batch
        result["ratio_ours_over_reference"] = result["ours_sec_per_clip"] / result["reference_sec_per_clip"]
        result["max_abs_diff"] = float((out["ours"] - out["reference"]).abs().max())
    return result


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [f"Command: `{res['command']}`  ",
             f"Machine: {m.get('cpu')}, torch {m['torch']}, {m['threads']} threads, capability "
             f"{m['cpu_capability']}, flags {' '.join(m.get('flags', []))}", "",
             "| run | frames | clips | frames/s | decode s | preprocess s | flow s | network s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["extract"]:
        lines.append(f"| {r['name']} | {r['frames']} | {r['clips']} | **{r['frames_per_sec']:.2f}** | "
                     f"{r['decode_sec']:.2f} | {r['preprocess_sec']:.2f} | {r['flow_sec']:.2f} | "
                     f"{r['network_sec']:.2f} |")
    n = res["network"]
    lines += ["", f"I3D network alone, batch {n['batch']} of 16x224x224 RGB clips, median of {n['rounds']} "
                  f"alternating rounds:", ""]
    if "reference_sec_per_clip" in n:
        lines.append(f"ours {n['ours_sec_per_clip']:.3f} s/clip, reference port {n['reference_sec_per_clip']:.3f} "
                     f"s/clip, ratio ours/reference **{n['ratio_ours_over_reference']:.2f}**, max |difference| "
                     f"{n['max_abs_diff']:.2e}")
    else:
        lines.append(f"ours {n['ours_sec_per_clip']:.3f} s/clip (reference not found at {REFERENCE})")
    return "\n".join(lines)


def main(frames: int, threads: int, rounds: int, command: str) -> None:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "bench.mkv", frames)
        res = {"command": command, "machine": machine(), "extract": extract_runs(video),
               "network": network_side_by_side(batch=4, rounds=rounds)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / time.strftime("extract-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(res, indent=1))
    print(markdown(res))
    print(f"\nresults: {path}")
