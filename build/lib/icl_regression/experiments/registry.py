"""The experiment registry: one `register_experiment` call carries everything about an
experiment (its loop, figure, options, their checks, what the run must be), so adding one is
one new module in this package (found by being there) or in a plugin.

A loop takes a `Run` (icl_regression.run) and the experiment options, draws its prompts from the
run's "eval" stream (sub-keys keyed by the experiment's stream id, disjoint from training), and
reports squared errors divided by the zero predictor's expected error E y² of the evaluated
prompts (so 1 is trivial), as {"mean", "lo", "hi"} curves (95% band: mean ± 1.96 standard
errors). Labels are always clean in the scored query; corruption, when asked for, touches the
context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from icl_regression.registry import Registry, import_submodules

# Modules of this package that hold no experiment.
NOT_EXPERIMENTS = ("app", "registry", "shared", "options")


@dataclass(frozen=True)
class Experiment:
    loop: Callable[..., dict]  # (run, options) -> JSON-ready dict of numbers
    figure: Callable[[Sequence[Mapping]], Any]  # records (one per run) -> matplotlib Figure
    options: type | None = None  # frozen dataclass of its own options, key `<name>.<field>`
    check: Callable[[Any], None] | None = None  # its options -> raises ConfigError if bad
    needs_linear_labels: bool = False  # y = w·x + noise (a w prior, other tasks' w, a pool)
    multi_run: bool = False  # its figure only makes sense across a sweep of runs


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def register_experiment(name: str, *, stream_id: int, figure: Callable, options: type | None = None,
                        check: Callable[[Any], None] | None = None,
                        needs_linear_labels: bool = False, multi_run: bool = False):
    """Decorator on the loop: `@register_experiment("scale", stream_id=1, figure=plot_scale)`.
    Never reuse or renumber a stream id: it picks the experiment's prompts (sub-keys
    100 + 10·id + part of the eval stream)."""
    def decorate(loop: Callable) -> Callable:
        EXPERIMENTS.register(name, Experiment(loop, figure, options, check, needs_linear_labels,
                                              multi_run), stream_id=stream_id)
        return loop
    return decorate


def experiment_names() -> tuple[str, ...]:
    """Every registered experiment (built-in and plugins), in stream-id order."""
    import_submodules(__package__, skip=NOT_EXPERIMENTS)
    return tuple(sorted(EXPERIMENTS.names(), key=EXPERIMENTS.stream_id))
