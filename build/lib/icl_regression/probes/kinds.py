"""Probe kinds, each fitted for every (target, layer, position) at once.

Shapes shared by every function here:

* `acts (L, N, T, D)`: hidden states of L chosen layers at tokens 0..T-1 for N prompts;
* `positions (P,)`: the probed token indices (< T);
* `targets (G, N, P, d)`: G targets at each probed position;
* a `Split` of the N prompts into train / validation / test.

Each kind is trained on the train split, picks its hyper-parameters (ridge λ; the early-stopping
point) on the validation split, and returns held-out predictions `(G, L, P, N_test, d)`; `score`
turns them into R² and MSE per (target, layer, position).

* linear: closed-form ridge in float64, one batched eigendecomposition of every (layer, position)
  covariance, then a λ grid (scaled by the mean eigenvalue) searched per target on validation.
* mlp: one hidden ReLU layer on the hidden state at the position.
* attention: a learned softmax over tokens 0..t of the layer (score = query · h_j + a learned
  per-token bias), pooling the hidden states, then a linear read-out (Akyürek et al. 2022).
  Tokens after t are masked out: they hold later pairs, which would leak the answer.
* attention_mlp: the same pooling followed by a one-hidden-layer ReLU MLP read-out (Akyürek et
  al. 2022's probe: the encoding need not be linear).

MLP and attention probes train with Adam on standardised inputs and targets, all groups in one
vmapped-by-einsum model; each group keeps its parameters from its best validation check, and
training stops once the best validation losses summed over groups improved by less than 0.1%
over the last `patience` checks (or at `max_steps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from icl_regression.probes.registry import register_probe_kind

DEFAULT_PROBES = ("linear", "mlp", "attention")  # what runs when no kind is asked for
LINEAR_ALPHAS = 10.0 ** np.arange(-8.0, 2.5, 0.5)  # ridge λ / mean eigenvalue of XᵀX
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # train, validation, test
MIN_STD = 1e-6  # features or targets with a smaller spread are constant: left unscaled


@dataclass(frozen=True)
class FitOptions:
    """Training of the MLP and attention probes (the linear probe is closed form)."""

    hidden: int = 64  # MLP hidden width (unused by the attention probe)
    learning_rate: float = 3e-3
    batch_size: int = 256
    max_steps: int = 2000
    eval_every: int = 50  # steps between validation checks
    patience: int = 4  # checks with < 0.1% total improvement before training stops


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @staticmethod
    def random(seed: int | tuple[int, ...], n_prompts: int) -> Split:
        order = np.random.default_rng(seed).permutation(n_prompts)
        n_train = int(round(SPLIT_FRACTIONS[0] * n_prompts))
        n_val = int(round(SPLIT_FRACTIONS[1] * n_prompts))
        return Split(np.sort(order[:n_train]), np.sort(order[n_train:n_train + n_val]),
                     np.sort(order[n_train + n_val:]))


def score(preds: np.ndarray, targets: np.ndarray, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Held-out R² and MSE per (target, layer, position): (G, L, P) each.

    R² = 1 − Σ‖ŷ − y‖² / Σ‖y − ȳ‖² over test prompts, pooled over the d coordinates (ȳ: the
    test mean); NaN where the target is constant (e.g. every prefix target at k = 0).
    MSE = mean over test prompts of ‖ŷ − y‖² (the zero predictor of w scores E‖w‖², 1 by default).
    """
    truth = np.moveaxis(targets[:, split.test], 1, 2)[:, None]  # (G, 1, P, Nte, d)
    sse = np.sum((preds - truth) ** 2, axis=(-2, -1))  # (G, L, P)
    sst = np.sum((truth - truth.mean(axis=-2, keepdims=True)) ** 2, axis=(-2, -1))
    constant = sst <= 1e-12 * truth.shape[-2] * truth.shape[-1]
    r2 = np.where(constant, np.nan, 1.0 - sse / np.where(constant, 1.0, sst))
    return r2, sse / truth.shape[-2]


