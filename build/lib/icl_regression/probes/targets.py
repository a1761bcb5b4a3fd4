"""What a probe is asked to read from a token: quantities of the prefix that token has seen.

Which pairs a token has seen. Causal attention lets token t read tokens 0..t, so its prefix is
every (x_j, y_j) pair that lies whole in tokens 0..t; `prefix_lengths` gives k for each token:

* `paired` (token i = [x_{i-1}, y_{i-1}, x_i]): pair j completes in token j + 1, so token i has
  seen k = i pairs (0..i-1), plus the query x_i it carries.
* `interleaved` (x_0, y_0, x_1, y_1, …): pair j completes at its y token 2j + 1, so the x token
  2i has seen k = i pairs (and holds the query x_i) and the y token 2i + 1 has seen k = i + 1.

Targets for a prefix of k pairs, with S_k = Σ_{j<k} x_j x_jᵀ and b_k = Σ_{j<k} y_j x_j:

| name    | value at k                                                              |
| ------- | ----------------------------------------------------------------------- |
| w       | the prompt's true weight vector (the same at every k; families with a w) |
| w_ols   | S_k⁺ b_k: min-norm least squares (0 at k = 0; exact also for k < d)     |
| w_ridge | (S_k + λ* I)⁻¹ b_k with the Bayes λ* = σ² d / τ² (noiseless: = w_ols)   |
| w_gd    | η*_k b_k: one GD step from w = 0, η*_k tuned per k like the GD baseline |
| xty     | b_k = Xᵀy of the prefix                                                 |

Per k, w_gd is a fixed multiple of xty, so any probe scored by R² at one position scores them
alike; their MSEs differ.

The targets use the baselines' per-prefix solvers (`icl_regression.baselines.solvers`): each maps
`xs (B, n, d)`, `ys (B, n)` to `ws (B, n, d)` with `ws[:, i]` fitted on pairs 0..i-1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from icl_regression.baselines import solvers, tune_gd_eta
from icl_regression.baselines.solvers import exclusive_cumsum, gd_weights, ols_weights
from icl_regression.config import TaskConfig
from icl_regression.data import tasks
from icl_regression.probes.kinds import Split

TARGETS = ("w", "w_ols", "w_ridge", "w_gd", "xty")


# The per-prefix solvers and the GD step-size tuner are the baselines' own (one definition).
def prefix_xty(xs: jax.Array, ys: jax.Array) -> jax.Array:
    """b_i = Σ_{j<i} y_j x_j: (B, n, d)."""
    return exclusive_cumsum(xs * ys[..., None])


def ridge_weights(xs: jax.Array, ys: jax.Array, lam: float) -> jax.Array:
    """(S_i + λI)⁻¹ b_i of every prefix, (B, n, d); λ = 0 is min-norm least squares."""
    if lam == 0:
        return ols_weights(xs, ys)
    if not np.isfinite(lam):  # a zero-variance prior: the posterior mean stays at 0
        return jnp.zeros_like(xs)
    return solvers.ridge_weights(xs, ys, lam)


def prefix_lengths(x_positions: np.ndarray, y_positions: np.ndarray | None,
                   n_tokens: int) -> np.ndarray:
    """k (pairs seen) of every token 0..n_tokens-1: (T,) int.

    Pair j is complete at its y token, or (encodings without y tokens) in the token after its x.
    """
    complete_at = (np.asarray(y_positions) if y_positions is not None
                   else np.asarray(x_positions) + 1)  # (n,)
    return np.sum(complete_at[None, :] <= np.arange(n_tokens)[:, None], axis=1)


def token_kinds(x_positions: np.ndarray, y_positions: np.ndarray | None,
                n_tokens: int) -> list[str]:
    """'x' for a token holding a query x_i (paired tokens hold one each), 'y' for a y token."""
    kinds = ["?"] * n_tokens
    for t in np.asarray(x_positions):
        kinds[int(t)] = "x"
    for t in (np.asarray(y_positions) if y_positions is not None else ()):
        kinds[int(t)] = "y"
    return kinds


@partial(jax.jit, static_argnames=("task", "n_prompts", "seed"))
def sample_probe_prompts(key: jax.Array, task: TaskConfig, n_prompts: int, seed: int):
    """Probe prompts and, independent of them, prompts for tuning η*: one jitted draw.

    2N prompts of n + 1 points: the first N, cut to n points, are the probe prompts (the run's
    training distribution); the last N keep n + 1 points, so η*_k is tuned for k = 0..n.
    Returns xs (N, n, d), ys (N, n), ws (N, d), and the tuning prompts' xs, ys.
    """
    longer = dataclasses.replace(task, n_points=task.n_points + 1)
    xs, ys, ws = tasks.sample_prompts(key, longer, 2 * n_prompts, seed)  # (2N, n+1, d) ...
    n = task.n_points
    ws = None if ws is None else ws[:n_prompts]  # families without a weight vector: None
    return xs[:n_prompts, :n], ys[:n_prompts, :n], ws, xs[n_prompts:], ys[n_prompts:]


@partial(jax.jit, static_argnames=("names", "ridge_lambda"))
def _all_prefix_targets(xs, ys, ws, gd_eta, names, ridge_lambda):
    xs_pad = jnp.pad(xs, ((0, 0), (0, 1), (0, 0)))  # (B, n+1, d)
    ys_pad = jnp.pad(ys, ((0, 0), (0, 1)))  # (B, n+1)
    b = prefix_xty(xs_pad, ys_pad)  # (B, n+1, d)
    compute = {
        "w": lambda: jnp.broadcast_to(ws[:, None], b.shape),
        "w_ols": lambda: ols_weights(xs_pad, ys_pad),
        "w_ridge": lambda: ridge_weights(xs_pad, ys_pad, ridge_lambda),
        "w_gd": lambda: gd_weights(xs_pad, ys_pad, gd_eta, 1),
        "xty": lambda: b,
    }
    return {name: compute[name]() for name in names}


def all_prefix_targets(xs: jax.Array, ys: jax.Array, ws: jax.Array, names: Sequence[str],
                       ridge_lambda: float, gd_eta: np.ndarray) -> dict[str, np.ndarray]:
    """Each target for every prefix length k = 0..n: name -> (B, n + 1, d) float64.

    A dummy point appended to each prompt turns the solvers' n prefixes (0..n-1 pairs) into
    n + 1; the prefix of k pairs never reads point k, so the dummy's value is irrelevant.
    `gd_eta`: η*_k for k = 0..n.
    """
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        raise ValueError(f"target {unknown[0]!r} is unknown; allowed: {', '.join(TARGETS)}")
    values = _all_prefix_targets(xs, ys, ws, jnp.asarray(gd_eta, xs.dtype), tuple(names),
                                 float(ridge_lambda))
    return {name: np.asarray(values[name], np.float64) for name in names}


def targets_at_positions(prefix_targets: dict[str, np.ndarray], k_of_position: np.ndarray,
                         names: Sequence[str]) -> np.ndarray:
    """Stack the chosen targets at each probed position's k: (n_targets, B, P, d)."""
    return np.stack([prefix_targets[name][:, k_of_position] for name in names])


