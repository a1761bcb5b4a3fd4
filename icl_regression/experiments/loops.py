"""The evaluation loop of each experiment: a loaded run in, a JSON-ready dict of numbers out.

Every function takes a `Run` (icl_regression.run) and `ExperimentOptions`, draws its prompts
from the run's "eval" stream (a sub-key per experiment, disjoint from training), and reports
squared errors divided by the zero predictor's expected error E y² of the evaluated prompts
(so 1 is trivial), as {"mean", "lo", "hi"} curves (95% band: mean ± 1.96 standard errors).
Labels are always clean in the scored query; corruption, when asked for, touches the context.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from icl_regression.baselines import get_baseline, huber
from icl_regression.config import TaskConfig
from icl_regression.data import context, tasks
from icl_regression.experiments.registry import EXPERIMENTS, ExperimentOptions, ExperimentSkipped
from icl_regression.models import count_params

# ---- shared pieces -----------------------------------------------------------------------

def band(sq_errors: np.ndarray) -> dict:
    """Mean over prompts (axis 0) and a 95% band: (B, ...) -> {"mean", "lo", "hi"} lists."""
    sq = np.asarray(sq_errors, np.float64)
    mean = sq.mean(axis=0)
    sem = sq.std(axis=0, ddof=1) / math.sqrt(sq.shape[0]) if sq.shape[0] > 1 else 0 * mean
    return {"mean": to_list(mean), "lo": to_list(mean - 1.96 * sem),
            "hi": to_list(mean + 1.96 * sem)}


def to_list(values) -> list:
    """Array -> JSON list; NaN/inf -> null."""
    return [float(v) if math.isfinite(v) else None for v in np.ravel(np.asarray(values, float))]


def clean_task(run) -> TaskConfig:
    """The run's task without training-time corruption: experiments corrupt explicitly."""
    return dataclasses.replace(run.config.task, corrupt_fraction=0.0)


def prompts(run, task: TaskConfig, experiment: str, part: int, count: int, opts):
    """Held-out prompts for one experiment: xs (B, n, d), ys (B, n), ws (B, d)."""
    return tasks.sample_prompts(experiment_key(run, experiment, part, opts), task, count,
                                run.config.seed)


def experiment_key(run, experiment: str, part: int, opts: ExperimentOptions) -> jax.Array:
    # Sub-keys 100+ of the eval stream (evaluate.py uses the first few).
    key = tasks.stream_key(run.config.seed + opts.seed, "eval")
    return jax.random.fold_in(key, 100 + 10 * EXPERIMENTS.index(experiment) + part)


def ridge_bayes(task: TaskConfig) -> Callable:
    """ridge(λ*), the Gaussian prior's posterior mean (λ* = 0 is min-norm OLS)."""
    return get_baseline("ridge", lam=tasks.bayes_ridge_lambda(task))


def shared_predict(run) -> Callable:
    """(state, xs, ys) -> preds, one compilation for every checkpoint of the same run."""
    graphdef, _ = nnx.split(run.model)
    return jax.jit(lambda state, xs, ys: nnx.merge(graphdef, state)(xs, ys))


def sq_error(preds, targets, normaliser: float) -> np.ndarray:
    return (np.asarray(preds, np.float64) - np.asarray(targets, np.float64)) ** 2 / normaliser


# ---- the seven experiments ---------------------------------------------------------------

def task_diversity(run, opts: ExperimentOptions) -> dict:
    """Error and SPD to dMMSE (Bayes for the pool) and ridge λ* (Bayes for the Gaussian prior),
    on pool tasks and on fresh tasks."""
    task = clean_task(run)
    predictors = {"model": run.predict, "ridge(lam=bayes)": ridge_bayes(task)}
    if task.pool_size > 0:
        sigma = task.noise_std or 0.1  # a noiseless pool posterior needs some likelihood width
        predictors["dmmse"] = get_baseline(
            "dmmse", pool=tasks.task_pool(run.config.seed, task), noise_std=sigma)
    settings = {"fresh": dataclasses.replace(task, pool_size=0)}
    if task.pool_size > 0:
        settings["pool"] = task
    result = {"pool_size": task.pool_size, "bayes_lambda": tasks.bayes_ridge_lambda(task),
              "k": list(range(task.n_points)), "settings": {}}
    for part, (setting, setting_task) in enumerate(settings.items()):
        xs, ys, _ = prompts(run, setting_task, "task_diversity", part, opts.n_prompts, opts)
        norm = tasks.expected_y2(setting_task)
        preds = {name: predict(xs, ys) for name, predict in predictors.items()}
        result["settings"][setting] = {
            "error": {name: band(sq_error(p, ys, norm)) for name, p in preds.items()},
            "spd": {name: to_list(sq_error(preds["model"], p, norm).mean(0))
                    for name, p in preds.items() if name != "model"}}
    return result


