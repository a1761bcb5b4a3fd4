"""Linear self-attention (LSA) over `[x, y]` tokens, after von Oswald et al. 2022.

Tokens and passes. Context token j is `e_j = [x_j, y_j]` (width D = d + 1); the query token of
point i is `[x_i, 0]`. Predicting at point i runs one *pass* whose context is pairs 0..i-1: every
context token attends to all context tokens of the pass (no causal order inside the context),
the query attends to them too, and nothing attends to the query. All n passes run at once as a
batched axis P with a (P, n) context mask, so the forward is jittable with no loop over points.

Layer (no softmax, no normalisation by the number of context tokens), for every token t:

    e_t <- e_t + sum_h W_PV^h C W_KQ^h e_t,    C = sum_{j in context} e_j e_j^T   (D, D)

i.e. the score of key j for query t is `e_j^T W_KQ^h e_t` and the value is `W_PV^h e_j`.
`W_KQ = K^T Q` and `W_PV = P V` are the paper's products; we parameterise them directly (with
key size D the factored and merged forms span the same functions), which makes the GD
construction and the interpolation between trained and constructed weights plain arithmetic.

Sign convention: the prediction is MINUS the query's y slot after the last layer,
`preds[:, i] = -e_query[d]`. The GD construction writes `-w_k^T x_q` into the query's y slot and
keeps each context token's y slot as the residual `y_j - w_k^T x_j`, so reading `-y` makes k
constructed layers equal k steps of GD (see `gd_construction`).

Options: `tie_layers` (one parameter set applied n_layer times: a recurrent model), `use_mlp`
(a GELU MLP after each attention, hidden mlp_ratio·D), `use_layernorm` (pre-LN on the inputs of
the attention and MLP branches; the residual stream itself is never normalised, so the y slot
keeps its scale). `d_model` does not apply (the stream is the token, and no positional table
limits n: its keys are config.LSAConfig); the computation runs in `param_dtype`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl_regression.config import LSAConfig, TaskConfig
from icl_regression.models.layers import DTYPES, layer_norm
from icl_regression.models.registry import MODELS

HIGHEST = jax.lax.Precision.HIGHEST
ATTENTION_KEYS = ("w_kq", "w_pv")
MLP_KEYS = ("w_fc", "b_fc", "w_proj", "b_proj")
LN_KEYS = ("ln1_scale", "ln1_bias", "ln2_scale", "ln2_bias")


def _layer(state, layer: dict, mask: jax.Array, use_mlp: bool, use_layernorm: bool):
    """One LSA layer on all passes. state = (context (B, P, n, D), query (B, P, D)).

    Returns the new state and the query's scores on its context keys (B, H, P, n)."""
    context, query = state
    tokens = jnp.concatenate([context, query[:, :, None]], 2)  # (B, P, n+1, D)
    a = layer_norm(tokens, layer["ln1_scale"], layer["ln1_bias"]) if use_layernorm else tokens
    keys = a[:, :, :-1] * mask[None, :, :, None]  # (B, P, n, D): only this pass's context
    cov = jnp.einsum("bpjd,bpje->bpde", keys, a[:, :, :-1], precision=HIGHEST)  # (B, P, D, D)
    # sum_h W_PV^h C W_KQ^h, one (D, D) map per pass applied to every token of the pass
    mixer = jnp.einsum("hde,bpef,hfg->bpdg", layer["w_pv"], cov, layer["w_kq"],
                       precision=HIGHEST)  # (B, P, D, D)
    tokens = tokens + jnp.einsum("bpdg,bptg->bptd", mixer, a, precision=HIGHEST)
    scores = jnp.einsum("bpjd,hde,bpe->bhpj", keys, layer["w_kq"], a[:, :, -1],
                        precision=HIGHEST)  # (B, H, P, n); zero off the pass's context
    if use_mlp:
        m = layer_norm(tokens, layer["ln2_scale"], layer["ln2_bias"]) if use_layernorm else tokens
        m = jax.nn.gelu(m @ layer["w_fc"] + layer["b_fc"])  # (B, P, n+1, hidden)
        tokens = tokens + m @ layer["w_proj"] + layer["b_proj"]
    return (tokens[:, :, :-1], tokens[:, :, -1]), scores


def lsa_forward(params: dict, xs: jax.Array, ys: jax.Array, *, n_layer: int,
                use_mlp: bool = False, use_layernorm: bool = False, capture: bool = False,
                passes: Sequence[int] | None = None):
    """Pure LSA forward. `params` maps names to stacked arrays with a leading layer axis of
    length n_layer, or 1 for tied layers (applied n_layer times). `passes`: the points to
    predict (default all; a tool that needs one position runs one pass instead of n).

    xs (B, n, d), ys (B, n) -> preds (B, P) (P = n by default), and when `capture`: residuals
    (L+1, B, P, D) (the query token of each pass: the state its prediction is read from) and
    attention (L, B, H, P, n) (the query of pass i scoring context j < i; zero for j >= i)."""
    # jitted: eager callers (tests, tools) compile once; under an outer jit it is inlined
    return _lsa_forward(params, xs, ys, n_layer=n_layer, use_mlp=use_mlp,
                        use_layernorm=use_layernorm, capture=capture,
                        passes=None if passes is None else tuple(int(p) for p in passes))


