"""Every experiment loop, registered: a loaded run in, a JSON-ready dict of numbers out.

Each loop takes a `Run` (icl_regression.run) and `ExperimentOptions`, draws its prompts from
the run's "eval" stream (sub-keys keyed by the experiment's stream id, disjoint from training),
and reports squared errors divided by the zero predictor's expected error E y² of the evaluated
prompts (so 1 is trivial), as {"mean", "lo", "hi"} curves (95% band: mean ± 1.96 standard
errors). Labels are always clean in the scored query; corruption, when asked for, touches the
context. Adding an experiment: one module with `@register_experiment(name, stream_id=...)`,
imported below, plus its figure in icl_regression/figures/experiments.py.
"""

from __future__ import annotations

from icl_regression.experiments import demonstrations, priors, scaling  # noqa: F401 (register)
from icl_regression.experiments.common import LOOPS, MULTI_RUN

# Names in stream-id order (what `name=` allows, and the order the README lists them in).
EXPERIMENTS = tuple(sorted(LOOPS.names(), key=LOOPS.stream_id))

__all__ = ["EXPERIMENTS", "LOOPS", "MULTI_RUN"]