def _standardise(values: np.ndarray, train: np.ndarray, axis: int):
    """(values − mean) / std with train-split statistics along `axis` (the prompt axis)."""
    train_values = np.take(values, train, axis=axis)
    mean = train_values.mean(axis=axis, keepdims=True)
    std = train_values.std(axis=axis, keepdims=True)
    std = np.where(std < MIN_STD, 1.0, std)
    return (values - mean) / std, mean, std


def linear_probe(acts: np.ndarray, positions: np.ndarray, targets: np.ndarray,
                 split: Split) -> np.ndarray:
    """Closed-form ridge, λ chosen per (target, layer, position) on validation -> test preds."""
    n_targets, _, n_pos, d = targets.shape
    x, _, _ = _standardise(acts[:, :, positions].astype(np.float64), split.train, axis=1)
    x = np.moveaxis(x, 1, 2)  # (L, P, N, D)
    y = np.moveaxis(targets, 0, 2).reshape(targets.shape[1], n_pos, n_targets * d)  # (N, P, Gd)
    y_mean = y[split.train].mean(0)  # (P, Gd)
    y_train = np.moveaxis(y[split.train] - y_mean, 0, 1)  # (P, Ntr, Gd)
    x_train_t = np.swapaxes(x[:, :, split.train], -1, -2)  # (L, P, D, Ntr)
    evals, evecs = np.linalg.eigh(x_train_t @ np.swapaxes(x_train_t, -1, -2))  # XᵀX per group
    evals = np.maximum(evals, 0.0)  # (L, P, D); evecs (L, P, D, D)
    # Coefficients in the eigenbasis: (Vᵀ Xᵀ Y)_e / (e + λ); projections of every split reused.
    xty = np.swapaxes(evecs, -1, -2) @ (x_train_t @ y_train)  # (L, P, D, Gd)
    scale = np.maximum(evals.mean(-1), 1e-30)[..., None, None]  # (L, P, 1, 1)
    proj = {name: x[:, :, idx] @ evecs  # (L, P, N_split, D)
            for name, idx in (("val", split.val), ("test", split.test))}

    def predict(name: str, alpha: float) -> np.ndarray:  # (L, P, N_split, G, d)
        coef = xty / (evals[..., None] + alpha * scale)  # (L, P, D, Gd)
        preds = proj[name] @ coef + y_mean[None, :, None]  # (L, P, N_split, Gd)
        return preds.reshape(*preds.shape[:3], n_targets, d)

    y_val = np.transpose(targets[:, split.val], (2, 1, 0, 3))[None]  # (1, P, Nv, G, d)
    val_err = np.stack([np.sum((predict("val", a) - y_val) ** 2, axis=(2, 4))
                        for a in LINEAR_ALPHAS])  # (A, L, P, G)
    best = np.argmin(val_err, axis=0)  # (L, P, G)
    preds = np.zeros(best.shape[:2] + (len(split.test), n_targets, d))  # (L, P, Nte, G, d)
    for i, alpha in enumerate(LINEAR_ALPHAS):
        chosen = (best == i)[:, :, None, :, None]
        if chosen.any():
            preds = np.where(chosen, predict("test", alpha), preds)
    return np.moveaxis(preds, 3, 0)  # (G, L, P, Nte, d)


# --- trained probes: parameters carry leading (G, L, P) axes; apply -> (G, L, P, B, d) ---

def mlp_init(key, shape_glp, n_features, n_tokens, n_out, hidden):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (*shape_glp, n_features, hidden)) * (2 / n_features) ** .5,
            "b1": jnp.zeros((*shape_glp, hidden)),
            "w2": jax.random.normal(k2, (*shape_glp, hidden, n_out)) * (1 / hidden) ** .5,
            "b2": jnp.zeros((*shape_glp, n_out))}


