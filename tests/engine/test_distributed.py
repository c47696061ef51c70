"""Multi-process training on the CPU (gloo): 2 processes x batch 1 == 1 process x batch 2.

The two torchrun launches (a run stopped after 4 steps, then ``--resume``) are shared by the tests
below; together with the in-process reference runs the file takes about half a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tadformer.config import load_config
from tadformer.engine import distributed as D
from tadformer.engine.checkpoint import load_checkpoint
from tadformer.engine.train import FitOptions, fit, scaled_config

# 6 training videos, 1 + 1 epochs: 3 steps per epoch with a global batch of 2; no drop-path, since
# its random draws cannot be shared between 1 and 2 processes. The learning rate is small because
# the attention key biases have a zero gradient up to rounding noise (softmax ignores a shift of all
# keys), which AdamW turns into +-lr steps whose signs differ between 1 and 2 processes.
RECIPE = ("model.embd_dim=16", "model.fpn_dim=16", "model.head_dim=16", "dataset.max_seq_len=576",
          "opt.epochs=1", "opt.warmup_epochs=1", "opt.learning_rate=0.0001", "loader.num_workers=0",
          "train_cfg.droppath=0.0")
STOP_AT = 4  # mid-epoch 1: exercises the resume of a partly consumed epoch

# Installed in the torchrun workers through PYTHONPATH: logs every file-system write under ROOT.
AUDIT_HOOK = textwrap.dedent('''
    import atexit, os, sys
    _root = os.environ["TADF_AUDIT_ROOT"]
    _seen = []
    def _hook(event, args):
        if event == "open":
            path, mode, flags = args
            if not ((isinstance(mode, str) and any(c in mode for c in "wax+"))
                    or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))):
                return
        elif event not in ("os.rename", "os.remove", "os.mkdir", "os.rmdir"):
            return
        path = args[1] if event == "os.rename" else args[0]  # a rename is logged by its target
        path = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
        if path.startswith(_root):
            _seen.append(event + " " + path)
    def _dump():
        with open(os.path.join(os.environ["TADF_AUDIT_LOGS"], "rank%s.txt" % os.environ.get("RANK", "x")), "w") as f:
            f.write("\\n".join(_seen))
    sys.addaudithook(_hook)
    atexit.register(_dump)
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(cli_args: list[str], out: Path, audit: Path) -> None:
    """``torchrun --nproc_per_node=2 -m tadformer CLI_ARGS`` on the CPU, auditing writes under ``out``."""
    hook_dir = audit / "hook"
    hook_dir.mkdir(parents=True, exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    logs = audit / f"logs{len(list(audit.glob('logs*')))}"
    logs.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", TADF_AUDIT_ROOT=str(out), TADF_AUDIT_LOGS=str(logs),
               PYTHONPATH=os.pathsep.join([str(hook_dir), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "tadformer", *cli_args, "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _train_ddp(config: Path, out: Path, audit: Path, *extra: str) -> None:
    recipe = [a for o in (*RECIPE, "loader.batch_size=1") for a in ("--set", o)]
    _torchrun(["train", str(config), "--out", str(out), *recipe, *extra], out, audit)


def _log(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tiny_synth, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two processes with batch 1 (stopped at step 4, then resumed), and one process with batch 2."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ddp")
    ddp, audit = root / "ddp", root / "audit"
    _train_ddp(tiny_synth.config_file, ddp, audit, "--max-steps", str(STOP_AT))
    shutil.copy(ddp / "checkpoints" / "last.pth.tar", root / "ddp_step4.pth.tar")
    _train_ddp(tiny_synth.config_file, ddp, audit, "--resume")
    cfg = load_config(tiny_synth.config_file, [*RECIPE, "loader.batch_size=2"])
    fit(cfg, root / "single", FitOptions(device="cpu", progress=False))
    fit(cfg, root / "single4", FitOptions(device="cpu", progress=False, max_steps=STOP_AT))
    return {"ddp": ddp, "audit": audit, "single": root / "single", "ddp4": root / "ddp_step4.pth.tar",
            "single4": root / "single4" / "checkpoints" / "last.pth.tar", "cfg_file": tiny_synth.config_file}


def _assert_same_weights(a: dict, b: dict) -> None:
    for key in ("state_dict", "state_dict_ema"):
        assert list(a[key]) == list(b[key])
        for name, value in a[key].items():
            torch.testing.assert_close(b[key][name], value, atol=1e-5, rtol=0, msg=f"{key}/{name}")
    torch.testing.assert_close(b["loss_normalizer"]["value"], a["loss_normalizer"]["value"], rtol=1e-12, atol=0)


def test_two_processes_equal_one_process_with_doubled_batch(runs: dict[str, Path]) -> None:
    single, ddp = _log(runs["single"]), _log(runs["ddp"])
    assert [r["step"] for r in ddp] == [r["step"] for r in single] == list(range(1, 7))
    for s, d in zip(single, ddp):
        assert d["num_pos"] == s["num_pos"] and d["epoch"] == s["epoch"]
        for key in ("cls_loss", "reg_loss", "final_loss", "grad_norm"):
            assert d[key] == pytest.approx(s[key], rel=1e-5), (d["step"], key)
        assert d["loss_normalizer"] == pytest.approx(s["loss_normalizer"], rel=1e-12)
        assert d["lr"] == pytest.approx(s["lr"], rel=1e-9)
    _assert_same_weights(load_checkpoint(runs["single4"]), load_checkpoint(runs["ddp4"]))
    _assert_same_weights(load_checkpoint(runs["single"] / "checkpoints" / "epoch_002.pth.tar"),
                         load_checkpoint(runs["ddp"] / "checkpoints" / "epoch_002.pth.tar"))
    setup = json.loads((runs["ddp"] / "train_setup.json").read_text())
    assert (setup["world_size"], setup["global_batch_size"], setup["backend"]) == (2, 2, "gloo")
    # the recorded order merges the processes' slices into the global batches (and survives the resume)
    assert json.loads((runs["ddp"] / "batch_order.json").read_text()) == json.loads(
        (runs["single"] / "batch_order.json").read_text())


def test_resume_under_ddp(runs: dict[str, Path]) -> None:
    stopped = load_checkpoint(runs["ddp4"])
    assert stopped["extra"]["global_step"] == STOP_AT and stopped["extra"]["iter_in_epoch"] == 1
    assert stopped["extra"]["world_size"] == 2 and len(stopped["extra"]["rng_states_by_rank"]) == 2
    # the resumed run's log holds every step exactly once; its weights equal the 1-process run's
    # (checked above): the stop/resume changed nothing
    assert [r["step"] for r in _log(runs["ddp"])] == list(range(1, 7))


def test_resume_with_another_process_count_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    shutil.copytree(runs["ddp"], tmp_path / "run")
    cfg = load_config(runs["cfg_file"], [*RECIPE, "loader.batch_size=1"])
    with pytest.raises(ValueError, match="written by a run with 2 process"):
        fit(cfg, tmp_path / "run", FitOptions(device="cpu", progress=False, resume=True))


def test_only_rank0_writes(runs: dict[str, Path]) -> None:
    for logs in sorted(runs["audit"].glob("logs*")):
        rank0 = (logs / "rank0.txt").read_text().splitlines()
        rank1 = (logs / "rank1.txt").read_text().splitlines()
        assert rank1 == [], rank1[:5]
        assert any(e.startswith("os.rename") and e.endswith("last.pth.tar") for e in rank0), rank0
        assert any(e.startswith("open") and e.endswith("train_log.jsonl") for e in rank0), rank0
    assert sorted(p.name for p in (runs["ddp"] / "checkpoints").iterdir()) == ["epoch_002.pth.tar", "last.pth.tar"]


@pytest.mark.slow
def test_eval_under_torchrun_equals_single_process(runs: dict[str, Path], tmp_path: Path) -> None:
    from tadformer.cli import main
    from tadformer.engine.evaluate import RawOutputs

    _torchrun(["eval", "--ckpt", str(runs["ddp"]), "--out", str(tmp_path / "ddp")], tmp_path / "ddp",
              tmp_path / "audit")
    assert main(["eval", "--ckpt", str(runs["ddp"]), "--out", str(tmp_path / "one"), "--device", "cpu",
                 "--no-progress"]) == 0
    two = RawOutputs.load(tmp_path / "ddp" / "raw_outputs.pt")
    one = RawOutputs.load(tmp_path / "one" / "raw_outputs.pt")
    assert [v.meta.video_id for v in two.videos] == [v.meta.video_id for v in one.videos]
    assert len(one.videos) == 3  # 3 test videos: 2 on rank 0, 1 on rank 1
    for a, b in zip(one.videos, two.videos):
        for x, y in zip(a.cls_logits + a.offsets, b.cls_logits + b.offsets):
            torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-5)
    m1, m2 = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "ddp"))
    assert m2["average_mAP"] == pytest.approx(m1["average_mAP"], abs=1e-6)
    assert (tmp_path / "audit" / "logs0" / "rank1.txt").read_text() == ""


def test_accumulation_equals_larger_batch(tiny_synth, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = load_config(tiny_synth.config_file, [*RECIPE, "loader.batch_size=2"])
    fit(cfg, tmp_path / "b2", FitOptions(device="cpu", progress=False, max_steps=4))
    fit(replace(cfg, loader=replace(cfg.loader, batch_size=1, accum_steps=2)), tmp_path / "b1k2",
        FitOptions(device="cpu", progress=False, max_steps=4))
    for a, b in zip(_log(tmp_path / "b2"), _log(tmp_path / "b1k2"), strict=True):
        assert a["num_pos"] == b["num_pos"]
        for key in ("final_loss", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5)
        assert b["loss_normalizer"] == pytest.approx(a["loss_normalizer"], rel=1e-12)
    _assert_same_weights(load_checkpoint(tmp_path / "b2" / "checkpoints" / "last.pth.tar"),
                         load_checkpoint(tmp_path / "b1k2" / "checkpoints" / "last.pth.tar"))
    b2, b1k2 = (json.loads((tmp_path / r / "batch_order.json").read_text()) for r in ("b2", "b1k2"))
    assert b1k2["steps"] == b2["steps"] and b1k2["crop_windows"] == b2["crop_windows"]
    assert b1k2["step_batch_size"] == 2
    # replaying the accumulated run's order with batch 2 in one step gives its weights
    fit(cfg, tmp_path / "replay", FitOptions(device="cpu", progress=False, max_steps=4,
                                             batch_order=tmp_path / "b1k2" / "batch_order.json"))
    _assert_same_weights(load_checkpoint(tmp_path / "b2" / "checkpoints" / "last.pth.tar"),
                         load_checkpoint(tmp_path / "replay" / "checkpoints" / "last.pth.tar"))


def test_lr_scaling_rule(tiny_cfg) -> None:
    cfg = replace(tiny_cfg, loader=replace(tiny_cfg.loader, batch_size=2, accum_steps=2))
    scaled, setup = scaled_config(cfg, FitOptions(scale_lr="linear"), world_size=4)
    assert setup["global_batch_size"] == 16 and setup["lr_factor"] == 8.0
    assert scaled.opt.learning_rate == pytest.approx(8 * tiny_cfg.opt.learning_rate)
    same, _ = scaled_config(cfg, FitOptions(), world_size=4)  # default: the recipe's rate, unchanged
    assert same.opt.learning_rate == tiny_cfg.opt.learning_rate
    assert D.lr_scale_factor("sqrt", 8, 2) == 2.0
    with pytest.raises(ValueError, match="unknown learning-rate scaling rule 'cubic'"):
        D.lr_scale_factor("cubic", 8, 2)


def test_batch_slices_and_shards() -> None:
    global_batch = [7, 3, 5, 1]
    assert [D.rank_slice(global_batch, r, 2) for r in range(2)] == [[7, 3], [5, 1]]
    with pytest.raises(ValueError, match="3 items does not split over 2"):
        D.rank_slice([1, 2, 3], 0, 2)
    shards = [D.shard_indices(7, r, 3) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert D.map_sharded(lambda i: i * i, 4, None) == [0, 1, 4, 9]


def test_single_process_sets_up_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert D.init_from_env("cpu") is None and not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5 is outside 0..1"):
        D.init_from_env("cpu")
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x' is not an integer"):
        D.init_from_env("cpu")