@partial(jax.jit, static_argnames=("n_layer", "use_mlp", "use_layernorm", "capture", "passes"))
def _lsa_forward(params: dict, xs: jax.Array, ys: jax.Array, *, n_layer: int,
                 use_mlp: bool, use_layernorm: bool, capture: bool,
                 passes: tuple[int, ...] | None):
    """The jitted body of `lsa_forward` (`passes` hashable)."""
    batch, n_points, d = xs.shape
    passes = np.arange(n_points) if passes is None else np.asarray(passes) % n_points  # (P,)
    dtype = params["w_kq"].dtype
    context = jnp.concatenate([xs, ys[..., None]], -1).astype(dtype)  # (B, n, D)
    query = jnp.concatenate([xs[:, passes], jnp.zeros((batch, len(passes), 1), xs.dtype)],
                            -1).astype(dtype)  # (B, P, D): [x_i, 0]
    context = jnp.broadcast_to(context[:, None], (batch, len(passes), n_points, d + 1))
    mask = jnp.asarray(np.arange(n_points)[None, :] < passes[:, None], dtype)  # (P, n)
    stacked = {k: jnp.broadcast_to(v, (n_layer, *v.shape[1:])) for k, v in params.items()}

    def body(state, layer):
        state, scores = _layer(state, layer, mask, use_mlp, use_layernorm)
        return state, ((state[1], scores) if capture else None)

    (_, query_out), per_layer = jax.lax.scan(body, (context, query), stacked)
    preds = -query_out[..., d].astype(jnp.float32)  # (B, P): minus the query's y slot
    if not capture:
        return preds, None
    residuals = jnp.concatenate([query[None], per_layer[0]], 0)  # (L+1, B, P, D)
    return preds, {"residuals": residuals, "attention": per_layer[1]}