def mlp_apply(params, acts, positions):
    """acts (L, B, T, D) standardised; reads the hidden state at each probed position."""
    x = acts[:, :, positions]  # (L, B, P, D)
    h = jnp.einsum("lbpd,glpdh->glpbh", x, params["w1"]) + params["b1"][..., None, :]
    return jnp.einsum("glpbh,glphe->glpbe", jax.nn.relu(h),
                      params["w2"]) + params["b2"][..., None, :]  # (G, L, P, B, d)


def attention_init(key, shape_glp, n_features, n_tokens, n_out, hidden):
    # Zero query and bias: the probe starts as a uniform average over the visible tokens.
    return {"query": jnp.zeros((*shape_glp, n_features)),
            "token_bias": jnp.zeros((*shape_glp, n_tokens)),
            "w_out": jax.random.normal(key, (*shape_glp, n_features, n_out)) * n_features ** -.5,
            "b_out": jnp.zeros((*shape_glp, n_out))}


def attention_pool(params, acts, positions):
    """acts (L, B, T, D) standardised; position t attends over tokens 0..t of its layer:
    the pooled hidden state (G, L, P, B, D)."""
    scores = jnp.einsum("lbtd,glpd->glpbt", acts, params["query"])  # (G, L, P, B, T)
    scores = scores + params["token_bias"][..., None, :]
    visible = jnp.arange(acts.shape[2])[None, :] <= positions[:, None]  # (P, T)
    scores = jnp.where(visible[None, None, :, None, :], scores, -jnp.inf)
    return jnp.einsum("glpbt,lbtd->glpbd", jax.nn.softmax(scores, axis=-1), acts)


def attention_apply(params, acts, positions):
    pooled = attention_pool(params, acts, positions)  # (G, L, P, B, D)
    return jnp.einsum("glpbd,glpde->glpbe", pooled,
                      params["w_out"]) + params["b_out"][..., None, :]  # (G, L, P, B, d)


# attention_mlp: Akyürek et al. 2022's probe (attention pooling, then an MLP read-out).
def attention_mlp_init(key, shape_glp, n_features, n_tokens, n_out, hidden):
    # Zero query and bias: the pooling starts as a uniform average over the visible tokens.
    return {"query": jnp.zeros((*shape_glp, n_features)),
            "token_bias": jnp.zeros((*shape_glp, n_tokens)),
            **mlp_init(key, shape_glp, n_features, n_tokens, n_out, hidden)}


def attention_mlp_apply(params, acts, positions):
    """acts (L, B, T, D) standardised -> (G, L, P, B, d)."""
    pooled = attention_pool(params, acts, positions)  # (G, L, P, B, D)
    h = jnp.einsum("glpbd,glpdh->glpbh", pooled, params["w1"]) + params["b1"][..., None, :]
    return jnp.einsum("glpbh,glphe->glpbe", jax.nn.relu(h),
                      params["w2"]) + params["b2"][..., None, :]  # (G, L, P, B, d)


TRAINED = {"mlp": (mlp_init, mlp_apply), "attention": (attention_init, attention_apply),
           "attention_mlp": (attention_mlp_init, attention_mlp_apply)}


@partial(jax.jit, static_argnames=("kind", "shapes", "hidden", "learning_rate"))
def _initial_state(key, *, kind, shapes, hidden, learning_rate):
    """Parameters, Adam state and each group's best-so-far (params, validation loss)."""
    shape_glp, n_features, n_tokens, n_out = shapes
    params = TRAINED[kind][0](key, shape_glp, n_features, n_tokens, n_out, hidden)
    best = (params, jnp.full(shape_glp, jnp.inf, jnp.float32))
    return params, optax.adam(learning_rate).init(params), best


def _group_loss(apply, params, acts, positions, targets):
    """Mean squared error per group: (G, L, P). targets (G, B, P, d)."""
    preds = apply(params, acts, positions)  # (G, L, P, B, d)
    truth = jnp.moveaxis(targets, 1, 2)[:, None]  # (G, 1, P, B, d)
    return jnp.mean((preds - truth) ** 2, axis=(-2, -1))


@partial(jax.jit, static_argnames="apply")
def _predict(params, acts, positions, *, apply):
    return apply(params, acts, positions)