@dataclasses.dataclass(frozen=True)
class ProbeData:
    """The probe prompts of one run and what every probe is fitted to."""

    xs: jax.Array  # (N, n, d)
    ys: jax.Array  # (N, n)
    targets: np.ndarray  # (G, N, P, d)
    ks: np.ndarray  # (P,) pairs seen at each probed position
    ridge_lambda: float
    gd_eta: np.ndarray  # (n + 1,)
    split: Split
    fit_key: jax.Array


def probe_data(run, targets: Sequence[str], n_prompts: int, probe_seed: int,
               positions: Sequence[int]) -> ProbeData:
    """Held-out prompts of `run` from its "probe" stream, the targets at `positions`, the split."""
    task, seed = tasks.held_out_task(run.config.task), run.config.seed
    key = jax.random.fold_in(tasks.stream_key(seed, "probe"), probe_seed)
    prompt_key, fit_key = jax.random.split(key)
    xs, ys, ws, eta_xs, eta_ys = sample_probe_prompts(prompt_key, task, n_prompts, seed)
    k_of_token = prefix_lengths(run.x_positions, run.y_positions, max(positions) + 1)  # (T,)
    ks = k_of_token[positions]  # (P,)
    ridge_lambda = tasks.bayes_ridge_lambda(task)
    gd_eta = np.asarray(tune_gd_eta(eta_xs, eta_ys))  # (n + 1,): η*_k for k = 0..n
    prefix = all_prefix_targets(xs, ys, ws, targets, ridge_lambda, gd_eta)
    return ProbeData(xs, ys, targets_at_positions(prefix, ks, targets), ks, ridge_lambda,
                     gd_eta, Split.random((seed, probe_seed), n_prompts), fit_key)
