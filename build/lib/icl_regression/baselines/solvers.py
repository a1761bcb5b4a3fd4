"""Per-prefix weight vectors of the linear baselines, for every prompt and every prefix at once.

Every function here maps `xs (B, n, d)`, `ys (B, n)` to `ws (B, n, d)` where `ws[:, i]` is
fitted on pairs `0..i-1` only (so `ws[:, 0]` is the empty-context answer, 0).

Least squares and ridge factorise the prefix itself instead of forming `XᵀX`: in float32 the
normal equations square the condition number, which at k = d with noisy labels loses almost all
digits. Instead each context point is folded into a triangular factor by Givens rotations
(a row-by-row QR, O(d²) per point), inside one `lax.scan` over positions, batched over prompts:

* ridge(λ): the factor of `[√λ I; X_k]`, so `Rᵀ R = X_kᵀ X_k + λ I` and `w = R⁻¹ Qᵀ[0; y]`.
* ols (min-norm, any rank): an orthonormal basis `Q` of the span of the context points is grown
  alongside (Gram–Schmidt, repeated once for orthogonality). A point with a component outside
  the span opens a new basis direction; earlier points have coordinate 0 along it, so the
  factor in basis coordinates stays upper triangular. Least squares is solved in the span
  (full column rank there) and mapped back with `Q`, which is exactly the pseudo-inverse
  solution `X_k⁺ y_k`, also for k < d and for x confined to a subspace.

Gradient descent and the lasso iterate with the prefix moments `S_i = Σ_{j<i} x_j x_jᵀ`,
`b_i = Σ_{j<i} y_j x_j` (memory B·n·d², so callers chunk large batches).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST
einsum = partial(jnp.einsum, precision=HIGHEST)

# A context point opens a new direction when its component outside the span of the earlier
# points exceeds this fraction of its norm. Float32 projections are accurate to ~1e-6, so
# smaller components are rounding noise (the analogue of the rcond cut-off of a pseudo-inverse).
RANK_RTOL = 1e-4


def _sum_leading(a: jax.Array) -> jax.Array:
    """Σ over the leading axis as an unrolled chain of adds: one fused elementwise pass, much
    faster on CPU than XLA's reduce over a non-minor axis. (k, ...) -> (...)."""
    total = a[0]
    for i in range(1, a.shape[0]):
        total = total + a[i]
    return total


def _givens_insert(r_rows, z, u, yv):
    """Fold the row (u, yv) into the triangular system (R, z) with d Givens rotations.

    Batch-minor layout (the batch is the last axis, so every operation is a contiguous
    elementwise pass): r_rows (d, d, B) upper triangular, z (d, B), u (d, B), yv (B,).
    A scan over R's rows rotates the new row against row j to zero its j-th entry; where
    R[j, j] = 0 (an unused slot) the row simply takes that slot.
    """
    d = r_rows.shape[0]
    slot = jnp.arange(d)[:, None]  # (d, 1)

    def rotate(carry, row):
        u, yv = carry
        r_row, z_j, j = row  # (d, B), (B,), ()
        a = jax.lax.dynamic_index_in_dim(r_row, j, 0, keepdims=False)  # (B,)
        b = jax.lax.dynamic_index_in_dim(u, j, 0, keepdims=False)
        norm = jnp.hypot(a, b)
        safe = jnp.where(norm > 0, norm, 1.0)
        c = jnp.where(norm > 0, a / safe, 1.0)
        s = jnp.where(norm > 0, b / safe, 0.0)
        u_next = jnp.where(slot == j, 0.0, c * u - s * r_row)  # entry j is zero by construction
        return (u_next, c * yv - s * z_j), (c * r_row + s * u, c * z_j + s * yv)

    _, (r_rows, z) = jax.lax.scan(rotate, (u, yv), (r_rows, z, jnp.arange(d)))
    return r_rows, z


