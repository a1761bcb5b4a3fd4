"""Engine levers timed against each other in one process: devices and the layer loop's form.

1 vs 2 CPU devices; the layers as one `lax.scan` or an unrolled scan (train_throughput's
benchmark-only `UnrolledGPT`). The Python loop over static layer slices, measured ×0.65 and
rejected, is gone from the engine (docs/benchmarks.md).

    python benchmarks/engine_levers.py                          # small (interleaved) config
    python benchmarks/engine_levers.py preset=garg_linear --steps 2

Positional arguments are Hydra overrides (one config). The process starts with two fake CPU
devices (set before JAX is imported; an explicit XLA_FLAGS wins) so that a 1-device mesh and a
2-device mesh run side by side. Calls alternate between the variants; each keeps its best.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import setup  # noqa: E402

from icl_regression.cli import compose_train_or_fail as compose  # noqa: E402
from icl_regression.train.mesh import DataParallel  # noqa: E402


def variant(cfg, n_devices: int, loop: str, n_steps: int):
    """A no-argument callable running one compiled n-step update, and its compile seconds."""
    parallel = DataParallel.create(devices=jax.devices()[:n_devices])
    update, params, opt_state, _ = setup(cfg, parallel, unroll_layers=loop == "unrolled scan")
    start = time.perf_counter()
    compiled = update.lower(params, opt_state, 0, n_steps, cfg.task.n_points).compile()
    compile_s = time.perf_counter() - start
    call = lambda: jax.block_until_ready(compiled(params, opt_state, 0))
    call()  # warm-up
    return call, compile_s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*",
                        default=["preset=quickstart", "model.encoding=interleaved",
                                 "loss_target=labels"])
    parser.add_argument("--steps", type=int, default=40, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--loops", nargs="+", default=["scan", "unrolled scan"],
                        choices=["scan", "unrolled scan"])
    args = parser.parse_args(argv)
    cfg = compose(args.overrides)
    variants = {f"{n} device(s), layers: {loop}": (n, loop)
                for n in args.devices for loop in args.loops}
    calls, compile_s = {}, {}
    for name, (n, loop) in variants.items():
        calls[name], compile_s[name] = variant(cfg, n, loop, args.steps)
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(args.repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    base = next(iter(best.values()))
    print(f"{' '.join(args.overrides)}; {args.steps} steps per call; "
          f"load {os.getloadavg()[0]:.1f}")
    for name in calls:
        print(f"  {name:34s} {args.steps / best[name]:8.2f} steps/s  ×{base / best[name]:.2f}  "
              f"compile {compile_s[name]:.1f} s")


if __name__ == "__main__":
    main()
