"""Prompt -> token sequence encodings.

Two encodings of the same prompt `xs (B, n, d)`, `ys (B, n)`:

* `interleaved` (Garg et al. 2022): 2n tokens `x_0, y_0, x_1, y_1, …`, each of width d + 1
  (x tokens `[x, 0]`, y tokens `[0, y]`); the prediction for y_i is read at x_i's token.
* `paired`: n tokens, token i = `[x_{i-1}, y_{i-1}, x_i]` (width 2d + 1; zeros before the first
  pair). Every context pair sits whole in one token and the query rides along, so causal
  attention over tokens 0..i sees exactly pairs 0..i-1 plus x_i. Half the sequence length: a
  quarter of the attention work and half the MLP work of `interleaved`, and a pair never has to
  be assembled across two tokens, which makes learning faster.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def token_width(encoding: str, d: int) -> int:
    return d + 1 if encoding == "interleaved" else 2 * d + 1


def seq_len(encoding: str, n_points: int) -> int:
    return 2 * n_points if encoding == "interleaved" else n_points


def x_positions(encoding: str, n_points: int) -> np.ndarray:
    """Token index at which the prediction for point i is read."""
    step = 2 if encoding == "interleaved" else 1
    return np.arange(n_points) * step


def y_positions(encoding: str, n_points: int) -> np.ndarray | None:
    """Token index holding y_i, or None when labels share a token with the next query."""
    return np.arange(n_points) * 2 + 1 if encoding == "interleaved" else None


def x_columns(encoding: str, d: int) -> slice:
    """Where x_i sits in the token it is read at (`x_positions`): the query's columns."""
    return slice(0, d) if encoding == "interleaved" else slice(d + 1, 2 * d + 1)


def encode(xs: jnp.ndarray, ys: jnp.ndarray, encoding: str) -> jnp.ndarray:
    """xs (B, n, d), ys (B, n) -> tokens (B, T, F)."""
    batch, n_points, d = xs.shape
    if encoding == "interleaved":
        x_tokens = jnp.concatenate([xs, jnp.zeros((batch, n_points, 1), xs.dtype)], -1)
        y_tokens = jnp.concatenate([jnp.zeros_like(xs), ys[..., None]], -1)  # (B, n, d+1)
        return jnp.stack([x_tokens, y_tokens], 2).reshape(batch, 2 * n_points, d + 1)
    pairs = jnp.concatenate([xs, ys[..., None]], -1)  # (B, n, d+1)
    previous = jnp.pad(pairs, ((0, 0), (1, 0), (0, 0)))[:, :-1]  # (B, n, d+1): pair i-1
    return jnp.concatenate([previous, xs], -1)  # (B, n, 2d+1)