def scale(run, opts: ExperimentOptions) -> dict:
    """Error vs k of the model, least squares and averaging; the model's size."""
    task = clean_task(run)
    xs, ys, _ = prompts(run, task, "scale", 0, opts.n_prompts, opts)
    norm = tasks.expected_y2(task)
    preds = {"model": run.predict(xs, ys), "ols": get_baseline("ols")(xs, ys),
             "averaging": get_baseline("averaging")(xs, ys)}
    model = run.config.model
    return {"n_params": int(count_params(run.model)), "n_layer": model.n_layer,
            "d_model": model.d_model, "d": task.d, "k": list(range(task.n_points)),
            "error": {name: band(sq_error(p, ys, norm)) for name, p in preds.items()}}


def prior_override(run, opts: ExperimentOptions) -> dict:
    """Trained with a w prior of mean μ, evaluated on tasks around −μ ("flipped") and +μ.

    prior_mean predicts x·μ whatever the context; bayes_train_prior is the posterior mean under
    the training prior, μ + ridge(λ*) fitted to the residual labels y − x·μ.
    """
    task = clean_task(run)
    mu = tasks.w_mean_vector(task)  # (d,)
    ridge = ridge_bayes(task)
    predictors = {
        "model": run.predict, "ols": get_baseline("ols"),
        "prior_mean": lambda xs, ys: xs @ mu,
        "bayes_train_prior": lambda xs, ys: xs @ mu + ridge(xs, ys - xs @ mu)}
    fresh = dataclasses.replace(task, pool_size=0)  # fresh tasks even for pool-trained runs
    settings = {"flipped": dataclasses.replace(fresh, w_mean=-task.w_mean), "train": fresh}
    result = {"w_mean": task.w_mean, "d": task.d, "n_params": int(count_params(run.model)),
              "n_layer": run.config.model.n_layer, "d_model": run.config.model.d_model,
              "k": list(range(task.n_points)), "settings": {}}
    for part, (setting, setting_task) in enumerate(settings.items()):
        xs, ys, _ = prompts(run, setting_task, "prior_override", part, opts.n_prompts, opts)
        norm = tasks.expected_y2(setting_task)
        preds = {name: predict(xs, ys) for name, predict in predictors.items()}
        result["settings"][setting] = {
            "error": {name: band(sq_error(p, ys, norm)) for name, p in preds.items()},
            "spd_prior_mean": {name: to_list(sq_error(p, preds["prior_mean"], norm).mean(0))
                               for name, p in preds.items() if name != "prior_mean"}}
    return result


def corrupted_demos(run, opts: ExperimentOptions) -> dict:
    """Error at the last query (k = n − 1 demonstrations) vs the corrupted fraction.

    One key per mode for every fraction: the corrupted sets are nested as the fraction grows
    (common random numbers), so the curves differ by the corruption alone.
    """
    options = opts.corrupted_demos
    task = clean_task(run)
    k = task.n_points - 1
    xs, ys, _ = prompts(run, task, "corrupted_demos", 0, opts.n_prompts, opts)
    norm = tasks.expected_y2(task)
    delta = options.huber_delta * math.sqrt(norm)
    at_k = lambda predict: lambda xs, ys: predict(xs, ys)[:, k]  # (B,)
    predictors = {"model": at_k(run.predict), "ols": at_k(get_baseline("ols")),
                  f"ridge(lam={options.ridge_lam:g})": at_k(
                      get_baseline("ridge", lam=options.ridge_lam)),
                  "huber": lambda xs, ys: huber.huber_predict_last(xs, ys, delta)}
    result = {"k": k, "fractions": list(options.fractions), "huber_delta": delta,
              "corrupted_counts": [round(f * k) for f in options.fractions],
              "train_corrupt_fraction": run.config.task.corrupt_fraction,
              "train_corrupt_mode": run.config.task.corrupt_mode, "modes": {}}
    for part, mode in enumerate(options.modes, start=1):
        key = experiment_key(run, "corrupted_demos", part, opts)
        errors: dict[str, list] = {name: [] for name in predictors}
        for fraction in options.fractions:
            bad_ys, _ = context.corrupt_context(key, xs, ys, task, fraction, mode, k,
                                              run.config.seed)
            for name, predict in predictors.items():
                errors[name].append(sq_error(predict(xs, bad_ys), ys[:, k], norm))
        result["modes"][mode] = {"error": {name: band(np.stack(e, 1))
                                           for name, e in errors.items()}}
    return result


def checkpoint_steps(run_dir) -> list[int]:
    path = run_dir / "checkpoints"
    return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.is_dir() else []


