"""Run: a trained model restored for inference (parameters only), its one jitted forward and the
one chunker that evaluation, probes, experiments and the LSA analysis call.

    run = icl_regression.load_run("runs/quickstart/2026-11-29_10-00-00")
    xs, ys, ws = run.sample(jax.random.key(0), 1000)
    preds = run.predict(xs, ys)  # (B, n): preds[:, i] uses only the first i pairs
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.tree_util import Partial

from icl_regression.config import TrainConfig
from icl_regression.data import tasks
from icl_regression.storage import RunFileError, load_config

__all__ = ["Run", "chunked", "forward", "load_config", "load_run"]


@dataclasses.dataclass(frozen=True)
class _Merged:
    """`(params, xs, ys) -> outputs` of one architecture. Hashable, and equal graphdefs compare
    equal, so every run and checkpoint of one architecture shares one compilation."""

    graphdef: object
    outputs: str = "preds"  # "preds" (B, n) | "intermediates" (dict) | "residuals" | "queries"
    layers: tuple[int, ...] = ()  # residuals only: which layers (0 = after the embedding)
    n_tokens: int = 0  # residuals only: tokens 0..n_tokens-1

    def __call__(self, params, xs, ys, *queries):
        model = nnx.merge(self.graphdef, params)
        if self.outputs == "preds":
            return model(xs, ys)  # (B, n)
        if self.outputs == "queries":  # queries (B, n, m, d) -> (B, n, m)
            return model.predict_queries(xs, ys, *queries)
        captured = model.intermediates(xs, ys)
        if self.outputs == "intermediates":
            return captured
        residuals = captured["residuals"]  # (L+1, B, T, D)
        return residuals[np.asarray(self.layers), :, :self.n_tokens]  # (layers, B, T', D)


@jax.jit
def forward(function: Partial, xs: jax.Array, ys: jax.Array):
    """The one jitted forward: `function` is a Partial carrying the parameters as leaves, so they
    are arguments of the compiled call, never constants baked into it."""
    return function(xs, ys)


@functools.partial(jax.jit, static_argnums=0)
def _read_out(graphdef, params, hidden: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, params).lens(hidden)


def chunked(fn: Callable, arrays: Sequence, chunk: int, axis: int = 0, host: bool = False):
    """`fn(*arrays)` over leading-axis chunks of min(chunk, B) prompts, the last one padded to
    the same size so `fn` compiles once; outputs are concatenated along `axis` (their prompt
    axis). `host`: move each chunk to NumPy as it comes (large activations); otherwise the result
    stays a JAX array (and differentiable)."""
    total = arrays[0].shape[0]
    size = max(min(chunk, total), 1)
    fn, sharding, size = _spread(fn, arrays, size)
    outs = []
    for start in range(0, total, size):
        part = [a[start:start + size] for a in arrays]
        short = size - part[0].shape[0]
        if short:  # the last chunk; NumPy for NumPy inputs (jnp.pad compiles per shape)
            part = [(np if isinstance(a, np.ndarray) else jnp).pad(
                a, [(0, short)] + [(0, 0)] * (a.ndim - 1)) for a in part]
        if sharding is not None:
            part = [jax.device_put(a, sharding) for a in part]
        out = fn(*part)
        if host or sharding is not None:
            out = np.asarray(out)
        if short:  # drop the padding (NumPy outputs: without compiling a slice)
            out = (np.take(out, np.arange(size - short), axis) if isinstance(out, np.ndarray)
                   else jax.lax.slice_in_dim(out, 0, size - short, axis=axis))
        outs.append(out)
    if host:
        return np.concatenate(outs, axis)
    # Spread chunks come back through NumPy: an uncommitted array mixes with any other.
    return jnp.asarray(np.concatenate(outs, axis)) if sharding is not None else jnp.concatenate(
        outs, axis)


def _spread(fn: Callable, arrays: Sequence, size: int):
    """(fn, sharding of a chunk, chunk size): where this process holds several CPU devices
    (the training app splits the host, one device per core, and the demo evaluates, probes and
    draws in that process), each chunk's prompts are split over them
    (the chunk rounded down to a multiple of the device count) and the arrays `fn` carries (a
    `functools.partial` or `Partial` over the parameters) are replicated, so inference runs
    side by side as training does. Else (fn, None, size): one device, an accelerator, several
    processes, traced inputs, a plain function or a chunk smaller than the device count."""
    devices = jax.local_devices()
    if (len(devices) < 2 or devices[0].platform != "cpu" or jax.process_count() > 1
            or size < len(devices) or not isinstance(fn, functools.partial)
            or any(isinstance(a, jax.core.Tracer) for a in arrays)):
        return fn, None, size
    mesh = Mesh(np.asarray(devices), ("batch",))
    replicated = NamedSharding(mesh, PartitionSpec())
    copy = lambda tree: jax.tree.map(
        lambda a: jax.device_put(a, replicated) if isinstance(a, jax.Array) else a, tree)
    fn = type(fn)(fn.func, *copy(fn.args), **copy(fn.keywords))
    return fn, NamedSharding(mesh, PartitionSpec("batch")), size - size % len(devices)


@dataclasses.dataclass
class Run:
    run_dir: Path
    config: TrainConfig
    model: nnx.Module
    step: int  # optimizer steps of the loaded parameters (0 = untrained)
    predict_batch: int = 4096  # prompts per jitted call, to bound memory

    @cached_property
    def _split(self):
        return nnx.split(self.model)

    def function(self, outputs: str = "preds", **options) -> Partial:
        """The model as a pure JAX function `(xs, ys) -> outputs` carrying its parameters (a
        Partial: pass it into jitted code, differentiate through it)."""
        graphdef, params = self._split
        return Partial(_Merged(graphdef, outputs, **options), params)

    def query_function(self) -> Partial | None:
        """`(xs, ys, queries (B, n, m, d)) -> (B, n, m)`: predictions at each point i with x_i
        replaced by each query (context: the pairs before i), for models with a one-pass
        `predict_queries` (the GPT); None for the others (the evaluation then runs a forward
        per point)."""
        if not hasattr(self.model, "predict_queries"):
            return None
        graphdef, params = self._split
        return Partial(_Merged(graphdef, "queries"), params)

    def predict(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
        """xs (B, n, d), ys (B, n) -> preds (B, n); the signature every baseline shares."""
        return chunked(Partial(forward, self.function()), (xs, ys), self.predict_batch)

    def intermediates(self, xs: jax.Array, ys: jax.Array) -> dict:
        """preds (B, n), residuals (L+1, B, T, D), attention (L, B, H, T, T); one call."""
        return forward(self.function("intermediates"), xs, ys)

    def residuals(self, xs: jax.Array, ys: jax.Array, layers: Sequence[int], n_tokens: int,
                  batch: int) -> np.ndarray:
        """Residual stream at `layers`, tokens 0..n_tokens-1, in chunks of `batch` prompts:
        (len(layers), B, n_tokens, D) float32 NumPy."""
        function = self.function("residuals", layers=tuple(layers), n_tokens=n_tokens)
        out = chunked(Partial(forward, function), (xs, ys), batch, axis=1, host=True)
        return out.astype(np.float32, copy=False)

    def sample(self, key: jax.Array, batch_size: int):
        """Held-out prompts of the training distribution at full dimension and points."""
        task = tasks.held_out_task(self.config.task)
        return tasks.sample_prompts(key, task, batch_size, self.config.seed)

    # What the model contract (models/contract.py) says of this run's model, at its n_points.
    @property
    def n_layers(self) -> int:
        return self.model.n_layers

    @property
    def n_tokens(self) -> int:
        return self.model.n_tokens(self.config.task.n_points)

    @property
    def has_attention(self) -> bool:
        return bool(self.model.has_attention)

    def lens(self, hidden) -> np.ndarray:
        """The model's read-out (the lens) on hidden states (..., width) -> (...) float32."""
        graphdef, params = self._split
        return np.asarray(_read_out(graphdef, params, jnp.asarray(hidden)))

    @property
    def x_positions(self) -> np.ndarray:
        return self.model.x_positions(self.config.task.n_points)

    @property
    def y_positions(self) -> np.ndarray | None:
        return self.model.y_positions(self.config.task.n_points)

    def untrained(self, seed: int | None = None) -> Run:
        """Same architecture, fresh initialisation (a control for probes)."""
        from icl_regression.models import build_model

        seed = self.config.seed + 1 if seed is None else seed
        return Run(self.run_dir, self.config, build_model(self.config.model, self.config.task,
                                                          seed), step=0)

    def at_step(self, step: int) -> Run:
        """The same run with the parameters of checkpoint `step` (same compilation)."""
        return self if step == self.step else load_run(self.run_dir, step)


