"""tree: greedy CART regression trees (scikit-learn's DecisionTreeRegressor) on every prefix."""

from __future__ import annotations

from icl_regression.baselines.host import per_prefix, require
from icl_regression.baselines.registry import register_baseline


@register_baseline("tree", expensive=True, predictors=lambda ctx: {
    f"tree(max_depth={depth})": {"max_depth": depth, "progress": ctx.progress}
    for depth in (ctx.task.tree_depth, None)})
def tree_predict(xs, ys, max_depth: int | None = 4, n_jobs: int = 0, progress: bool = True):
    """Prediction at i: a CART tree (squared error, `max_depth` levels; None: grown until the
    leaves are pure) fitted on pairs 0..i−1, at x_i: (B, n). Deterministic (random_state 0)."""
    tree = require("sklearn.tree", "tree")

    def fit_predict(x, y, query):
        model = tree.DecisionTreeRegressor(max_depth=max_depth, random_state=0)
        return model.fit(x, y).predict(query)

    return per_prefix(fit_predict, xs, ys, f"tree(max_depth={max_depth})", n_jobs, progress)