def order_sensitivity(run, opts: ExperimentOptions) -> dict:
    """Variance of the prediction at position k over random orders of the same k pairs,
    per stored checkpoint, for the model and (zero up to rounding) for OLS."""
    from icl_regression.run import load_run

    options = opts.order_sensitivity
    task = clean_task(run)
    stored = checkpoint_steps(run.run_dir)
    steps = list(options.steps) if options.steps else stored
    missing = sorted(set(steps) - set(stored))
    if missing:
        raise ExperimentSkipped(f"order_sensitivity.steps {missing} are not stored (stored: "
                                f"{stored}); train with keep_period to keep more checkpoints")
    xs, ys, _ = prompts(run, task, "order_sensitivity", 0, options.prompts, opts)
    norm, perms = tasks.expected_y2(task), options.permutations
    tiled_xs, tiled_ys = jnp.tile(xs, (perms, 1, 1)), jnp.tile(ys, (perms, 1))  # (P·B, ...)
    ks = list(range(2, task.n_points))  # one demonstration has a single order
    predict = shared_predict(run)
    ols = get_baseline("ols")

    def variance(fn) -> list:  # mean over prompts of the variance over orders, per k
        out = []
        for k in ks:  # the same orders (keys) for every checkpoint and for OLS
            key = experiment_key(run, "order_sensitivity", k, opts)
            shuffled = context.permute_context(key, tiled_xs, tiled_ys, k)
            preds = np.asarray(fn(*shuffled)[:, k], np.float64).reshape(perms, -1)  # (P, B)
            out.append(preds.var(axis=0, ddof=1).mean() / norm)
        return out

    by_step = {}
    for step in tqdm(steps, desc="order_sensitivity: checkpoints", leave=False):
        state = nnx.split(run.model if step == run.step else load_run(run.run_dir, step).model)[1]
        by_step[str(step)] = variance(lambda xs, ys, state=state: predict(state, xs, ys))
    return {"k": ks, "error_k": list(range(1, task.n_points)), "permutations": perms,
            "prompts": options.prompts, "steps": steps,
            "variance": {"model": by_step, "ols": variance(ols)},
            "error": {"model": band(sq_error(run.predict(xs, ys), ys, norm)[:, 1:]),
                      "ols": band(sq_error(ols(xs, ys), ys, norm)[:, 1:])}}


def demo_selection(run, opts: ExperimentOptions) -> dict:
    """Error vs k when the k demonstrations are the nearest pool points to the query vs k
    random pool points (same pool, same query), for the model and OLS."""
    pool_points = opts.demo_selection.pool_points
    task = clean_task(run)
    n = task.n_points
    if pool_points < n - 1:
        raise ExperimentSkipped(f"demo_selection.pool_points={pool_points} must be >= "
                                f"task.n_points - 1 = {n - 1}")
    pooled = dataclasses.replace(task, n_points=pool_points + 1)  # the last point is the query
    xs, ys, _ = prompts(run, pooled, "demo_selection", 0, opts.n_prompts, opts)
    pool_xs, pool_ys, query, target = xs[:, :-1], ys[:, :-1], xs[:, -1], ys[:, -1]
    norm = tasks.expected_y2(task)
    predictors = {"model": run.predict, "ols": get_baseline("ols")}
    ks = list(range(1, n))
    errors = {how: {name: [] for name in predictors} for how in context.SELECTIONS}
    for k in ks:
        for how in context.SELECTIONS:
            key = experiment_key(run, "demo_selection", k, opts)
            sel_xs, sel_ys, _ = context.select_demonstrations(key, pool_xs, pool_ys, query, k, n,
                                                            how)
            for name, predict in predictors.items():
                errors[how][name].append(sq_error(predict(sel_xs, sel_ys)[:, k], target, norm))
    return {"k": ks, "pool_points": pool_points,
            "error": {how: {name: band(np.stack(e, 1)) for name, e in per.items()}
                      for how, per in errors.items()}}


def long_context(run, opts: ExperimentOptions) -> dict:
    """Error vs k on prompts longer than the training ones."""
    task, model = clean_task(run), run.config.model
    table = model.max_len or task.n_points
    if model.positions == "learned":
        n_points = opts.long_context.n_points or table
        if n_points > table or table <= task.n_points:
            raise ExperimentSkipped(
                f"learned positions cover {table} points (trained on {task.n_points}); prompts "
                f"of {max(n_points, table + 1)} need model.max_len >= that at training, or "
                f"model.positions=none")
    else:
        n_points = opts.long_context.n_points or 3 * task.n_points
    longer = dataclasses.replace(task, n_points=n_points)
    xs, ys, _ = prompts(run, longer, "long_context", 0, opts.n_prompts, opts)
    norm = tasks.expected_y2(longer)
    preds = {"model": run.predict(xs, ys), "ols": get_baseline("ols")(xs, ys)}
    if tasks.bayes_ridge_lambda(task) > 0:
        preds["ridge(lam=bayes)"] = ridge_bayes(task)(xs, ys)
    return {"train_points": task.n_points, "n_points": n_points, "positions": model.positions,
            "max_len": table, "k": list(range(n_points)),
            "error": {name: band(sq_error(p, ys, norm)) for name, p in preds.items()}}


LOOPS = {name: globals()[name] for name in EXPERIMENTS}
