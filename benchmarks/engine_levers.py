"""Engine levers timed against each other in one process: devices, the block's form, remat, and
per-compile XLA options.

    python benchmarks/engine_levers.py                         # small (interleaved) config
    python benchmarks/engine_levers.py preset=garg_linear --steps 2 --repeats 3 \\
        --variants 2:scan 2:tokenmajor 1:scan 2:remat_full 2:scan:FLAG=true

A variant is `DEVICES:FORM[:OPTION=VALUE,...]`: the number of CPU devices of the mesh, the
model's form, and XLA compile options for that compile only. Forms (benchmark-only subclasses of
the GPT, same parameters and math: the max |Δloss| column checks it, and tests/models/
test_engine.py for the unrolled and remat forms):

* `scan` — the engine as it is (one `lax.scan` over the layers, remat `dots`);
* `unrolled` — the layer scan unrolled (train_throughput.py's `UnrolledGPT`);
* `tokenmajor` — the block before heads-major (q, k, v (B, T, H, C) split from the QKV
  matmul, a plain `@` for the attention output): the engine until 2026-12-07;
* `mlp_project` — the engine with `project` on the MLP's two matmuls too;
* `dpa` — attention through `jax.nn.dot_product_attention(is_causal=True)`;
* `remat_none`, `remat_full` — the scanned engine with another remat policy.

(The Python loop over static layer slices, ×0.65, is gone from the engine: docs/benchmarks.md.)
The process starts with two fake CPU devices (set before JAX is imported; an explicit XLA_FLAGS
wins). Calls alternate between the variants; each reports its best and median call, the median
relative to the first variant's, and the largest loss difference to the first variant.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput  # noqa: E402
from train_throughput import UnrolledGPT, setup  # noqa: E402

from icl_regression.cli import compose_train_or_fail as compose  # noqa: E402
from icl_regression.models.gpt import GPT, REMAT_POLICIES  # noqa: E402
from icl_regression.models.layers import layer_norm, project  # noqa: E402
from icl_regression.train.mesh import DataParallel  # noqa: E402


class DotProductAttentionGPT(GPT):
    """Training forward with `jax.nn.dot_product_attention`."""

    def _block(self, h, layer, with_attention, training=False):
        if with_attention:
            return super()._block(h, layer, with_attention, training)
        batch, seq, width = h.shape
        q, k, v = self._heads(h, layer)  # (B, T, H, C) each
        mixed = jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(batch, seq, width)
        h = h + mixed @ layer["w_attn_out"] + layer["b_attn_out"]
        return self._mlp(h, layer), None


class TokenMajorGPT(GPT):
    """The block before heads-major: q, k, v (B, T, H, C) split from one QKV matmul, the
    attention einsums over the head axis, a plain `@` for the attention output."""

    def _block(self, h, layer, with_attention, training=False):
        if with_attention:
            return super()._block(h, layer, with_attention, training)
        batch, seq, width = h.shape
        q, k, v = self._heads(h, layer)  # (B, T, H, C) each
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(q.shape[-1])
        causal = jnp.tril(jnp.ones((seq, seq), bool))
        logits = jnp.where(causal, logits.astype(jnp.float32), -1e30)
        weights = jax.nn.softmax(logits, axis=-1).astype(h.dtype)
        mixed = jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(batch, seq, width)
        h = h + mixed @ layer["w_attn_out"] + layer["b_attn_out"]
        return self._mlp(h, layer), None


class MLPProjectGPT(GPT):
    """The engine with `project` (the barrier before the weight-gradient transpose) on the
    MLP's two matmuls as well."""

    def _mlp(self, h, layer):
        m = layer_norm(h, layer["ln2_scale"], layer["ln2_bias"])
        m = jax.nn.gelu(project(m, layer["w_fc"]) + layer["b_fc"])
        return h + project(m, layer["w_proj"]) + layer["b_proj"]


FORMS = {"scan": GPT, "unrolled": UnrolledGPT, "tokenmajor": TokenMajorGPT,
         "mlp_project": MLPProjectGPT,
         "dpa": DotProductAttentionGPT, "remat_none": GPT, "remat_full": GPT}


def variant(cfg, n_devices: int, form: str, n_steps: int, options: dict):
    """(no-argument callable running one compiled n-step update, compile s, its first output)."""
    parallel = DataParallel.create(devices=jax.devices()[:n_devices])
    build = train_throughput.build_model

    def build_form(*args, **kwargs):
        model = build(*args, **kwargs)
        model.__class__ = FORMS[form]
        if form.startswith("remat_"):
            model.remat = REMAT_POLICIES[form.removeprefix("remat_")]
        return model

    train_throughput.build_model = build_form
    try:
        update, params, opt_state, _ = setup(cfg, parallel)
    finally:
        train_throughput.build_model = build
    start = time.perf_counter()
    compiled = update.lower(params, opt_state, 0, n_steps, cfg.task.n_points).compile(
        compiler_options=options or None)
    compile_s = time.perf_counter() - start
    first = jax.block_until_ready(compiled(params, opt_state, 0))  # warm-up
    return lambda: jax.block_until_ready(compiled(params, opt_state, 0)), compile_s, first


def parse(spec: str):
    devices, form, *rest = spec.split(":")
    options = {}
    for item in (rest[0].split(",") if rest else []):
        key, value = item.split("=")
        options[key] = {"true": True, "false": False}.get(value, value)
    return int(devices), form, options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*",
                        default=["preset=quickstart", "model.encoding=interleaved",
                                 "model.n_head=2", "loss_target=labels"])
    parser.add_argument("--steps", type=int, default=40, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="+",
                        default=["2:scan", "2:tokenmajor", "1:scan", "2:dpa", "2:remat_none"])
    args = parser.parse_args(argv)
    cfg = compose(args.overrides)
    calls, compile_s, firsts = {}, {}, {}
    for spec in args.variants:
        devices, form, options = parse(spec)
        calls[spec], compile_s[spec], firsts[spec] = variant(cfg, devices, form, args.steps,
                                                             options)
    times, loads = {spec: [] for spec in calls}, []
    for _ in range(args.repeats):
        loads.append(os.getloadavg()[0])
        for spec, call in calls.items():
            start = time.perf_counter()
            call()
            times[spec].append(time.perf_counter() - start)
    base_spec = args.variants[0]
    base = statistics.median(times[base_spec])
    print(f"{' '.join(args.overrides)}; {args.steps} steps per call; {args.repeats} calls each; "
          f"load {min(loads):.1f}-{max(loads):.1f}")
    for spec in calls:
        diff = float(np.max(np.abs(np.asarray(firsts[spec][2]["loss"])
                                   - np.asarray(firsts[base_spec][2]["loss"]))))
        print(f"  {spec:40s} best {args.steps / min(times[spec]):8.3f}  median "
              f"{args.steps / statistics.median(times[spec]):8.3f} steps/s  "
              f"×{base / statistics.median(times[spec]):.2f}  compile {compile_s[spec]:.1f} s  "
              f"max |Δloss| {diff:.1e}")


if __name__ == "__main__":
    main()