@MODELS.register("lsa")
class LSA(nnx.Module):
    """`model(xs, ys) -> preds (B, n)`; `model.intermediates(xs, ys)` adds hidden states.
    Satisfies the model contract (models/contract.py); its "attention" holds linear scores."""

    has_attention = True
    config_class = LSAConfig  # its keys (config/models.py)
    max_points = None  # no positional table: any prompt length

    def __init__(self, model: LSAConfig, task: TaskConfig, *, rngs: nnx.Rngs,
                 init_std: float = 0.02):
        self.n_layer = model.n_layer
        self.tie_layers = model.tie_layers
        self.use_mlp = model.use_mlp
        self.use_layernorm = model.use_layernorm
        dtype = DTYPES[model.param_dtype]
        width = task.d + 1
        hidden = model.mlp_ratio * width
        stored = 1 if model.tie_layers else model.n_layer  # parameter sets

        def normal(std: float, *shape: int) -> nnx.Param:
            return nnx.Param(std * jax.random.normal(rngs.params(), (stored, *shape), dtype))

        def const(value: float, *shape: int) -> nnx.Param:
            return nnx.Param(jnp.full((stored, *shape), value, dtype))

        # Small init: the layer is bilinear in (W_KQ, W_PV), so the origin is a saddle that a
        # small random start leaves quickly; a large one starts far from the GD solution.
        self.w_kq = normal(init_std, model.n_head, width, width)
        self.w_pv = normal(init_std, model.n_head, width, width)
        if model.use_mlp:
            self.w_fc = normal(1 / np.sqrt(width), width, hidden)
            self.b_fc = const(0.0, hidden)
            self.w_proj = normal(init_std / np.sqrt(hidden), hidden, width)
            self.b_proj = const(0.0, width)
        if model.use_layernorm:
            self.ln1_scale, self.ln1_bias = const(1.0, width), const(0.0, width)
            self.ln2_scale, self.ln2_bias = const(1.0, width), const(0.0, width)

    def param_dict(self) -> dict:
        """The stacked parameter arrays by name (leading axis: layer, or 1 if tied)."""
        names = ATTENTION_KEYS + (MLP_KEYS if self.use_mlp else ()) + (
            LN_KEYS if self.use_layernorm else ())
        return {name: getattr(self, name)[...] for name in names}

    def _forward(self, xs, ys, capture: bool):
        return lsa_forward(self.param_dict(), xs, ys, n_layer=self.n_layer,
                           use_mlp=self.use_mlp, use_layernorm=self.use_layernorm,
                           capture=capture)

    def __call__(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
        """xs (B, n, d), ys (B, n) -> preds (B, n); preds[:, i] sees pairs < i and x_i."""
        return self._forward(xs, ys, capture=False)[0]

    def intermediates(self, xs: jax.Array, ys: jax.Array) -> dict:
        """preds (B, n); residuals (L+1, B, n, D): the query token of pass i after the input
        and after each layer (token index = point index, see `x_positions`); attention
        (L, B, H, n, n): unnormalised linear scores of query i on context keys j < i."""
        preds, captured = self._forward(xs, ys, capture=True)
        return {"preds": preds, **captured}

    @property
    def n_layers(self) -> int:
        return self.n_layer

    def lens(self, hidden: jax.Array) -> jax.Array:
        """(..., D) -> (...): minus the y slot, as the prediction is read."""
        return -hidden[..., -1].astype(jnp.float32)

    def n_tokens(self, n_points: int) -> int:
        return n_points  # one query token per pass

    def x_positions(self, n_points: int) -> np.ndarray:
        return np.arange(n_points)  # residuals hold one query token per point

    def y_positions(self, n_points: int) -> None:
        return None  # labels live in context tokens, not in the query stream


def gd_construction(d: int, eta: float | Sequence[float], n_layers: int,
                    gamma: float | Sequence[float] = 0.0, n_head: int = 1) -> dict:
    """LSA weights for which layer l does one GD step on L(w) = ½ Σ_j (wᵀx_j − y_j)² over the
    pass's context (step size η_l, from w = 0 at layer 1), von Oswald et al. 2022, App. A.1:

        W_KQ = [[I_d, 0], [0, 0]],   W_PV = [[−γ_l I_d, 0], [0, −η_l]]

    The y block gives Δy_t = −η_l Σ_j r_j x_jᵀ x_t, with r_j the context's current y slot (the
    residual y_j − w_lᵀx_j), so the query's y slot after k layers is −w_kᵀx_q and the
    prediction (minus that slot) is k-step GD; one layer predicts η Σ_j y_j x_jᵀ x_q.
    (The paper's step on the mean loss, η'/N, is η = η'/N here.)
    γ_l ≠ 0 adds GD++'s input transformation x_t ← (I − γ_l Σ_j x_j x_jᵀ) x_t in the same
    layer. With n_head > 1 the map is split evenly over the heads.
    Returns {"w_kq", "w_pv"}: (n_layers, n_head, d+1, d+1) float32 arrays."""
    etas = jnp.broadcast_to(jnp.asarray(eta, jnp.float32), (n_layers,))
    gammas = jnp.broadcast_to(jnp.asarray(gamma, jnp.float32), (n_layers,))
    x_block = jnp.diag(jnp.concatenate([jnp.ones(d), jnp.zeros(1)]))  # (D, D)
    y_block = jnp.zeros((d + 1, d + 1)).at[d, d].set(1.0)  # (D, D)
    w_kq = jnp.broadcast_to(x_block, (n_layers, n_head, d + 1, d + 1))
    w_pv = -(gammas[:, None, None] * x_block + etas[:, None, None] * y_block) / n_head
    w_pv = jnp.broadcast_to(w_pv[:, None], (n_layers, n_head, d + 1, d + 1))
    return {"w_kq": w_kq, "w_pv": w_pv}


def lsa_config(n_layer: int, n_head: int = 1, tie_layers: bool = False) -> LSAConfig:
    """A plain LSA (no MLP, no LayerNorm): the architecture the GD construction fills."""
    return LSAConfig(name="lsa", n_layer=n_layer, n_head=n_head, d_model=n_head,
                       tie_layers=tie_layers)


def constructed_lsa(d: int, eta: float | Sequence[float], n_layers: int,
                    gamma: float | Sequence[float] = 0.0, n_head: int = 1,
                    tie_layers: bool = False) -> LSA:
    """An LSA module holding `gd_construction` weights (tied: one set, needs equal η, γ)."""
    weights = gd_construction(d, eta, n_layers, gamma, n_head)
    if tie_layers:
        for name, w in weights.items():
            if not bool(jnp.all(w == w[:1])):
                raise ValueError(f"tie_layers=True needs the same {name} in every layer; "
                                 "pass scalar eta and gamma")
        weights = {name: w[:1] for name, w in weights.items()}
    model = LSA(lsa_config(n_layers, n_head, tie_layers), TaskConfig(d=d, n_points=1),
                rngs=nnx.Rngs(params=0))
    return with_weights(model, weights)


def with_weights(model: LSA, weights: dict) -> LSA:
    """A copy of `model` with some parameter arrays replaced (same shapes)."""
    model = nnx.clone(model)
    for name, value in weights.items():
        current = getattr(model, name)
        if current[...].shape != value.shape:
            raise ValueError(f"{name}: shape {value.shape} does not fit {current[...].shape}")
        current[...] = jnp.asarray(value, current[...].dtype)
    return model
