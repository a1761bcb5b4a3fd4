"""Training throughput: compile time, steps/s, tokens/s, FLOPs per step, achieved FLOP/s and its
ratio to the matmul peak measured in the same process, and peak memory.

    python benchmarks/train_throughput.py                    # quickstart, small, garg_linear
    python benchmarks/train_throughput.py preset=garg_linear model.dtype=bfloat16
    python benchmarks/train_throughput.py --json bench.json preset=quickstart batch_size=256
    python benchmarks/train_throughput.py --dtypes float32 bfloat16 --batch-sizes 64 512

Positional arguments are Hydra overrides of conf/train.yaml (one config); without any, the
reference cases below run. Bad overrides stop before any timing with one line and exit 2
(icl_regression.cli, as in every app). Timing uses the training code itself
(`loop.make_update`: one jitted call of `steps_per_call` optimizer steps, batch sampled
inside), on every visible device.

FLOPs per step come from XLA's cost analysis of a ONE-step update whose layer loop is unrolled:
XLA counts a loop body once, so the timed multi-step update cannot be analysed directly. The
analytic matmul count (forward ×3 for the backward pass) is printed beside it as a cross-check.
The peak is the best rate of back-to-back square matmuls (a few sizes, the model's compute
dtype), timed over about a second right before and after each training timing so that a shared,
noisy machine weighs on both alike; ratios are best training call over best matmul batch.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from icl_regression.cli import compose_train_or_fail, fail
from icl_regression.config import TrainConfig, validate_devices
from icl_regression.data import tokens
from icl_regression.models import build_model, count_params
from icl_regression.models.gpt import GPT
from icl_regression.train import loop
from icl_regression.train.mesh import DataParallel, split_host_cpu

CASES = {
    # y as the loss target, as in the earlier rows of the table (the quickstart's posterior-mean
    # target adds a per-batch least-squares pass, no model FLOPs; measured within the noise).
    "quickstart": ["preset=quickstart", "loss_target=labels"],
    "small (interleaved)": ["preset=quickstart", "model.encoding=interleaved",
                            "loss_target=labels"],
    "garg_linear": ["preset=garg_linear"],
}


def tokens_per_prompt(cfg: TrainConfig) -> int:
    return tokens.seq_len(cfg.model.encoding, cfg.task.n_points)


def analytic_flops(cfg: TrainConfig) -> float:
    """Matmul FLOPs of one optimizer step of the GPT: 2·m·n·k per matmul, forward ×3."""
    m, t = cfg.model, cfg.task
    rows = cfg.batch_size * tokens_per_prompt(cfg)  # tokens per step
    seq, width, hidden = tokens_per_prompt(cfg), m.d_model, m.mlp_ratio * m.d_model
    per_layer = 2 * rows * width * (3 * width + width + 2 * hidden)  # qkv, out, fc, proj
    per_layer += 2 * 2 * rows * seq * width  # q·k logits and weights·v
    ends = 2 * rows * (tokens.token_width(m.encoding, t.d) * width + width)  # read in / out
    return 3.0 * (m.n_layer * per_layer + ends)


def matmul_peak(dtype, platform: str, seconds: float = 1.0, repeats: int = 3) -> float:
    """Best FLOP/s of back-to-back square matmuls, over a few sizes (on a CPU a mid-sized one
    that fits the caches often beats the largest). Each timing lasts about `seconds`, like a
    timed training call, so that a shared machine's load weighs on both alike."""
    best = 0.0
    matmul = jax.jit(lambda a, b: a @ b)
    for n in (512, 1024, 2048) if platform == "cpu" else (4096, 8192):
        a = jnp.ones((n, n), dtype)
        matmul(a, a).block_until_ready()  # compile
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        count = max(1, round(seconds / (time.perf_counter() - start)))
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready([matmul(a, a) for _ in range(count)])
            best = max(best, count * 2 * n**3 / (time.perf_counter() - start))
    return best


