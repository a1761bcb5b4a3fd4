"""Scoring one evaluation setting: errors, SPD, accuracy, per-component scores, ILWD."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from icl_regression.config import TaskConfig
from icl_regression.data import shifts
from icl_regression.data.families import Family
from icl_regression.evaluate import metrics
from icl_regression.evaluate.selection import accuracy_curves, component_scores
from icl_regression.run import chunked
from icl_regression.storage import finite_or_none


class SettingContext(NamedTuple):
    """What every setting's evaluation shares."""

    task: TaskConfig
    family: Family
    cfg: object  # EvalConfig
    model: object
    predict_all: object  # (xs, ys) -> {name: preds}; expensive baselines on the first rows only
    all_weights: object  # (xs, ys) -> {name: (B, n, d)}
    queries: np.ndarray  # (count, m, d) fresh queries of the implicit fit
    component: np.ndarray  # (B,) each prompt's mixture component
    query_model: object = None  # (xs, ys, queries (B, n, m, d)) -> (B, n, m), or None


def evaluate_setting(name, prompts, ctx: SettingContext):
    n = prompts.xs.shape[1]
    if prompts.eval_position is None:
        mask = np.ones(prompts.ys.shape, bool)
    else:
        mask = np.arange(n)[None, :] == np.asarray(prompts.eval_position)[:, None]  # (B, n)
    scored = mask.any(axis=0)  # the positions reported for this setting
    ys = np.asarray(prompts.ys)
    normaliser = float(np.mean(np.asarray(ys, np.float64)[mask] ** 2))
    preds = ctx.predict_all(prompts.xs, prompts.ys)
    errors = {p: {stat: finite_or_none(curve[scored]) for stat, curve in metrics.error_curve(
                  pr, ys[:len(pr)], normaliser, mask[:len(pr)]).items()}
              for p, pr in preds.items()}
    result = {"description": shifts.SHIFTS.get(name).description,
              "k": np.flatnonzero(scored).tolist(),
              "n_prompts_per_k": mask.sum(axis=0)[scored].tolist(), "normaliser": normaliser,
              "error": errors, "spd": {}, "ilwd": {}, "ilwd_r2": [], "sensitivity_cos": {}}
    if ctx.family.classification:
        result["accuracy"] = accuracy_curves(preds, ys, mask, scored)
    if name == "train" and ctx.family.components(ctx.task):
        result["components"] = component_scores(ctx.family, ctx.task, prompts, ctx.component,
                                                preds, mask, scored)
    if ctx.model is None:
        return result
    result["spd"] = {p: finite_or_none(metrics.spd_curve(preds["model"][:len(pr)], pr, normaliser,
                                                mask[:len(pr)])[scored])
                     for p, pr in preds.items() if p != "model"}
    if (name not in ctx.cfg.implicit_settings or prompts.eval_position is not None
            or not ctx.family.has_w):  # ILWD and sensitivity compare against a w
        return result
    implicit_scores(result, prompts, ctx)
    return result


def implicit_scores(result: dict, prompts, ctx: SettingContext) -> None:
    """ILWD and sensitivity of the model against each weight baseline, into `result`."""
    model, queries = ctx.model, ctx.queries
    count = queries.shape[0]
    xs, ys = prompts.xs[:count], prompts.ys[:count]
    # The model sees m (or d) copies of each prompt here: chunk so a call holds ~`chunk` prompts.
    m, d = queries.shape[1], queries.shape[2]
    if ctx.query_model is not None:  # one pass per prompt (`Run.query_function`)
        preds_fn, grads_fn = (functools.partial(f, ctx.query_model)
                              for f in (_one_pass_query_preds, _one_pass_query_grads))
    else:  # any predictor: one forward per point
        preds_fn, grads_fn = (functools.partial(f, model) for f in (_query_preds, _query_grads))
    query_preds = chunked(preds_fn, (xs, ys, queries), max(ctx.cfg.chunk // m, 1))
    grads = chunked(grads_fn, (xs, ys), max(ctx.cfg.chunk // d, 1))
    w_hat, r2 = _implicit_weights(query_preds, jnp.asarray(queries))
    w_norm2 = float(np.mean(np.sum(np.asarray(prompts.ws[:count], np.float64) ** 2, axis=-1)))
    result["ilwd_r2"] = finite_or_none(r2)
    # The weights of all the setting's prompts, then the first `count`: the baselines are
    # compiled for that shape already (their predictions), a `count`-prompt call compiles anew.
    for p, w_all in ctx.all_weights(prompts.xs, prompts.ys).items():  # (B, n, d) each
        w_base = np.asarray(w_all)[:count]  # (count, n, d)
        result["ilwd"][p] = finite_or_none(metrics.ilwd_curve(w_hat, w_base, w_norm2))
        result["sensitivity_cos"][p] = finite_or_none(metrics.cosine_curve(grads, w_base))


@jax.jit
def _one_pass_query_preds(query_model, xs, ys, queries):
    """metrics.query_predictions through a one-pass query model: (B, n, m)."""
    n = xs.shape[1]
    return query_model(xs, ys, jnp.broadcast_to(queries[:, None], (queries.shape[0], n)
                                                + queries.shape[1:]))  # (B, n, m)


@jax.jit
def _one_pass_query_grads(query_model, xs, ys):
    """metrics.query_gradients through a one-pass query model: ∂ŷ_i/∂x_i (B, n, d). Point i's
    prediction depends on its own query only, so one JVP per coordinate serves every i."""
    pred = lambda x: query_model(xs, ys, x[:, :, None, :])[..., 0]  # (B, n, d) -> (B, n)
    tangents = jnp.eye(xs.shape[-1], dtype=xs.dtype)[:, None, None, :]  # (d, 1, 1, d)
    jvp = lambda t: jax.jvp(pred, (xs,), (jnp.broadcast_to(t, xs.shape),))[1]
    return jax.vmap(jvp, out_axes=-1)(tangents)  # (B, n, d)


_query_preds = jax.jit(metrics.query_predictions)
_query_grads = jax.jit(metrics.query_gradients)
_implicit_weights = jax.jit(metrics.implicit_weights)
