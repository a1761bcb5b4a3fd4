"""Baseline speed: every baseline on 10,000 prompts × 41 positions at d = 20, against two NumPy
references measured in the same run.

    python benchmarks/baselines_speed.py [prompts=10000] [points=41] [dim=20] [repeats=3]

A Hydra app like every other (conf/bench_baselines.yaml, schema `BaselinesBench` below).

References (exact OLS and k-NN only, the two with a standard NumPy implementation):
* batched per position: one batched `np.linalg.pinv` per prefix length (all prompts at once),
  one batched distance computation + stable argsort per position for k-NN;
* per prompt and per prefix: `np.linalg.lstsq` / a distance sort for every (prompt, prefix) —
  timed on a subset of prompts and extrapolated linearly (printed as such).
JAX times are the best of `--repeats` runs after one warm-up call (compile time listed apart).
Prints a markdown table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from icl_regression import baselines
from icl_regression.cli import App, run_app
from icl_regression.config import once
from icl_regression.config.checks import at_least


@dataclass(frozen=True)
class BaselinesBench:
    prompts: int = 10_000
    points: int = 41  # positions per prompt
    dim: int = 20
    repeats: int = 3  # timed JAX calls after a warm-up (best is kept)
    loop_subset: int = 100  # prompts timed for the per-prompt loop (then extrapolated)
    plugins: tuple[str, ...] = ()  # modules to import first (icl_regression.plugins)


@once
def check_bench(cfg: BaselinesBench) -> BaselinesBench:
    at_least(cfg, "", 1, "prompts", "dim", "repeats", "loop_subset")
    at_least(cfg, "", 2, "points")
    return cfg


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def ols_per_position(xs, ys):
    preds = np.zeros(ys.shape, xs.dtype)
    for i in range(1, xs.shape[1]):
        w = np.einsum("bdk,bk->bd", np.linalg.pinv(xs[:, :i]), ys[:, :i])  # (B, d)
        preds[:, i] = np.einsum("bd,bd->b", w, xs[:, i])
    return preds


def knn_per_position(xs, ys, k):
    preds = np.zeros(ys.shape, xs.dtype)
    for i in range(1, xs.shape[1]):
        dist = np.sum((xs[:, :i] - xs[:, i:i + 1]) ** 2, axis=-1)  # (B, i)
        nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
        preds[:, i] = np.take_along_axis(ys[:, :i], nearest, axis=1).mean(axis=1)
    return preds


def ols_per_prompt(xs, ys):
    preds = np.zeros(ys.shape, xs.dtype)
    for b in range(xs.shape[0]):
        for i in range(1, xs.shape[1]):
            w = np.linalg.lstsq(xs[b, :i], ys[b, :i], rcond=None)[0]
            preds[b, i] = w @ xs[b, i]
    return preds


def knn_per_prompt(xs, ys, k):
    preds = np.zeros(ys.shape, xs.dtype)
    for b in range(xs.shape[0]):
        for i in range(1, xs.shape[1]):
            dist = np.sum((xs[b, :i] - xs[b, i]) ** 2, axis=-1)
            preds[b, i] = ys[b, np.argsort(dist, kind="stable")[:k]].mean()
    return preds


def bench(args: BaselinesBench, _output_dir: Path) -> None:
    rng = np.random.default_rng(0)
    n_prompts, d = args.prompts, args.dim
    xs = rng.standard_normal((n_prompts, args.points, d)).astype(np.float32)
    ws = rng.standard_normal((n_prompts, d)) / np.sqrt(d)
    ys = (np.einsum("bnd,bd->bn", xs, ws) + 0.1 * rng.standard_normal(xs.shape[:2]))
    ys = ys.astype(np.float32)
    pool = (rng.standard_normal((64, d)) / np.sqrt(d)).astype(np.float32)
    xs_j, ys_j = jax.device_put(xs), jax.device_put(ys)
    eta = baselines.tune_gd_eta(xs_j, ys_j)

    configs = {
        "zero": {}, "averaging": {}, "ols": {}, "ridge": {"lam": 0.2},
        "gd": {"eta": eta, "steps": 1}, "knn": {"k": 3},
        "lasso": {"alpha": 0.1, "iters": 100}, "dmmse": {"pool": pool, "noise_std": 0.1},
    }
    rows, jax_times = [], {}
    for name, params in configs.items():
        predict = baselines.get_baseline(name, **params)
        start = time.perf_counter()
        jax.block_until_ready(predict(xs_j, ys_j))
        first = time.perf_counter() - start
        jax_times[name] = best_time(lambda p=predict: p(xs_j, ys_j), args.repeats)
        rows.append((name, params, first, jax_times[name]))

    subset = min(args.loop_subset, n_prompts)
    refs = {}
    for name, batched, looped in (
        ("ols", ols_per_position, ols_per_prompt),
        ("knn", lambda x, y: knn_per_position(x, y, 3), lambda x, y: knn_per_prompt(x, y, 3)),
    ):
        per_position = best_time(lambda f=batched: f(xs, ys), 1)
        start = time.perf_counter()
        looped(xs[:subset], ys[:subset])
        per_prompt = (time.perf_counter() - start) * n_prompts / subset
        refs[name] = (per_position, per_prompt)

    print(f"\n{n_prompts} prompts × {args.points} positions, d = {d}; "
          f"{jax.devices()[0].platform}, jax {jax.__version__}; best of {args.repeats}\n")
    print("| baseline | params | JAX first call (s, incl. compile) | JAX (s) | NumPy batched per "
          "position (s) | ratio | NumPy per prompt × prefix (s, extrapolated) | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, params, first, best in rows:
        shown = {k: ("per-position (n,)" if k == "eta" else "(64, d)" if k == "pool" else v)
                 for k, v in params.items()}
        cells = ["", "", "", ""]
        if name in refs:
            per_position, per_prompt = refs[name]
            cells = [f"{per_position:.2f}", f"{per_position / best:.1f}×",
                     f"{per_prompt:.1f}", f"{per_prompt / best:.0f}×"]
        print(f"| {name} | {shown or ''} | {first:.2f} | {best:.3f} | " + " | ".join(cells) + " |")
    print(f"\nPer-prompt loop timed on {subset} prompts and extrapolated ×{n_prompts / subset:g}.")


APP = App("bench_baselines", BaselinesBench, check_bench, bench)


def main() -> None:
    run_app(APP)


if __name__ == "__main__":
    main()
