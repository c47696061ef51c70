"""Nothing is lost: a real training subprocess is SIGKILLed at random moments (one of them while a
checkpoint is being written), stopped with SIGTERM and SIGINT, and resumed each time; the final
weights equal those of an uninterrupted run exactly. A full disk while saving keeps the previous
checkpoint and reports the error."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from rel_helpers import one_thread  # noqa: F401  (autouse)
from rel_helpers import assert_error, run_cli, train_args

import tadformer.engine.checkpoint as checkpoint_mod
from tadformer.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals and /proc/self/fd")

EPOCHS = "opt.epochs=4"  # 4 + 1 warmup epochs x 3 steps = 15 optimiser steps
TOTAL_STEPS = 15
FINAL = "epoch_005.pth.tar"
CHILD = Path(__file__).with_name("slow_save_child.py")
TIMEOUT_SEC = 180.0


@pytest.fixture(scope="module")
def reference(tiny_synth, tmp_path_factory) -> Path:
    """The uninterrupted run (same flags, in-process, single-threaded like the subprocesses)."""
    run = tmp_path_factory.mktemp("reference")
    torch.set_num_threads(1)
    from tadformer.cli import main

    assert main(train_args(tiny_synth, run, EPOCHS)) == 0
    return run


def _records(run: Path) -> list[dict[str, Any]]:
    """Training log records without the wall-clock field."""
    lines = (run / "train_log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k != "time_sec"} for ln in lines]


def _assert_same_weights(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["epoch"] == cb["epoch"]
    for key in ("state_dict", "state_dict_ema"):
        assert ca[key].keys() == cb[key].keys()
        for name, value in ca[key].items():
            torch.testing.assert_close(cb[key][name], value, atol=0, rtol=0, msg=f"{key}/{name}")
    assert ca["loss_normalizer"] == cb["loss_normalizer"]


class Child:
    """One ``train`` subprocess writing its output to files (no pipe can fill up)."""

    def __init__(self, tiny_synth: Any, run: Path, tag: str, resume: bool, slow_save: bool = False) -> None:
        cmd = [sys.executable, str(CHILD)] if slow_save else [sys.executable, "-m", "tadformer"]
        args = train_args(tiny_synth, run, EPOCHS, extra=["--resume"] if resume else [])
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env.pop("TADFORMER_DEBUG", None)
        self.out_path, self.err_path = run.parent / f"{tag}.out", run.parent / f"{tag}.err"
        self.started_ns = time.time_ns()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*cmd, *args], stdout=out, stderr=err, env=env)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_SEC
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"training exited ({self.proc.returncode}) before {what}:\n{self.stderr}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.005)

    def signal(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=TIMEOUT_SEC)


def _new_steps_logged(run: Path, child: Child, at_least: int) -> Callable[[], bool]:
    """True once the child (not an earlier process) has logged optimiser step ``at_least``."""
    log = run / "train_log.jsonl"

    def check() -> bool:
        try:
            if log.stat().st_mtime_ns <= child.started_ns:
                return False
            lines = log.read_text().splitlines()
        except FileNotFoundError:
            return False
        return bool(lines) and lines[-1].endswith("}") and json.loads(lines[-1])["step"] >= at_least

    return check


def _global_step(last: Path) -> int:
    return int(load_checkpoint(last)["extra"]["global_step"])


def test_kill_term_int_and_resume_equal_an_uninterrupted_run(reference: Path, tiny_synth, tmp_path: Path) -> None:
    rng = random.Random(20240611)
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth.tar"

    # 1. SIGKILL at a random moment of epoch 2 (last.pth.tar of epoch 1 exists by then)
    child = Child(tiny_synth, run, "kill_random", resume=False)
    child.wait_for(_new_steps_logged(run, child, rng.randint(4, 5)), "step 4-5")
    time.sleep(rng.uniform(0.0, 0.3))
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    assert load_checkpoint(last)["epoch"] in (1, 2)
    step = _global_step(last)

    # 2. SIGKILL while the next checkpoint is being written: last.pth.tar is untouched and loads
    before = last.read_bytes()
    child = Child(tiny_synth, run, "kill_saving", resume=True, slow_save=True)
    tmp_files = lambda: list(last.parent.glob(".last.pth.tar.*.tmp"))  # noqa: E731
    child.wait_for(lambda: bool(tmp_files()), "a checkpoint temp file")
    time.sleep(rng.uniform(0.0, 0.2))
    assert child.signal(signal.SIGKILL) == -signal.SIGKILL
    assert tmp_files(), "the killed save should have left its temp file, not touched last.pth.tar"
    assert last.read_bytes() == before
    assert _global_step(last) == step

    # 3. SIGTERM, then 4. SIGINT: a resumable checkpoint at the step reached, exit code 130
    for signum in (signal.SIGTERM, signal.SIGINT):
        child = Child(tiny_synth, run, f"stop_{signum}", resume=True)
        child.wait_for(_new_steps_logged(run, child, step + 1), f"a step after {step}")
        assert child.signal(signum) == 130, child.stderr
        assert f"stopped by signal {int(signum)}" in child.stderr and "--resume" in child.stderr
        assert "Traceback" not in child.stderr
        stopped = load_checkpoint(last)
        assert stopped["extra"]["global_step"] > step
        step = int(stopped["extra"]["global_step"])
        assert len(_records(run)) == step

    # 5. resume to the end: same weights, EMA, loss normaliser and log as the uninterrupted run
    child = Child(tiny_synth, run, "finish", resume=True)
    assert child.proc.wait(timeout=TIMEOUT_SEC) == 0, child.stderr
    _assert_same_weights(reference / "checkpoints" / FINAL, run / "checkpoints" / FINAL)
    assert _records(run) == _records(reference)
    assert len(_records(run)) == TOTAL_STEPS


def test_full_disk_keeps_the_previous_checkpoint(tiny_synth, tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth.tar"
    real_save = torch.save
    calls = {"n": 0}

    def save_until_disk_full(obj: Any, handle: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: write part of it, then the disk is full
            handle.write(b"PK\x03\x04 partial checkpoint bytes")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(checkpoint_mod.torch, "save", save_until_disk_full)
    code, err = run_cli(train_args(tiny_synth, run), capsys)
    assert_error(code, err, 1, "could not write checkpoint", str(last), "No space left on device", "disk is full")
    assert calls["n"] == 2
    assert load_checkpoint(last)["epoch"] == 1  # the previous checkpoint, intact
    assert not list(last.parent.glob("*.tmp")) and not list(last.parent.glob(".*.tmp"))

    monkeypatch.setattr(checkpoint_mod.torch, "save", real_save)  # space was freed: resume works
    code, err = run_cli(train_args(tiny_synth, run, extra=["--resume", "--max-steps", "4"]), capsys)
    assert code == 0, err
    assert load_checkpoint(last)["extra"]["global_step"] == 4
