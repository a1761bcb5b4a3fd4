"""Where a training step's time goes, per op kind: this project's update and the PyTorch step.

Same shapes; `jax.profiler` trace of the update, `torch.profiler` of the reference step.

    python benchmarks/profile_step.py                  # small (interleaved)
    python benchmarks/profile_step.py --case paper --steps 2

The JAX update is the one vs_pytorch.py times (the engine defaults: one CPU device per core,
remat of each block); the PyTorch step is torch_reference.py's (Garg et al.'s model), eager,
profiled in this process (a profile, not a timing).

Times are summed over threads (XLA's CPU thunks; torch's CPU ops, self time), as shares.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference import build, sample, train_step  # noqa: E402
from vs_pytorch import CASES, jax_side  # noqa: E402

# XLA op names in the trace -> kind (first match wins).
# A while loop's event spans its body's ops, so loops are left out (they hold no work).
KINDS = [("loop", r"^while|^conditional|^call"), ("all-reduce (incl. waiting)", r"all-reduce"),
         ("matmul", r"dot|gemm|matmul|xnn|ynn|onednn"),
         ("copy/transpose", r"copy|transpose"), ("reduce", r"reduce"),
         ("layer-loop slices/updates", r"dynamic|slice|concat|pad"),
         ("fusion (elementwise)", r"fusion"), ("rng", r"rng|threefry|random")]


def kind(name: str) -> str:
    return next((k for k, pattern in KINDS if re.search(pattern, name, re.I)), "other")


def jax_breakdown(call) -> collections.Counter:
    with tempfile.TemporaryDirectory() as log_dir:
        with jax.profiler.trace(log_dir, create_perfetto_trace=True):
            call()
        trace = next(Path(log_dir).rglob("*.trace.json.gz"))
        events = json.loads(gzip.decompress(trace.read_bytes()))["traceEvents"]
    totals = collections.Counter()
    for e in events:
        # Thunk executions carry an hlo_op argument; host-side Python events do not.
        if e.get("ph") == "X" and "hlo_op" in e.get("args", {}) and kind(e["name"]) != "loop":
            totals[kind(e["name"])] += e.get("dur", 0)
    return totals


def torch_breakdown(case: str, n_steps: int) -> collections.Counter:
    from torch.profiler import ProfilerActivity, profile

    model, optimizer, shape, _ = build(case, compiled=False)
    for _ in range(2):  # warm-up
        train_step(model, *sample(*shape), optimizer)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n_steps):
            train_step(model, *sample(*shape), optimizer)
    totals = collections.Counter()
    for avg in prof.key_averages():
        name = avg.key.lower()
        group = ("matmul" if re.search(r"addmm|mm|bmm|matmul|linear", name) else
                 "attention (sdpa)" if "attention" in name else
                 "copy/transpose" if re.search(r"copy|contiguous|transpose|permute|clone", name)
                 else "optimizer" if "adam" in name or "foreach" in name else "other")
        totals[group] += avg.self_cpu_time_total
    top = sorted(prof.key_averages(), key=lambda a: -a.self_cpu_time_total)[:8]
    print("PyTorch top ops (self CPU): " + ", ".join(
        f"{a.key} {a.self_cpu_time_total / 1e3:.0f} ms" for a in top))
    return totals


def show(title: str, totals: collections.Counter) -> None:
    total = sum(totals.values()) or 1
    print(f"{title}: " + ", ".join(f"{k} {100 * v / total:.0f}%"
                                   for k, v in totals.most_common()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="small", choices=list(CASES))
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    overrides = CASES[args.case][0]
    call, _, n_devices, _ = jax_side(overrides, args.steps)
    show(f"JAX {args.case}, default engine ({n_devices} CPU devices, remat dots)",
         jax_breakdown(call))
    show(f"PyTorch {args.case}", torch_breakdown(args.case, args.steps))


if __name__ == "__main__":
    main()