def _solve_upper(r_rows, z):
    """R⁻¹ z by back substitution, batch-minor (d, d, B), (d, B) -> (d, B).

    A zero diagonal marks an unused slot (rank-deficient prefix): the solution is 0 there.
    """
    diag = jnp.diagonal(r_rows, axis1=0, axis2=1).T  # (d, B)
    used = diag != 0

    def substitute(w, row):
        r_row, z_j, diag_j, used_j, j = row
        w_j = (z_j - _sum_leading(r_row * w)) / jnp.where(used_j, diag_j, 1.0)  # (B,)
        return w.at[j].set(jnp.where(used_j, w_j, 0.0)), None

    rows = (r_rows, z, diag, used, jnp.arange(r_rows.shape[0]))
    w, _ = jax.lax.scan(substitute, jnp.zeros_like(z), rows, reverse=True)
    return w


def _scan_points(step, init, xs, ys):
    """Run `step(state, (x (d, B), y (B,))) -> (state, w (d, B))` over positions: (B, n, d)."""
    _, ws = jax.lax.scan(step, init, (jnp.transpose(xs, (1, 2, 0)), ys.T))  # (n, d, B)
    return jnp.transpose(ws, (2, 0, 1))


@jax.jit
def ols_weights(xs: jax.Array, ys: jax.Array) -> jax.Array:
    """Min-norm least-squares weights of every prefix: (B, n, d), ws[:, i] = X_i⁺ y_i."""
    batch, _, d = xs.shape
    dtype = xs.dtype
    slots = jnp.arange(d)[:, None]  # (d, 1)

    def step(state, point):
        # basis (m, i, B): direction m's coordinates; basis_t (i, m, B) the same, transposed,
        # so that both Qᵀx and Q c are sums over a leading axis.
        basis, basis_t, rank, r_rows, z = state
        x, y = point  # (d, B), (B,)
        w = _sum_leading(basis * _solve_upper(r_rows, z)[:, None])  # (d, B): earlier points
        coords = _sum_leading(basis_t * x[:, None])  # (d, B): coordinates in the basis
        perp = x - _sum_leading(basis * coords[:, None])
        again = _sum_leading(basis_t * perp[:, None])  # second Gram–Schmidt pass
        perp = perp - _sum_leading(basis * again[:, None])
        coords = coords + again
        perp_norm = jnp.sqrt(_sum_leading(perp**2))  # (B,)
        is_new = (perp_norm > RANK_RTOL * jnp.sqrt(_sum_leading(x**2))) & (rank < d)  # (B,)
        slot = (slots == rank) & is_new  # (d, B): one-hot of the new direction's slot
        direction = perp / jnp.where(is_new, perp_norm, 1.0)  # (d, B)
        basis = basis + jnp.where(slot[:, None], direction[None], 0.0)
        basis_t = basis_t + jnp.where(slot[None], direction[:, None], 0.0)
        coords = coords + jnp.where(slot, perp_norm, 0.0)
        r_rows, z = _givens_insert(r_rows, z, coords, y)
        return (basis, basis_t, rank + is_new, r_rows, z), w

    init = (jnp.zeros((d, d, batch), dtype), jnp.zeros((d, d, batch), dtype),
            jnp.zeros((batch,), jnp.int32),
            jnp.zeros((d, d, batch), dtype), jnp.zeros((d, batch), dtype))
    return _scan_points(step, init, xs, ys)


@jax.jit
def ridge_weights(xs: jax.Array, ys: jax.Array, lam: float | jax.Array) -> jax.Array:
    """Ridge weights (S_i + λI)⁻¹ b_i of every prefix: (B, n, d). Needs λ > 0 (λ = 0: ols)."""
    batch, _, d = xs.shape
    lam = jnp.asarray(lam, xs.dtype)

    def step(state, point):
        r_rows, z = state
        x, y = point  # (d, B), (B,)
        return _givens_insert(r_rows, z, x, y), _solve_upper(r_rows, z)

    r0 = jnp.broadcast_to((jnp.sqrt(lam) * jnp.eye(d, dtype=xs.dtype))[:, :, None], (d, d, batch))
    return _scan_points(step, (r0, jnp.zeros((d, batch), xs.dtype)), xs, ys)