@partial(jax.jit, static_argnames=("apply", "n_steps", "batch_size", "learning_rate"))
def _train_chunk(params, opt_state, best, key, data, *, apply, n_steps, batch_size,
                 learning_rate):
    """`n_steps` Adam steps, then one validation check updating each group's best state."""
    acts_train, targets_train, acts_val, targets_val, positions = data
    tx = optax.adam(learning_rate)

    def step(carry, step_key):
        params, opt_state = carry
        idx = jax.random.randint(step_key, (batch_size,), 0, acts_train.shape[1])
        loss = lambda p: _group_loss(apply, p, acts_train[:, idx], positions,
                                     targets_train[:, idx]).sum()  # groups are independent
        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, opt_state), _ = jax.lax.scan(step, (params, opt_state),
                                          jax.random.split(key, n_steps))
    val = _group_loss(apply, params, acts_val, positions, targets_val)  # (G, L, P)
    best_params, best_val = best
    improved = val < best_val
    keep = lambda new, old: jnp.where(improved.reshape(improved.shape + (1,) * (new.ndim - 3)),
                                      new, old)
    best = (jax.tree.map(keep, params, best_params), jnp.minimum(val, best_val))
    return params, opt_state, best, jnp.sum(best[1])


def trained_probe(kind: str, acts: np.ndarray, positions: np.ndarray, targets: np.ndarray,
                  split: Split, options: FitOptions, key: jax.Array,
                  progress: bool = False) -> np.ndarray:
    """Fit an `mlp` or `attention` probe for every group -> test predictions (G, L, P, Nte, d)."""
    n_targets, _, n_pos, d = targets.shape
    x, _, _ = _standardise(acts, split.train, axis=1)  # (L, N, T, D)
    y, y_mean, y_std = _standardise(targets, split.train, axis=1)  # (G, N, P, d)
    x, y = x.astype(np.float32), y.astype(np.float32)
    if kind not in TRAINED:
        raise ValueError(f"probe {kind!r} is not trained; allowed: {', '.join(TRAINED)}")
    apply = TRAINED[kind][1]
    init_key, key = jax.random.split(key)
    shapes = ((n_targets, acts.shape[0], n_pos), acts.shape[-1], acts.shape[2], d)
    params, opt_state, best = _initial_state(init_key, kind=kind, shapes=shapes,
                                             hidden=options.hidden,
                                             learning_rate=options.learning_rate)
    positions = jnp.asarray(positions)
    data = (x[:, split.train], y[:, split.train], x[:, split.val], y[:, split.val], positions)
    batch_size = min(options.batch_size, len(split.train))
    bar = tqdm(total=options.max_steps, desc=f"{kind} probes", unit="step", leave=False,
               disable=not progress, mininterval=1.0)
    history = []  # best validation loss summed over groups, after each check
    for done in range(0, options.max_steps, options.eval_every):
        n_steps = min(options.eval_every, options.max_steps - done)
        params, opt_state, best, total = _train_chunk(
            params, opt_state, best, jax.random.fold_in(key, done), data, apply=apply,
            n_steps=n_steps, batch_size=batch_size, learning_rate=options.learning_rate)
        bar.update(n_steps)
        history.append(float(total))
        if (len(history) > options.patience
                and history[-1] > (1 - 1e-3) * history[-1 - options.patience]):
            break
    bar.close()
    preds = _predict(best[0], x[:, split.test], positions, apply=apply)  # (G, L, P, Nte, d)
    mean, std = (np.moveaxis(s, 1, 2)[:, None] for s in (y_mean, y_std))  # (G, 1, P, 1, d)
    return np.asarray(preds, np.float64) * std + mean


register_probe_kind("linear", stream_id=0)(
    lambda acts, positions, targets, split, options, key, progress=False: linear_probe(
        acts, positions, targets, split))
for _stream_id, _name in enumerate(TRAINED, start=1):  # mlp 1, attention 2, attention_mlp 3
    register_probe_kind(_name, stream_id=_stream_id)(partial(trained_probe, _name))
