"""xgboost: gradient-boosted trees (the xgboost library) on every prefix (Garg et al. 2022)."""

from __future__ import annotations

from icl_regression.baselines.host import per_prefix, require
from icl_regression.baselines.registry import register_baseline


@register_baseline("xgboost", expensive=True,
                   predictors=lambda ctx: {"xgboost": {"progress": ctx.progress}})
def xgboost_predict(xs, ys, n_estimators: int = 50, max_depth: int = 4,
                    learning_rate: float = 0.3, n_jobs: int = 0, progress: bool = True):
    """Prediction at i: boosted trees (squared error) fitted on pairs 0..i−1, at x_i: (B, n).
    One thread per fit; prompts run in parallel."""
    xgb = require("xgboost", "xgboost")

    def fit_predict(x, y, query):
        model = xgb.XGBRegressor(n_estimators=n_estimators, max_depth=max_depth,
                                 learning_rate=learning_rate, n_jobs=1, random_state=0)
        return model.fit(x, y).predict(query)

    return per_prefix(fit_predict, xs, ys, "xgboost", n_jobs, progress)
