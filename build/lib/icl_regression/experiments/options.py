"""The options every experiment loop reads: the shared ones, plus each registered experiment's
own options under its name (built from the registry, so a new experiment's options join the
schema by being registered), and the "cannot serve" error."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from icl_regression.experiments.registry import EXPERIMENTS, experiment_names


class ExperimentSkipped(Exception):
    """This run cannot serve this experiment; the message says why and what would."""


@dataclass(frozen=True)
class SharedOptions:
    n_prompts: int = 2000
    seed: int = 0  # added to the run's seed for the evaluation prompts


def option_fields() -> list[tuple[str, type, dataclasses.Field]]:
    """(name, type, field) of every registered experiment that has options, in stream order."""
    return [(name, spec.options, dataclasses.field(default_factory=spec.options))
            for name in experiment_names() if (spec := EXPERIMENTS.get(name)).options]


@functools.cache
def _options_type(names: tuple[str, ...]) -> type:
    built = dataclasses.make_dataclass("ExperimentOptions", option_fields(),
                                       bases=(SharedOptions,), frozen=True)
    built.__module__ = __name__
    return built


def experiment_options_type() -> type:
    """The frozen dataclass `ExperimentOptions`: n_prompts, seed, and `<experiment>` options."""
    return _options_type(experiment_names())


def ExperimentOptions(**values):  # noqa: N802 (reads as the class it builds)
    """An `ExperimentOptions` instance; keys as in the dataclass (`n_prompts=64`, ...)."""
    return experiment_options_type()(**values)
