"""relu2nn: y = Σ_j a_j ReLU(u_j·x) + σε, a random two-layer net per prompt (Garg et al. 2022)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from icl_regression.config import TaskConfig
from icl_regression.data import sampling
from icl_regression.data.families.linear import sample_without_w
from icl_regression.data.families.registry import FamilySample, register_family


def relu2nn_expected_y2(task: TaskConfig) -> float:
    """u_j ~ N(0, I/d), a_j ~ N(0, 2/H): u·x is symmetric about 0 with variance tr Σ / d, so
    E ReLU(u·x)² = tr Σ / (2d) and E y² = H · 2/H · tr Σ / (2d) + σ² = tr Σ / d + σ²
    (1 + σ² for every built-in x distribution). Garg's u ~ N(0, I) is ours times √d."""
    with jax.ensure_compile_time_eval():
        return float(jnp.mean(sampling.x_covariance_eigs(task))) + task.noise_std**2


def relu2nn_params(key: jax.Array, task: TaskConfig, batch_size: int):
    """The per-prompt net: u (B, H, d), a (B, H)."""
    u_key, a_key = jax.random.split(key)
    width = task.hidden_width
    u = jax.random.normal(u_key, (batch_size, width, task.d), jnp.float32) / jnp.sqrt(task.d)
    a = jax.random.normal(a_key, (batch_size, width), jnp.float32) * jnp.sqrt(2.0 / width)
    return u, a


def _check(task) -> str | None:
    if task.hidden_width < 1:
        return f"task.hidden_width={task.hidden_width!r} is not allowed; must be >= 1"
    return None


@register_family("relu2nn", stream_id=5, expected_y2=relu2nn_expected_y2,
                 baselines=("zero", "averaging", "ols", "ridge_grid", "knn", "nn_gd"),
                 oracle=lambda task: (("nn_gd", {"hidden": task.hidden_width}),),
                 has_w=False, check=_check)
def sample_relu2nn(key, task, batch_size, seed=0, active_dims=None) -> FamilySample:
    """The linear family's xs (same key); the net's draws replace w (no weight vector)."""
    def labels(net_key, xs):
        u, a = relu2nn_params(net_key, task, batch_size)
        hidden = jax.nn.relu(sampling.einsum("bnd,bhd->bnh", xs, u))  # (B, n, H)
        return sampling.einsum("bnh,bh->bn", hidden, a)  # (B, n)

    return sample_without_w(key, task, batch_size, active_dims, labels)
