"""``python -m bench {setup-official,all,train,infer,nms,eval,flops,parity,crops,extract,variants}``.

tadformer vs the official ActionFormer (``extract``: vs the I3D reference port; ``variants``: ActionFormer,
TriDet and TemporalMaxer side by side).

Every figure is measured side by side in one run (fresh subprocess per measurement, alternating
ours/official) and reported as a ratio ours/official. Results go to ``bench/results/`` (json) and are
printed as a markdown table for ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from bench import driver, parity

INFER_LENGTHS = (2304, 4608, 12534)


Plan = list[tuple[str, str, dict[str, Any], int, dict[str, Any]]]
FUSED = {"fused_ln": True}
BF16 = {"amp": "bf16"}  # opt-in mixed precision (our side only; the official code has no such path)


def _plan(what: str, rounds: int, long_rounds: int, repeats: int) -> Plan:
    """(name, task, args for both sides, rounds, extra args for our side) per comparison.

    ``rounds`` alternating rounds for the short measurements, ``long_rounds`` for the long ones
    (training step, inference at T >= 4608, evaluation), which dominate the wall time of a run.
    """
    plan: Plan = []
    if what in ("all", "train"):
        args = {"length": 2304, "repeats": repeats}
        plan.append(("train step (B=2, T=2304)", "train", args, long_rounds, {}))
        plan.append(("train step, bf16 autocast (opt-in)", "train", args, long_rounds, BF16))
        if what == "train":
            plan.append(("train step, fused LN (opt-in)", "train", args, long_rounds, FUSED))
    if what in ("all", "infer"):
        for length in INFER_LENGTHS:
            short = length == INFER_LENGTHS[0]
            args = {"length": length, "repeats": repeats if short else 1}
            plan.append((f"inference T={length}", "infer", args, rounds if short else long_rounds, {}))
            plan.append((f"inference T={length}, bf16 autocast (opt-in)", "infer", args,
                         rounds if short else long_rounds, BF16))
            if short:
                plan.append((f"inference T={length}, fused LN (opt-in)", "infer", args, rounds, FUSED))
    if what in ("all", "nms"):
        plan.append(("decode + soft-NMS per video", "nms", {"videos": 6, "repeats": 3}, rounds, {}))
    if what in ("all", "eval"):
        plan.append(("evaluation 213 x 200", "eval", {"repeats": 1}, long_rounds, {}))
    if what in ("all", "eval", "eval-anet"):
        plan.append(("evaluation ActivityNet-sized 4926 x 100, 10 tIoU", "eval", {"repeats": 1, "size": "anet"},
                     long_rounds, {}))
    return plan


def _fmt_time(sec: float) -> str:
    return f"{sec * 1e3:.1f} ms" if sec < 1 else f"{sec:.2f} s"


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Command: `{results['command']}`  ", f"Machine: {results['machine']}", "",
             "| measurement | ours | official | ratio ours/official | peak MiB ours | peak MiB official "
             "| peak ratio |", "|---|---|---|---|---|---|---|"]
    for row in results["comparisons"]:
        t, p = row["times"], row.get("peak_mb")
        peak = (f"{p['ours']:.0f} | {p['official']:.0f} | {p['ratio']:.2f}" if p else "- | - | -")
        lines.append(f"| {row['name']} | {_fmt_time(t['ours'])} | {_fmt_time(t['official'])} | "
                     f"**{t['ratio']:.2g}** | {peak} |")
    fl = results.get("flops")
    if fl:
        bf16_peak = fl.get("matmul_bf16_gflops")
        lines += ["", f"Matmul peak (2048x2048, same run): float32 {fl['matmul_gflops']:.1f} GFLOP/s"
                  + (f", bfloat16 {bf16_peak:.1f} GFLOP/s" if bf16_peak else ""), "",
                  "| T | GFLOP per video | achieved GFLOP/s ours | official | % of sgemm peak ours "
                  "| ours bf16 (opt-in) | % of bf16 GEMM peak |", "|---|---|---|---|---|---|---|"]
        by_name = {r["name"]: r for r in results["comparisons"]}
        for length, flops in fl["flops"].items():
            row = by_name.get(f"inference T={length}")
            if row is None:
                lines.append(f"| {length} | {flops / 1e9:.1f} | - | - | - | - | - |")
                continue
            ours, off = flops / row["times"]["ours"] / 1e9, flops / row["times"]["official"] / 1e9
            bf = by_name.get(f"inference T={length}, bf16 autocast (opt-in)")
            bf_rate = flops / bf["times"]["ours"] / 1e9 if bf else None
            bf_cells = (f"{bf_rate:.1f} | {100 * bf_rate / bf16_peak:.0f}%" if bf_rate and bf16_peak else "- | -")
            lines.append(f"| {length} | {flops / 1e9:.1f} | {ours:.1f} | {off:.1f} | "
                         f"{100 * ours / fl['matmul_gflops']:.0f}% | {bf_cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["setup-official", "all", "train", "infer", "nms", "eval", "eval-anet", "flops",
                                                "parity", "crops", "extract", "variants"])
    parser.add_argument("--rounds", type=int, default=2, help="alternating subprocess rounds per side")
    parser.add_argument("--long-rounds", type=int, default=1,
                        help="rounds for the long measurements (train step, T >= 4608, evaluation)")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats inside each subprocess")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5],
                        help="parity: training seeds (crops: the first one)")
    parser.add_argument("--draws", type=int, default=200, help="crops: passes over the training videos per side")
    parser.add_argument("--frames", type=int, default=180, help="extract: frames of the synthetic video")
    parser.add_argument("--sides", nargs="+", default=["ours", "official"], choices=parity.SIDES,
                        help="parity: which implementations to train (ours-bf16: our opt-in --amp bf16 path)")
    args = parser.parse_args(argv)
    if args.what == "setup-official":
        driver.setup_official()
        return
    if args.what == "parity":
        parity.main(args.seeds, args.threads, tuple(args.sides))
        return
    if args.what == "variants":
        from bench import variants

        variants.main(args.seeds[:3] if args.seeds == [0, 1, 2, 3, 4, 5] else args.seeds, args.threads,
                      args.rounds, "python -m bench " + " ".join(map(shlex.quote, argv or sys.argv[1:])))
        return
    if args.what == "extract":
        from bench import extract

        extract.main(args.frames, args.threads, args.rounds,
                     "python -m bench " + " ".join(map(shlex.quote, argv or sys.argv[1:])))
        return
    if args.what == "crops":
        from bench import crops

        crops.main(args.seeds[0], args.draws)
        return
    results: dict[str, Any] = {"command": "python -m bench " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
                               "machine": driver.machine_info(), "comparisons": []}
    for name, task, targs, rounds, extra in _plan(args.what, args.rounds, args.long_rounds, args.repeats):
        print(f"{name} ...", flush=True)
        results["comparisons"].append(driver.compare(name, task, targs, rounds, args.threads, extra).summary())
    if args.what in ("all", "flops"):
        results["flops"] = driver.run_worker("ours", "flops", {"lengths": list(INFER_LENGTHS)}, args.threads)
    path = driver.save(results)
    print(markdown(results))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
