"""Compare a trained model with gradient descent in context (von Oswald et al. 2022).

Every predictor here has the project's signature `(xs (B, n, d), ys (B, n)) -> preds (B, n)`
(a model, `Run.predict`, or a constructed GD model), so the prediction and sensitivity tools
apply to the GPT model too. The weight-space tools (rescaling, interpolation) need an LSA.

* `loss_at`: mean squared error at one position (default: the last, N = n - 1 pairs).
* `compare_predictors`: mean squared prediction difference, and the cosine / L2 distance
  between the sensitivities ∂ŷ/∂x_query of two predictors, prompt by prompt.
* `optimal_gd_eta`: the step size minimising k-step GD's loss (line search on given prompts).
* `fit_gd_plus_plus`: per-layer (η_l, γ_l) of the GD++ construction fitted by L-BFGS.
* `rescale_key_query`, `interpolation_losses`: trained weights rescaled so the key-query x block
  has unit mean diagonal (the function is unchanged), then the straight path to the
  construction with the loss along it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from icl_regression.models.lsa import LSA, gd_construction, lsa_forward, with_weights

Predictor = Callable[[jax.Array, jax.Array], jax.Array]


def loss_at(predict: Predictor, xs: jax.Array, ys: jax.Array, position: int | None = -1):
    """Mean squared error at `position` (None: averaged over all positions)."""
    preds = predict(xs, ys)  # (B, n)
    sq = jnp.square(preds - ys)
    return float(sq.mean() if position is None else sq[:, position].mean())


def query_sensitivity(predict: Predictor, xs: jax.Array, ys: jax.Array,
                      position: int = -1) -> jax.Array:
    """∂ŷ_position / ∂x_position for every prompt: (B, d). Prompts are independent, so the
    gradient of the batch sum is the per-prompt gradient."""
    position = position % xs.shape[1]

    def summed(x_query):  # (B, d)
        return predict(xs.at[:, position].set(x_query), ys)[:, position].sum()

    return jax.grad(summed)(xs[:, position])


def compare_predictors(predict_a: Predictor, predict_b: Predictor, xs: jax.Array,
                       ys: jax.Array, position: int = -1) -> dict:
    """Prediction difference and sensitivity alignment of A with B at `position`.

    pred_diff: mean (ŷ_A − ŷ_B)²; cosine: mean over prompts of cos(∂ŷ_A/∂x_q, ∂ŷ_B/∂x_q);
    l2: mean ‖∂ŷ_A/∂x_q − ∂ŷ_B/∂x_q‖; l2_rel: the same divided by mean ‖∂ŷ_B/∂x_q‖."""
    pred_a, pred_b = predict_a(xs, ys)[:, position], predict_b(xs, ys)[:, position]  # (B,)
    grad_a = query_sensitivity(predict_a, xs, ys, position)  # (B, d)
    grad_b = query_sensitivity(predict_b, xs, ys, position)  # (B, d)
    norm_b = jnp.linalg.norm(grad_b, axis=-1)  # (B,)
    cosine = (grad_a * grad_b).sum(-1) / jnp.maximum(
        jnp.linalg.norm(grad_a, axis=-1) * norm_b, 1e-30)
    l2 = jnp.linalg.norm(grad_a - grad_b, axis=-1).mean()
    return {"pred_diff": float(jnp.square(pred_a - pred_b).mean()),
            "cosine": float(cosine.mean()), "l2": float(l2),
            "l2_rel": float(l2 / jnp.maximum(norm_b.mean(), 1e-30))}


def gd_predictor(d: int, eta, n_steps: int, gamma=0.0) -> Predictor:
    """k-step GD (γ ≠ 0: GD++) as a predictor, through the constructed LSA weights."""
    weights = gd_construction(d, eta, n_steps, gamma)
    return lambda xs, ys: lsa_forward(weights, xs, ys, n_layer=n_steps)[0]


@partial(jax.jit, static_argnames=("n_steps", "position"))
def _gd_loss(etas, gammas, xs, ys, n_steps: int, position: int):
    """Squared error at `position` of the GD(++) construction with per-layer (η, γ); inf when
    it diverges. The prompts are arguments (not closed over) so XLA does not fold them."""
    d = xs.shape[-1]
    preds = lsa_forward(gd_construction(d, etas, n_steps, gammas), xs, ys, n_layer=n_steps,
                        passes=(position,))[0]  # (B, 1): one pass is enough
    value = jnp.square(preds[:, 0] - ys[:, position]).mean()
    return jnp.where(jnp.isfinite(value), value, jnp.inf)


def optimal_gd_eta(xs: jax.Array, ys: jax.Array, n_steps: int = 1, position: int = -1,
                   iterations: int = 40) -> float:
    """The one η (shared by all steps) minimising k-step GD's squared error at `position` on
    these prompts: a log-spaced grid around 1/E tr(S), then golden-section search in log η
    between the best grid point's neighbours."""
    position = position % xs.shape[1]
    at = lambda log_eta: float(_gd_loss(jnp.full((n_steps,), np.exp(log_eta)),
                                        jnp.zeros(n_steps), xs, ys, n_steps, position))
    # scale: the context's total second moment tr(S) = Σ_j ‖x_j‖² at this position
    trace = float(jnp.square(xs[:, :position]).sum((1, 2)).mean())
    grid = np.log(np.geomspace(1e-3, 1e2, 41) / max(trace, 1e-12))
    values = [at(g) for g in grid]
    best = int(np.argmin(values))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = at(a), at(b)
    for _ in range(iterations):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = at(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = at(b)
    candidates = [(values[best], grid[best]), (fa, a), (fb, b)]
    return float(np.exp(min(candidates)[1]))


def fit_gd_plus_plus(xs: jax.Array, ys: jax.Array, n_layers: int, position: int = -1,
                     iterations: int = 50) -> dict:
    """GD++ (von Oswald et al. 2022, Sec. 4): layer l transforms inputs x ← (I − γ_l S) x and
    takes a GD step η_l; per-layer (η_l, γ_l) fitted by L-BFGS on these prompts, starting at
    optimal-η GD (γ = 0). Returns {"eta": (L,), "gamma": (L,), "loss": float}."""
    position = position % xs.shape[1]
    eta0 = optimal_gd_eta(xs, ys, n_layers, position)
    params = {"eta": jnp.full((n_layers,), eta0), "gamma": jnp.zeros(n_layers)}
    solver = optax.lbfgs()
    state = solver.init(params)

    @jax.jit
    def step(params, state, xs, ys):
        objective = lambda p: _gd_loss(p["eta"], p["gamma"], xs, ys, n_layers, position)
        value, grad = optax.value_and_grad_from_state(objective)(params, state=state)
        updates, state = solver.update(grad, state, params, value=value, grad=grad,
                                       value_fn=objective)
        return optax.apply_updates(params, updates), state

    objective = lambda p: float(_gd_loss(p["eta"], p["gamma"], xs, ys, n_layers, position))
    start = objective(params)
    for _ in range(iterations):
        params, state = step(params, state, xs, ys)
    final = objective(params)
    if not np.isfinite(final) or final > start:  # L-BFGS wandered off: keep plain GD
        params, final = {"eta": jnp.full((n_layers,), eta0), "gamma": jnp.zeros(n_layers)}, start
    return {"eta": np.asarray(params["eta"]), "gamma": np.asarray(params["gamma"]),
            "loss": final}


def _plain_lsa(model: LSA) -> None:
    if model.use_mlp or model.use_layernorm:
        raise ValueError("weight-space comparison needs a plain LSA "
                         "(model.use_mlp=false, model.use_layernorm=false)")


def rescale_key_query(model: LSA) -> LSA:
    """Per layer and head, divide W_KQ by c (the mean diagonal of its x block) and multiply
    W_PV by c: the layer is bilinear in the two, so predictions are unchanged, and the trained
    W_KQ becomes comparable with the construction's [[I, 0], [0, 0]]."""
    _plain_lsa(model)
    w_kq, w_pv = model.w_kq[...], model.w_pv[...]  # (L, H, D, D)
    d = w_kq.shape[-1] - 1
    scale = jnp.diagonal(w_kq[..., :d, :d], axis1=-2, axis2=-1).mean(-1)  # (L, H)
    scale = jnp.where(jnp.abs(scale) > 1e-12, scale, 1.0)[..., None, None]
    return with_weights(model, {"w_kq": w_kq / scale, "w_pv": w_pv * scale})


def weight_distance(model: LSA, target: LSA) -> dict:
    """Relative Frobenius distance ‖W − W*‖ / ‖W*‖ after rescaling `model`: W_KQ, W_PV, and
    W_PV's last row alone ("w_pv_y": what writes the y slot; in one layer the other rows only
    change x slots, which the prediction never reads, so they keep their initial noise)."""
    _plain_lsa(model)
    rescaled = rescale_key_query(model)
    pairs = {name: (getattr(rescaled, name)[...], getattr(target, name)[...])
             for name in ("w_kq", "w_pv")}
    pairs["w_pv_y"] = (pairs["w_pv"][0][..., -1, :], pairs["w_pv"][1][..., -1, :])
    return {name: float(jnp.linalg.norm(got - want) / jnp.linalg.norm(want))
            for name, (got, want) in pairs.items()}


def interpolation_losses(model: LSA, target: LSA, xs: jax.Array, ys: jax.Array,
                         alphas, position: int = -1) -> np.ndarray:
    """Loss at `position` along W(α) = (1 − α) W_rescaled + α W_target (α = 0: the trained
    model, 1: the construction); both LSAs must share layers, heads and tying."""
    _plain_lsa(model)
    start = rescale_key_query(model)
    for name in ("w_kq", "w_pv"):
        if getattr(start, name)[...].shape != getattr(target, name)[...].shape:
            raise ValueError(f"{name}: trained {getattr(start, name)[...].shape} vs target "
                             f"{getattr(target, name)[...].shape}; build the target with the "
                             "same n_layer, n_head and tie_layers")
    begin = {k: getattr(start, k)[...] for k in ("w_kq", "w_pv")}
    end = {k: getattr(target, k)[...] for k in ("w_kq", "w_pv")}

    @jax.jit
    def loss(alpha, begin, end, xs, ys):
        weights = {k: (1 - alpha) * begin[k] + alpha * end[k] for k in begin}
        preds = lsa_forward(weights, xs, ys, n_layer=model.n_layer, passes=[position])[0]
        return jnp.square(preds[:, 0] - ys[:, position]).mean()

    return np.array([float(loss(jnp.float32(a), begin, end, xs, ys)) for a in alphas])
