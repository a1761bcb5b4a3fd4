"""The predictors icl-eval runs for a task: the predictor sets its family lists (in that order),
then the sets that name the family themselves (baselines registered with `families=`), each
turned into `{predictor name: (baseline, params)}` with the set's knobs from the evaluation
config. Names read `baseline(param=value)` (`ridge(lam=bayes)` is λ* = σ² d / τ²), as the
figures expect; a set may contribute nothing for a task (lasso without a sparse prior)."""

from __future__ import annotations

from icl_regression.baselines import PREDICTOR_SETS, SuiteContext
from icl_regression.config import TaskConfig
from icl_regression.data.families import family_of


def predictor_sets(task: TaskConfig) -> tuple[str, ...]:
    """The names of the sets evaluated for `task`, in order."""
    listed = tuple(family_of(task).baselines)
    joined = tuple(name for name, spec in PREDICTOR_SETS.items()
                   if task.family in spec.families and name not in listed)
    return listed + joined


def baseline_suite(task: TaskConfig, seed: int, cfg, gd_eta) -> dict:
    """name -> (baseline, params): every predictor of the task's sets."""
    suite: dict = {}
    for name in predictor_sets(task):
        spec = PREDICTOR_SETS.get(name)
        ctx = SuiteContext(task, seed, getattr(cfg, name, None), gd_eta, cfg.gd_steps,
                           cfg.progress)
        suite.update({predictor: (spec.baseline, params)
                      for predictor, params in spec.predictors(ctx).items()})
    return suite
