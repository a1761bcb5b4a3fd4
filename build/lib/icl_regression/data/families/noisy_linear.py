"""noisy_linear: the linear family with label noise σ > 0 (Bayes ridge λ* = σ² d / τ²)."""

from __future__ import annotations

from icl_regression.data import sampling
from icl_regression.data.families.linear import LINEAR_BASELINES, linear_oracle, sample_linear
from icl_regression.data.families.registry import register_family


def _check(task) -> str | None:
    if task.noise_std <= 0:
        return (f"task.noise_std={task.noise_std!r} is not allowed for task.family=noisy_linear;"
                " must be > 0 (noiseless: task=linear)")
    return None


register_family("noisy_linear", stream_id=2, expected_y2=sampling.linear_expected_y2,
                baselines=LINEAR_BASELINES, oracle=linear_oracle, linear_labels=True,
                posterior_mean=True,
                check=_check)(sample_linear)
