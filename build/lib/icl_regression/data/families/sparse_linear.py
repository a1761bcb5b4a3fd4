"""sparse_linear: the linear family with s nonzero coordinates of w (Garg et al. 2022)."""

from __future__ import annotations

from icl_regression.data import sampling
from icl_regression.data.families.linear import LINEAR_BASELINES, sample_linear
from icl_regression.data.families.registry import register_family


def _check(task) -> str | None:
    if task.w_prior != "sparse":
        return (f"task.w_prior={task.w_prior!r} is not allowed for task.family=sparse_linear; "
                "allowed: sparse (with task.sparsity = s)")
    return None


def _oracle(task):
    # The posterior mean of a sparse prior has no closed form; the lasso is its usual proxy.
    return ("lasso", {"alpha": 0.1}),


# Same draws as `linear` with w_prior=sparse: w_i ~ N(0, τ²/s) on s coordinates chosen
# uniformly, so E y² = τ² as for the dense prior. Default baselines add the lasso.
register_family("sparse_linear", stream_id=1, expected_y2=sampling.linear_expected_y2,
                baselines=LINEAR_BASELINES, oracle=_oracle, linear_labels=True,
                check=_check)(sample_linear)