def peak_memory_gib() -> tuple[float, str]:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**30, "device"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "host RSS"


class UnrolledGPT(GPT):
    """Benchmark-only: the GPT with its layer scan unrolled (one copy of the block per layer),
    so that XLA's cost analysis, which counts a loop body once, sees every layer."""

    def _layers(self, body, h, stacked):
        return jax.lax.scan(body, h, stacked, unroll=stacked["w_qkv"].shape[0])


def setup(cfg: TrainConfig, parallel: DataParallel, unroll_layers: bool = False):
    model = build_model(cfg.model, cfg.task, cfg.seed)
    if unroll_layers and type(model) is GPT:
        model.__class__ = UnrolledGPT  # same parameters, same math
    graphdef, params = nnx.split(model)
    tx, schedule = loop.make_optimizer(cfg)
    params = parallel.replicate(params)
    opt_state = parallel.replicate(tx.init(params))
    update = loop.make_update(cfg, graphdef, tx, schedule, parallel)
    return update, params, opt_state, count_params(model)


def xla_flops(cfg: TrainConfig, parallel: DataParallel) -> float:
    """FLOPs of one optimizer step (all devices) from XLA's cost analysis."""
    update, params, opt_state, _ = setup(cfg, parallel, unroll_layers=True)
    lowered = update.lower(params, opt_state, 0, 1, cfg.task.n_points)
    cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    # The analysis is of the per-device program after partitioning.
    return float(cost["flops"]) * parallel.n_devices