MAX_PARAMS = 1 << 30  # what a stored run may declare (4 GiB of float32 parameters)


def _check_size(run_dir: Path, params) -> None:
    """Refuse a config declaring a model too large to restore here (a crafted run could make
    the restore allocate without bound) before anything is read."""
    count = sum(int(np.prod(a.shape, dtype=np.float64)) for a in jax.tree.leaves(params))
    if count > MAX_PARAMS:
        raise RunFileError(f"{run_dir}: its config declares a model of {count:,} parameters, "
                           f"over the {MAX_PARAMS:,} a run may have here; refusing to load it")


def load_run(run_dir: str | Path, step: int | None = None) -> Run:
    """The run's model at its newest checkpoint that restores (or at `step`): parameters only.
    A damaged checkpoint is skipped with a warning, not moved: only training, which writes
    that step again, moves it aside."""
    from icl_regression.checkpoints import restore_newest, restore_params
    from icl_regression.models import build_model
    from icl_regression.plugins import load_plugins

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    load_plugins(cfg.plugins)  # the run's own families and models, if it was trained with some
    # Shapes only (no initialisation: eager init compiled one sampler per shape, ~4 s), placed
    # where a freshly built model's arrays would be, so restore returns JAX arrays there.
    graphdef, shapes = nnx.split(nnx.eval_shape(lambda: build_model(cfg.model, cfg.task,
                                                                   cfg.seed)))
    place = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=place),
                          shapes)
    _check_size(run_dir, params)
    directory = run_dir / "checkpoints"
    found, restored = (step, restore_params(directory, params, step)) if step is not None else (
        restore_newest(directory, lambda s: restore_params(directory, params, s)) or (None, None))
    if found is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet (train it first)")
    return Run(run_dir, cfg, nnx.merge(graphdef, restored), step=found)
