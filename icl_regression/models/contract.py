"""The model contract: what training, `Run`, evaluation, probes, the layer-by-layer analysis,
the attention maps and the experiments may ask of a model, and all they may ask.

Every registered model (models/registry.py) is a Flax NNX module that satisfies `ICLModel`.
Downstream code never reads a model's config keys or parameter names; a new sequence model is
usable everywhere by implementing these members (tests/models/test_contract.py checks each
registered model against them).

Streams and tokens. A model reads the prompt as a sequence of T tokens (T = `n_tokens(n)`) and
keeps a hidden state of `width` numbers per token and layer: the residual stream of a
transformer, the hidden state of a recurrent or state-space model. `x_positions(n)[i]` is the
token whose hidden state the prediction for y_i is read from; `y_positions(n)[i]` the token that
holds y_i (None when labels share a token with the next query, as in the paired encoding).

Read-out. `lens(h)` maps any hidden state (..., width) to a scalar prediction (...): applied to
the last layer at the x tokens it gives the model's predictions; applied to earlier layers it is
the "lens" of the layer-by-layer analysis.

Optional. `training_predictions(xs, ys, step) -> (preds (W, B, n), weights (W,))`: a model
whose training loss spans several outputs that depend on the step (the looped model's window
of loops under its loop curriculum) gives them here, and the train loop minimises the
weighted mean of their losses; the GPT gives its own predictions as one window, computed
through a faster-to-differentiate form; every other model trains on `model(xs, ys)`.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import jax
import numpy as np


@runtime_checkable
class ICLModel(Protocol):
    """An in-context regression model `(xs (B, n, d), ys (B, n)) -> preds (B, n)`."""

    # Whether `intermediates` has "attention": (A, B, H, T, T), the weights of query tokens on
    # key tokens of each of the A attention layers applied (a GPT: A = n_layers; MambaFormer:
    # its attention blocks; looped: every layer of every loop). False for recurrent,
    # state-space and convolution models, which then have no attention maps.
    has_attention: ClassVar[bool]

    @property
    def n_layers(self) -> int:
        """Layers applied in a forward pass: `intermediates()["residuals"]` has n_layers + 1."""

    @property
    def max_points(self) -> int | None:
        """The longest prompt (in points) the model reads: a learned positional table limits
        it; None when nothing does (prompts longer than in training are then readable)."""

    def __call__(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
        """preds (B, n) float32; preds[:, i] uses only the pairs before i and x_i."""

    def intermediates(self, xs: jax.Array, ys: jax.Array) -> dict:
        """{"preds": (B, n), "residuals": (n_layers + 1, B, T, width) the hidden state after
        the read-in and after each layer, and "attention" where `has_attention`}."""

    def lens(self, hidden: jax.Array) -> jax.Array:
        """Hidden states (..., width) -> predictions (...) float32, as the last layer's are."""

    def n_tokens(self, n_points: int) -> int:
        """T: tokens of a prompt of n points (the token axis of `residuals`)."""

    def x_positions(self, n_points: int) -> np.ndarray:
        """(n,) token index at which the prediction for point i is read."""

    def y_positions(self, n_points: int) -> np.ndarray | None:
        """(n,) token index holding y_i, or None when no token holds a label alone."""


def check_contract(model: object) -> ICLModel:
    """`model` itself when it has every member of the contract; else a TypeError naming the
    missing ones."""
    names = ("has_attention", "n_layers", "max_points", "intermediates", "lens",
             "n_tokens", "x_positions", "y_positions")
    missing = [name for name in names if not hasattr(model, name)]
    if missing or not callable(model):
        raise TypeError(f"{type(model).__name__} does not satisfy the model contract "
                        f"(models/contract.py); missing: {', '.join(missing) or '__call__'}")
    return model  # type: ignore[return-value]
