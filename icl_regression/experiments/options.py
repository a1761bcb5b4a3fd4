"""The options every experiment loop reads (frozen dataclasses), and the "cannot serve" error."""

from __future__ import annotations

from dataclasses import dataclass, field

from icl_regression.config import CorruptMode


class ExperimentSkipped(Exception):
    """This run cannot serve this experiment; the message says why and what would."""


@dataclass(frozen=True)
class CorruptionOptions:
    fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    modes: tuple[CorruptMode, ...] = (CorruptMode.noise, CorruptMode.other_w)
    ridge_lam: float = 1.0  # the ridge line (shrinkage also damps outliers)
    huber_delta: float = 0.1  # Huber threshold, in units of the label scale √(E y²)


@dataclass(frozen=True)
class OrderOptions:
    permutations: int = 8  # random orders of the same demonstrations per prompt
    prompts: int = 500
    steps: tuple[int, ...] | None = None  # checkpoints to evaluate; None: all stored ones


@dataclass(frozen=True)
class SelectionOptions:
    pool_points: int = 64  # labelled examples per prompt to choose the k demonstrations from


@dataclass(frozen=True)
class LongContextOptions:
    n_points: int = 0  # 0: the positional table length (learned) or 3 × n_points (none)


@dataclass(frozen=True)
class ExperimentOptions:
    n_prompts: int = 2000
    seed: int = 0  # added to the run's seed for the evaluation prompts
    corrupted_demos: CorruptionOptions = field(default_factory=CorruptionOptions)
    order_sensitivity: OrderOptions = field(default_factory=OrderOptions)
    demo_selection: SelectionOptions = field(default_factory=SelectionOptions)
    long_context: LongContextOptions = field(default_factory=LongContextOptions)
