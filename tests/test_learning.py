"""Slow learning check (run in CI on purpose): a small run learns in-context regression."""

import jax
import numpy as np
import pytest
from conftest import compose

from icl_regression import load_run
from icl_regression.config import to_dataclass
from icl_regression.train.loop import train_run


def _averaging_errors(xs, ys):
    """Independent float64 reference: predict x_i · (Σ_{j<i} y_j x_j) / i."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    sums = np.cumsum(ys[..., None] * xs, axis=1) - ys[..., None] * xs  # (B, n, d): pairs < i
    counts = np.maximum(np.arange(xs.shape[1]), 1)[None, :, None]
    preds = np.einsum("bnd,bnd->bn", sums / counts, xs)
    return ((preds - ys) ** 2).mean(0)


@pytest.mark.slow
def test_small_run_learns_in_context_regression(tmp_path):
    cfg = to_dataclass(compose(["preset=quickstart", "steps=2500", "progress=false"]))
    train_run(cfg, tmp_path)
    run = load_run(tmp_path)
    xs, ys, _ = run.sample(jax.random.key(2024), 4000)
    model_err = ((np.asarray(run.predict(xs, ys), np.float64) - np.asarray(ys)) ** 2).mean(0)
    averaging_err = _averaging_errors(xs, ys)
    k = 2 * cfg.task.d
    assert model_err[k] < 0.25 * averaging_err[k], (model_err[k], averaging_err[k])
    assert model_err[k] < 0.1  # normalised: the zero predictor scores 1
