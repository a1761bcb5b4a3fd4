"""Training throughput of every model of the architecture comparison, next to the GPT.

    python benchmarks/models_throughput.py --json benchmarks/results/models_throughput.json

For each model at its comparison size (conf/architecture/<model>.yaml, about 100k
parameters) and two task sizes, the quickstart's (d = 5, 11 points) and Garg et al.'s
(d = 20, 41 points), batch 64: steps/s of the training update itself (`loop.make_update`: one
jitted call of `--steps` optimizer steps, batch sampled inside; best of `--repeats` calls),
steps/s × parameters relative to the GPT's at the same task size (1 = as fast per parameter;
0.5 = twice as slow), and XLA's memory analysis of that compiled update (arguments, outputs and
temporaries: the peak the program needs, free of the host process's other allocations).
Every model runs in this one process, one after another, on whatever devices JAX sees (pin
it to one core and one CPU device to compare with docs/architectures.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import jax
from flax import nnx

from icl_regression.cli import compose_train_or_fail
from icl_regression.models import build_model, count_params
from icl_regression.train import loop
from icl_regression.train.mesh import DataParallel

MODELS = ("gpt", "lstm", "gru", "mamba", "linear_attention", "hyena", "looped", "mambaformer")
SIZES = {"d=5, 11 points": ["task.d=5", "task.n_points=11"],
         "d=20, 41 points": ["task.d=20", "task.n_points=41"]}


def measure(model: str, size: str, steps: int, repeats: int) -> dict:
    overrides = ["preset=architectures_base_cpu", f"+architecture={model}",
                 "loss_target=labels", *SIZES[size]]
    cfg = compose_train_or_fail(overrides)
    parallel = DataParallel.create(cfg.mesh, batch_size=cfg.batch_size)
    built = build_model(cfg.model, cfg.task, cfg.seed)
    graphdef, params = nnx.split(built)
    tx, schedule = loop.make_optimizer(cfg)
    opt_state = tx.init(params)
    update = loop.make_update(cfg, graphdef, tx, schedule, parallel)
    start = time.perf_counter()
    compiled = update.lower(params, opt_state, 0, steps, cfg.task.n_points).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(params, opt_state, 0))  # warm-up
    calls = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, opt_state, 0))
        calls.append(time.perf_counter() - start)
    memory = compiled.memory_analysis()
    used = None if memory is None else (memory.argument_size_in_bytes
                                        + memory.output_size_in_bytes + memory.temp_size_in_bytes)
    return {"model": model, "size": size, "overrides": overrides,
            "n_params": count_params(built), "n_tokens": built.n_tokens(cfg.task.n_points),
            "batch_size": cfg.batch_size, "steps_per_call": steps, "compile_s": compile_s,
            "steps_per_s": steps / min(calls), "memory_mib": None if used is None else used / 2**20}


def accelerator_sizes() -> dict[str, int]:
    """Parameters of each model at its accelerator size (conf/architecture_paper/, d = 20,
    40 points): counted from the built models, not timed."""
    counts = {}
    for model in (*MODELS, "looped_curriculum"):
        cfg = compose_train_or_fail(["preset=architectures_base", f"+architecture_paper={model}"])
        counts[model] = count_params(build_model(cfg.model, cfg.task, cfg.seed))
    return counts


def relative_to_gpt(rows: list[dict]) -> None:
    """Adds steps/s × parameters over the GPT's at the same task size."""
    gpt = {r["size"]: r["steps_per_s"] * r["n_params"] for r in rows if r["model"] == "gpt"}
    for r in rows:
        if r["size"] in gpt:
            r["per_param_vs_gpt"] = r["steps_per_s"] * r["n_params"] / gpt[r["size"]]


def markdown(rows: list[dict]) -> str:
    lines = ["| model | task size | params | tokens | steps/s | per parameter vs GPT "
             "| compile s | update memory MiB |", "|" + " --- |" * 8]
    for r in rows:
        lines.append(f"| {r['model']} | {r['size']} | {r['n_params']:,} | {r['n_tokens']} "
                     f"| {r['steps_per_s']:.1f} | {r.get('per_param_vs_gpt', float('nan')):.2f} "
                     f"| {r['compile_s']:.1f} | {r['memory_mib']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (best is kept)")
    parser.add_argument("--json", type=Path, help="also write the rows and the machine here")
    args = parser.parse_args(argv)
    rows = []
    for size in SIZES:
        for model in args.models:
            rows.append(measure(model, size, args.steps, args.repeats))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    relative_to_gpt(rows)
    print(markdown(rows))
    if args.json:
        machine = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
                   "uptime": subprocess.run(["uptime"], capture_output=True,
                                            text=True).stdout.strip(),
                   "cpus_allowed": len(os.sched_getaffinity(0)),
                   "devices": [str(d) for d in jax.devices()]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "rows": rows,
                                         "accelerator_params": accelerator_sizes()}, indent=1))


if __name__ == "__main__":
    main()
