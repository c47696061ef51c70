"""Train + test the official implementation on a tadformer synth dataset (run in ``bench/.venv-official``).

Follows the official ``train.py`` / ``eval.py`` with the package's own pieces only: ``load_config``,
``fix_random_seed``, ``make_dataset`` / ``make_data_loader``, ``make_meta_arch``, ``make_optimizer`` /
``make_scheduler``, ``ModelEma``, ``train_one_epoch`` for every epoch (warmup included) and
``valid_one_epoch`` of the EMA model (``opt.ema_decay``, default 0.999, like ``ModelEma``) and of the regular
model, whose raw detections are written to ``OUT.pkl`` and ``OUT_regular.pkl`` for our evaluator.
The model is not wrapped in ``nn.DataParallel`` (CPU).

Usage: ``python -m bench.official_train CONFIG SEED OUT.pkl JSON_OVERRIDES``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from typing import Any


def run(config_path: str, seed: int, out_file: str, overrides: dict[str, Any]) -> float:
    import actionformer
    import torch

    cfg: dict[str, Any] = actionformer.load_config(config_path)
    for key, value in overrides.items():
        section, name = key.split(".")
        cfg[section][name] = value
    cfg["init_rand_seed"] = seed
    for name in ("input_dim", "num_classes", "max_seq_len"):
        cfg["model"][name] = cfg["dataset"][name]
    start = time.perf_counter()
    rng_generator = actionformer.fix_random_seed(cfg["init_rand_seed"], include_cuda=True)
    train_dataset = actionformer.make_dataset(cfg["dataset_name"], True, cfg["train_split"], **cfg["dataset"])
    cfg["model"]["train_cfg"]["head_empty_cls"] = train_dataset.get_attributes()["empty_label_ids"]
    train_loader = actionformer.make_data_loader(train_dataset, True, rng_generator, **cfg["loader"])
    model = actionformer.make_meta_arch(cfg["model_name"], **cfg["model"])
    optimizer = actionformer.make_optimizer(model, cfg["opt"])
    scheduler = actionformer.make_scheduler(optimizer, cfg["opt"], len(train_loader))
    model_ema = actionformer.ModelEma(model, decay=float(cfg["opt"].get("ema_decay", 0.999)))
    max_epochs = cfg["opt"].get("early_stop_epochs", cfg["opt"]["epochs"] + cfg["opt"]["warmup_epochs"])
    sink = io.StringIO()
    for epoch in range(max_epochs):
        with contextlib.redirect_stdout(sink):
            actionformer.train_one_epoch(train_loader, model, optimizer, scheduler, epoch, model_ema=model_ema,
                                         clip_grad_l2norm=cfg["train_cfg"]["clip_grad_l2norm"], print_freq=10**9)
        print(f"epoch {epoch + 1}/{max_epochs} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    val_dataset = actionformer.make_dataset(cfg["dataset_name"], False, cfg["val_split"], **cfg["dataset"])
    val_loader = actionformer.make_data_loader(val_dataset, False, None, 1, cfg["loader"]["num_workers"])
    regular_file = out_file.replace(".pkl", "_regular.pkl")
    with contextlib.redirect_stdout(sink), torch.no_grad():
        actionformer.valid_one_epoch(val_loader, model_ema.module, -1, output_file=out_file, print_freq=10**9)
        actionformer.valid_one_epoch(val_loader, model, -1, output_file=regular_file, print_freq=10**9)
    return time.perf_counter() - start


def main() -> None:
    import torch

    torch.set_num_threads(2)
    seconds = run(sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]))
    print(f"RESULT {json.dumps({'seconds': seconds})}", flush=True)


if __name__ == "__main__":
    main()