def benchmark(label: str, overrides: list[str], cfg: TrainConfig, steps_per_call: int | None,
              repeats: int, peak_s: float = 1.0) -> dict:
    parallel = DataParallel.create(cfg.mesh, batch_size=cfg.batch_size)
    validate_devices(cfg, parallel.n_devices)
    platform = jax.devices()[0].platform
    flops_xla, flops_analytic = xla_flops(cfg, parallel), analytic_flops(cfg)
    dtype = jnp.bfloat16 if cfg.model.dtype == "bfloat16" else jnp.float32
    update, params, opt_state, n_params = setup(cfg, parallel, unroll_layers=False)
    if steps_per_call is None:  # about two seconds a call, at most one log interval
        guess_s = flops_analytic / parallel.n_devices / (0.5 * matmul_peak(dtype, platform, 0.2, 1))
        steps_per_call = int(min(cfg.log_every, max(2, round(2.0 / guess_s))))

    wall, cpu = time.perf_counter(), time.process_time()
    compiled = update.lower(params, opt_state, 0, steps_per_call,
                            cfg.task.n_points).compile()
    compile_s, compile_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    jax.block_until_ready(compiled(params, opt_state, 0))  # warm-up
    peak = matmul_peak(dtype, platform, peak_s)
    calls = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, opt_state, 0))
        calls.append(time.perf_counter() - start)
    peak = max(peak, matmul_peak(dtype, platform, peak_s))
    steps_per_s = steps_per_call / min(calls)
    # Fake CPU devices share the host's cores (and its matmul peak): compare their total.
    shared = platform == "cpu" and jax.local_device_count() > 1
    per_device_flops = flops_xla * steps_per_s / (1 if shared else parallel.n_devices)
    memory, memory_kind = peak_memory_gib()
    return {
        "config": label, "overrides": overrides, "device": jax.devices()[0].device_kind,
        "platform": platform, "n_devices": parallel.n_devices, "n_params": n_params,
        "dtype": cfg.model.dtype, "batch_size": cfg.batch_size,
        "tokens_per_step": cfg.batch_size * tokens_per_prompt(cfg),
        "steps_per_call": steps_per_call, "repeats": repeats,
        "compile_s": compile_s, "compile_cpu_s": compile_cpu_s,
        "steps_per_s": steps_per_s, "steps_per_s_median": steps_per_call / sorted(calls)[
            len(calls) // 2],
        "tokens_per_s": steps_per_s * cfg.batch_size * tokens_per_prompt(cfg),
        "flops_per_step_xla": flops_xla, "flops_per_step_analytic": flops_analytic,
        "flops_per_s_per_device": per_device_flops, "matmul_peak_flops_per_s": peak,
        "fraction_of_peak": per_device_flops / peak,
        "peak_memory_gib": memory, "peak_memory_kind": memory_kind,
    }


def markdown(rows: list[dict]) -> str:
    head = ("| config | device | params | tokens/step | compile s (CPU s) | steps/s "
            "| tokens/s (per device) | GFLOP/step XLA (matmul) | achieved GFLOP/s per device "
            "| matmul peak GFLOP/s | % of peak | peak memory GiB |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        devices = f"{r['n_devices']}× {r['device']}" + (" bf16" if r["dtype"] == "bfloat16" else "")
        lines.append(
            f"| {r['config']} | {devices} | {r['n_params']:,} | {r['tokens_per_step']:,} "
            f"| {r['compile_s']:.1f} ({r['compile_cpu_s']:.1f}) | {r['steps_per_s']:.2f} "
            f"| {r['tokens_per_s']:,.0f} ({r['tokens_per_s'] / r['n_devices']:,.0f}) "
            f"| {r['flops_per_step_xla'] / 1e9:.2f} ({r['flops_per_step_analytic'] / 1e9:.2f}) "
            f"| {r['flops_per_s_per_device'] / 1e9:,.1f} "
            f"| {r['matmul_peak_flops_per_s'] / 1e9:,.1f} | {100 * r['fraction_of_peak']:.0f}% "
            f"| {r['peak_memory_gib']:.2f} ({r['peak_memory_kind']}) |")
    return "\n".join(lines)


def crossed(cases: dict, dtypes: list[str] | None, batch_sizes: list[int] | None) -> dict:
    """Every case once per (dtype, batch size) given; labels name the non-default ones."""
    out = {}
    for label, overrides in cases.items():
        for dtype in dtypes or [None]:
            for batch in batch_sizes or [None]:
                extra = ([f"model.dtype={dtype}"] if dtype else []) + (
                    [f"batch_size={batch}"] if batch else [])
                name = " ".join([label] + ([dtype] if dtype else []) + (
                    [f"b{batch}"] if batch else []))
                out[name] = overrides + extra
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default: the reference "
                        "cases " + ", ".join(CASES) + ")")
    parser.add_argument("--label", help="name of the config in the table")
    parser.add_argument("--steps-per-call", type=int, help="default: about 2 s of work")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (best is kept)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--peak-seconds", type=float, default=1.0,
                        help="length of each matmul-peak timing")
    parser.add_argument("--dtypes", nargs="+", help="cross every case with these compute "
                        "dtypes (float32, bfloat16)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="... and these batch sizes")
    args = parser.parse_args(argv)
    cases = ({args.label or " ".join(args.overrides): args.overrides} if args.overrides
             else CASES)
    for flag, value in (("--repeats", args.repeats), ("--steps-per-call", args.steps_per_call)):
        if value is not None and value < 1:
            fail(f"{flag}={value} is not allowed; must be >= 1")
    cases = crossed(cases, args.dtypes, args.batch_sizes)
    configs = {label: compose_train_or_fail(overrides) for label, overrides in cases.items()}
    # As the training app does: on a CPU, one data-parallel device per core (before JAX starts).
    first = next(iter(configs.values()))
    split_host_cpu(first.mesh, math.gcd(*(cfg.batch_size for cfg in configs.values())))
    rows = []
    for label, overrides in cases.items():
        print(f"[bench] {label}: {' '.join(overrides)}", file=sys.stderr, flush=True)
        rows.append(benchmark(label, overrides, configs[label], args.steps_per_call,
                              args.repeats, args.peak_seconds))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