def exclusive_cumsum(a: jax.Array) -> jax.Array:
    """Sums over earlier positions only (axis 1): out[:, i] = Σ_{j<i} a[:, j], exactly 0 at i = 0.
    Shifting (not `cumsum(a) − a`) avoids cancellation once the running sum is large."""
    summed = jnp.cumsum(a, axis=1)
    return jnp.concatenate([jnp.zeros_like(summed[:, :1]), summed[:, :-1]], axis=1)


def prefix_moments(xs: jax.Array, ys: jax.Array):
    """S (B, n, d, d) and b (B, n, d): sums over pairs j < i (exclusive prefix sums)."""
    outer = einsum("bni,bnj->bnij", xs, xs)  # (B, n, d, d)
    return exclusive_cumsum(outer), exclusive_cumsum(xs * ys[..., None])


@partial(jax.jit, static_argnames="steps")
def gd_weights(xs: jax.Array, ys: jax.Array, eta: float | jax.Array, steps: int = 1) -> jax.Array:
    """`steps` of full-batch GD on ½Σ_{j<i}(w·x_j − y_j)² from w = 0: (B, n, d).

    eta is a scalar or a per-position array (n,) (the tuned step sizes). One step is η b_i.
    """
    eta = jnp.broadcast_to(jnp.asarray(eta, xs.dtype), xs.shape[1:2])[None, :, None]  # (1, n, 1)
    s_mat, b = prefix_moments(xs, ys)
    w = eta * b  # first step from w = 0
    if steps > 1:
        def body(_, w):
            return w - eta * (einsum("bnij,bnj->bni", s_mat, w) - b)

        w = jax.lax.fori_loop(1, steps, body, w)
    return w  # (B, n, d)


@partial(jax.jit, static_argnames="iters")
def lasso_weights(xs: jax.Array, ys: jax.Array, alpha: float | jax.Array,
                  iters: int = 500) -> jax.Array:
    """FISTA on ½Σ_{j<i}(w·x_j − y_j)² + α‖w‖₁ for every prefix: (B, n, d).

    The step is 1/L with L the largest eigenvalue of S_i (power iteration, 10% margin).
    """
    s_mat, b = prefix_moments(xs, ys)
    probe = jnp.ones(xs.shape[-1], xs.dtype) + jnp.linspace(0.0, 1.0, xs.shape[-1])  # (d,)

    def power(_, v):
        v = einsum("bnij,bnj->bni", s_mat, v)
        return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-30)

    v = jax.lax.fori_loop(0, 50, power, jnp.broadcast_to(probe, b.shape))
    top = jnp.linalg.norm(einsum("bnij,bnj->bni", s_mat, v), axis=-1)  # (B, n)
    step = 1.0 / jnp.maximum(1.1 * top, 1e-12)[..., None]  # (B, n, 1)
    shrink = alpha * step

    def body(t, carry):
        w, v, momentum = carry
        grad = einsum("bnij,bnj->bni", s_mat, v) - b
        g = v - step * grad
        w_next = jnp.sign(g) * jnp.maximum(jnp.abs(g) - shrink, 0.0)  # soft threshold
        m_next = (1 + jnp.sqrt(1 + 4 * momentum**2)) / 2
        v = w_next + ((momentum - 1) / m_next) * (w_next - w)
        return w_next, v, m_next

    zeros = jnp.zeros_like(b)
    w, _, _ = jax.lax.fori_loop(0, iters, body, (zeros, zeros, jnp.ones((), xs.dtype)))
    return w  # (B, n, d)



def over_chunks(fn, *arrays: jax.Array, chunk: int) -> jax.Array:
    """fn(*arrays) applied to `chunk` prompts (leading axis) at a time (`lax.map`, the last
    chunk padded), so baselines with (B, n, d, d) or (B, n, n, H) intermediates hold only
    `chunk` prompts' worth: (B, ...) -> (B, ...)."""
    batch = arrays[0].shape[0]
    chunk = max(1, min(chunk, batch))
    pad = -batch % chunk

    def split(a):  # (B, ...) -> (C, c, ...)
        a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape(-1, chunk, *a.shape[1:])

    out = jax.lax.map(lambda args: fn(*args), tuple(split(a) for a in arrays))  # (C, c, ...)
    return out.reshape(-1, *out.shape[2:])[:batch]
