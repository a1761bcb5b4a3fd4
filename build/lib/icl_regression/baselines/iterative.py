"""Iterative least-squares solvers with an iteration axis: newton, gd (all steps), cg, online_gd.

Each prefix i has `S_i = Σ_{j<i} x_j x_jᵀ`, `b_i = Σ_{j<i} y_j x_j`. Newton, GD and CG are run in
the eigenbasis of S_i (`S = V diag(λ) Vᵀ`, one float32 `eigh` per prefix): their iterates are
polynomials in S applied to b (CG: orthogonally invariant), so in that basis every matrix product
becomes elementwise and one decomposition serves every iteration count t. In exact arithmetic
this is the matrix recursion itself; the tests check it against float64 NumPy matrix iterations.

* newton (Newton–Schulz): M₀ = S / ‖S‖₂² (the exact spectral norm, λ_max from `eigh`),
  M ← 2M − M S M, w_t = M_t b. Per eigenvalue m ← m (2 − m λ): converges to 1/λ (0 on the
  null space), i.e. to min-norm OLS for every rank, doubling the correct digits per step.
* gd: t full-batch steps of size η from w = 0: per eigenvalue g_t = (1 − (1 − ηλ)^t) / λ.
* cg: t conjugate-gradient steps on S w = b from w = 0 (exact OLS after rank(S) steps).
* online_gd: `passes` passes over the prefix, one example per step, w ← w + η (y_j − w·x_j) x_j.

Eigenvalues below `d · ε · λ_max` are rounding noise of the float32 S (the rcond of a
pseudo-inverse): treated as 0, with b's component there dropped (b lies in S's range).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from icl_regression.baselines.registry import register_baseline
from icl_regression.baselines.solvers import einsum, prefix_moments

EPS32 = float(np.finfo(np.float32).eps)


def spectral_prefixes(xs: jax.Array, ys: jax.Array):
    """Eigenbasis of every prefix: λ (B, n, d) ascending, V (B, n, d, d), c = Vᵀb (B, n, d)."""
    s_mat, b = prefix_moments(xs, ys)  # (B, n, d, d), (B, n, d)
    lam, vecs = jnp.linalg.eigh(s_mat)
    top = lam[..., -1:]  # (B, n, 1): ‖S‖₂
    kept = lam > xs.shape[-1] * EPS32 * top
    lam = jnp.where(kept, lam, 0.0)
    coef = jnp.where(kept, einsum("bnde,bnd->bne", vecs, b), 0.0)  # (B, n, d)
    return lam, vecs, coef


def _newton_factors(lam: jax.Array, steps: int) -> jax.Array:
    """m_t(λ) for t = 0..steps: (steps + 1, ...) with m₀ = λ / λ_max²."""
    top = lam[..., -1:]
    m0 = lam / jnp.where(top > 0, top, 1.0) ** 2

    def step(m, _):
        nxt = m * (2.0 - m * lam)
        return nxt, nxt

    _, rest = jax.lax.scan(step, m0, None, length=steps)
    return jnp.concatenate([m0[None], rest], 0)


def _gd_factors(lam: jax.Array, eta: jax.Array, steps: jax.Array) -> jax.Array:
    """g_t(λ) = η Σ_{s<t} (1 − ηλ)^s, for a vector of step counts t: (T, ...).

    Closed form (1 − r^t)/λ with r = 1 − ηλ; for 0 < ηλ < 1, 1 − r^t = −expm1(t log1p(−ηλ))
    keeps the digits that a direct subtraction would lose when ηλ is tiny. λ = 0: g = ηt.
    """
    t = steps.astype(lam.dtype).reshape((-1,) + (1,) * lam.ndim)  # (T, 1, ...)
    rate = eta * lam
    small = rate < 1.0
    one_minus = -jnp.expm1(t * jnp.log1p(-jnp.where(small, rate, 0.0)))
    base = jnp.abs(1.0 - rate)
    odd = jnp.mod(t, 2.0) == 1.0
    power = jnp.exp(t * jnp.log(jnp.where(base > 0, base, 1.0))) * (base > 0)
    signed = jnp.where(odd & (rate > 1.0), -power, power)
    one_minus = jnp.where(small, one_minus, 1.0 - signed)
    return jnp.where(lam > 0, one_minus / jnp.where(lam > 0, lam, 1.0), eta * t)


def _cg_factors(lam: jax.Array, coef: jax.Array, steps: int) -> jax.Array:
    """CG iterates in the eigenbasis, w_t = f_t ⊙ c (S diagonal there): (steps + 1, ...)."""
    def step(state, _):
        w, r, p, rr = state
        sp = lam * p
        curv = jnp.sum(p * sp, -1, keepdims=True)
        ok = curv > 1e-30 * jnp.maximum(rr, 1e-30)  # converged (r = 0) or empty prefix
        alpha = jnp.where(ok, rr / jnp.where(ok, curv, 1.0), 0.0)
        w, r = w + alpha * p, r - alpha * sp
        rr_new = jnp.sum(r * r, -1, keepdims=True)
        beta = jnp.where(rr > 0, rr_new / jnp.where(rr > 0, rr, 1.0), 0.0)
        return (w, r, r + beta * p, rr_new), w

    rr0 = jnp.sum(coef * coef, -1, keepdims=True)
    init = (jnp.zeros_like(coef), coef, coef, rr0)
    _, ws = jax.lax.scan(step, init, None, length=steps)
    return jnp.concatenate([jnp.zeros_like(coef)[None], ws], 0)  # weights in the eigenbasis


def _from_eigenbasis(vecs: jax.Array, w_eig: jax.Array) -> jax.Array:
    """V w̃: (B, n, d, d), (T, B, n, d) -> (T, B, n, d)."""
    return einsum("bnde,tbne->tbnd", vecs, w_eig)


@partial(jax.jit, static_argnames="steps")
def newton_iterates(xs: jax.Array, ys: jax.Array, steps: int) -> jax.Array:
    """Newton–Schulz weights w_t = M_t b for t = 0..steps: (steps + 1, B, n, d)."""
    lam, vecs, coef = spectral_prefixes(xs, ys)
    return _from_eigenbasis(vecs, _newton_factors(lam, steps) * coef)


@partial(jax.jit, static_argnames="normalised")
def gd_iterates(xs: jax.Array, ys: jax.Array, eta: jax.Array, steps: jax.Array,
                normalised: bool = False) -> jax.Array:
    """GD weights after each count in `steps` (T,): (T, B, n, d). eta: scalar, (n,) or (T, n).

    normalised: the step is η / ‖S‖₂ for each prompt and prefix (stable for every η < 2, so a
    step size tuned on some prompts cannot diverge on others after thousands of steps).
    """
    lam, vecs, coef = spectral_prefixes(xs, ys)
    eta = jnp.asarray(eta, xs.dtype)
    eta = jnp.broadcast_to(eta, (steps.shape[0], xs.shape[1]))[:, None, :, None]  # (T, 1, n, 1)
    if normalised:
        top = lam[..., -1:]  # (B, n, 1)
        eta = eta / jnp.where(top > 0, top, 1.0)  # (T, B, n, 1)
    return _from_eigenbasis(vecs, _gd_factors(lam, eta, steps) * coef)


@partial(jax.jit, static_argnames="steps")
def cg_iterates(xs: jax.Array, ys: jax.Array, steps: int) -> jax.Array:
    """CG weights for t = 0..steps: (steps + 1, B, n, d)."""
    lam, vecs, coef = spectral_prefixes(xs, ys)
    return _from_eigenbasis(vecs, _cg_factors(lam, coef, steps))


@partial(jax.jit, static_argnames="passes")
def online_gd_iterates(xs: jax.Array, ys: jax.Array, eta: jax.Array, passes: int) -> jax.Array:
    """Online GD weights after 1..passes passes over each prefix: (passes, B, n, d).

    Prefix i's weights run over pairs j < i in order (the others are masked), so every prefix
    is updated at once by one scan over j per pass. eta: scalar, (n,) or (passes, n).
    """
    batch, n, d = xs.shape
    eta = jnp.broadcast_to(jnp.asarray(eta, xs.dtype), (passes, n))[:, None, :, None]
    prefix = jnp.arange(n)  # prefix i uses pairs j < i

    def one_pass(w, eta_p):  # w (B, n, d): every prefix's weights
        def visit(w, j):
            x_j, y_j = xs[:, j], ys[:, j]  # (B, d), (B,)
            resid = y_j[:, None] - einsum("bnd,bd->bn", w, x_j)  # (B, n)
            step = (eta_p * (prefix > j)[None, :, None]) * resid[..., None] * x_j[:, None]
            return w + step, None

        w, _ = jax.lax.scan(visit, w, jnp.arange(n))
        return w, w

    _, ws = jax.lax.scan(one_pass, jnp.zeros((batch, n, d), xs.dtype), eta)
    return ws  # (passes, B, n, d)


@register_baseline("newton", linear=True, required=("steps",))
def newton_weights(xs: jax.Array, ys: jax.Array, steps: int) -> jax.Array:
    """`steps` Newton–Schulz iterations for every prefix: (B, n, d)."""
    return newton_iterates(xs, ys, int(steps))[-1]


@register_baseline("cg", linear=True, required=("steps",))
def cg_weights(xs: jax.Array, ys: jax.Array, steps: int) -> jax.Array:
    """`steps` conjugate-gradient steps from 0 for every prefix: (B, n, d)."""
    return cg_iterates(xs, ys, int(steps))[-1]


@register_baseline("online_gd", linear=True, required=("eta",))
def online_gd_weights(xs: jax.Array, ys: jax.Array, eta, passes: int = 1) -> jax.Array:
    """Online GD over each prefix (`passes` passes, step η, scalar or (n,)): (B, n, d)."""
    return online_gd_iterates(xs, ys, jnp.asarray(eta, xs.dtype), int(passes))[-1]


# --- the iteration axis: every algorithm at a list of iteration counts, for the matching ---

ALGORITHMS = ("newton", "gd", "cg", "online_gd")
TUNED = ("gd", "online_gd")  # need a step size η per (iteration count, position)
ETA_GRID = np.logspace(-3, 0, 31)
NORMALISED_ETA_GRID = np.linspace(0.05, 1.95, 39)  # η / ‖S‖₂: GD is stable for η < 2


def iterate_weights(name: str, xs: jax.Array, ys: jax.Array, iterations, eta=None,
                    normalised: bool = False) -> jax.Array:
    """Weights of algorithm `name` after each count in `iterations`: (T, B, n, d).

    newton / cg: t = 0, 1, ... iterations (t = 0 is M₀ b for Newton, 0 for CG); gd: t steps;
    online_gd: t passes (t ≥ 1). eta (gd, online_gd): scalar, (n,) or (T, n); normalised
    (gd only): the step is η / ‖S‖₂ per prompt and prefix.
    """
    its = np.asarray(iterations, int)
    if name in ("newton", "cg"):
        run = newton_iterates if name == "newton" else cg_iterates
        return run(xs, ys, int(its.max()))[its]
    if name not in TUNED:
        raise ValueError(f"algorithm {name!r} is unknown; allowed: {', '.join(ALGORITHMS)}")
    if eta is None:
        raise ValueError(f"algorithm {name!r} needs eta (see tune_iteration_eta)")
    eta = np.broadcast_to(np.asarray(eta, np.float32), (len(its), xs.shape[1]))  # (T, n)
    if name == "gd":
        return gd_iterates(xs, ys, eta, jnp.asarray(its), normalised)
    if its.min() < 1:
        raise ValueError("online_gd iterations are passes over the prefix: each must be >= 1")
    # One constant η over the t passes of each reported iterate: one run per count.
    return jnp.stack([online_gd_iterates(xs, ys, jnp.asarray(eta[i]), int(t))[-1]
                      for i, t in enumerate(its)])


def iterate_predictions(name: str, xs, ys, iterations, eta=None,
                        normalised: bool = False) -> jax.Array:
    """preds[t, :, i] = w_t(prefix i) · x_i: (T, B, n)."""
    ws = iterate_weights(name, xs, ys, iterations, eta, normalised)
    return einsum("tbnd,bnd->tbn", ws, xs)


def tune_iteration_eta(name: str, xs, ys, iterations, grid=None,
                       normalised: bool = False) -> np.ndarray:
    """Step size per (iteration count, position) minimising the held-out squared error: (T, n).

    A grid (default 10⁻³…10⁰, 31 log-spaced values; normalised GD: 0.05…1.95 × 1/‖S‖₂),
    searched for every count at once; one
    constant η over all passes of online GD. Position 0 has no context: η = 0 there.
    """
    default = NORMALISED_ETA_GRID if normalised else ETA_GRID
    grid = default if grid is None else np.asarray(grid)
    errors = []
    for value in grid:
        preds = iterate_predictions(name, xs, ys, iterations, np.float32(value),
                                    normalised)  # (T, B, n)
        err = np.mean((np.asarray(preds, np.float64) - np.asarray(ys)[None]) ** 2, axis=1)
        errors.append(np.nan_to_num(err, nan=np.inf))  # (T, n)
    eta = grid[np.argmin(np.stack(errors), axis=0)]  # (T, n)
    eta[:, 0] = 0.0
    return eta
