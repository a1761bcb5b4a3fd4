"""The probe app's options (conf/probes.yaml): what to probe, how, and their one checks."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icl_regression.config import once, to_dataclass
from icl_regression.config.build import MISSING
from icl_regression.config.checks import at_least, indices, one_of_each, require
from icl_regression.probes.kinds import DEFAULT_PROBES, FitOptions
from icl_regression.probes.registry import probe_kind_names
from icl_regression.probes.targets import TARGETS

POSITION_SETS = ("x", "y")  # positions=x: every query token; positions=y: every y token


@dataclass(frozen=True)
class ProbeOptions:
    targets: tuple[str, ...] = TARGETS
    probes: tuple[str, ...] = DEFAULT_PROBES
    layers: tuple[int, ...] | None = None  # 0 = after the embedding, l = after block l; None: all
    positions: Any = None  # token indices, "x" or "y"; None: every token
    n_prompts: int = 4096  # held-out prompts, split 60/20/20 into train/validation/test
    seed: int = 0  # picks the prompts (within the probe stream), the split and probe inits
    untrained_control: bool = True
    progress: bool = True
    capture_batch: int = 1024  # prompts per forward pass
    mlp: FitOptions = field(default_factory=FitOptions)
    attention: FitOptions = field(default_factory=FitOptions)
    attention_mlp: FitOptions = field(default_factory=FitOptions)


@dataclass(frozen=True)
class ProbeConfig(ProbeOptions):
    """The probe app's schema (conf/probes.yaml): the options plus the runs to probe."""

    run_dir: str = MISSING  # a trained run directory (with checkpoints/)
    control_run_dir: str | None = None  # a run trained with task.w_prior=fixed, same shapes
    out_dir: str | None = None  # where probes.json goes; None: run_dir (read-only runs: set it)
    plugins: tuple[str, ...] = ()  # modules to import first (icl_regression.plugins)


def _sorted_unique(values: tuple[int, ...] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(sorted(set(values)))


@once
def check_options(options: ProbeOptions) -> ProbeOptions:
    """The one place ProbeOptions values are checked; layers and positions come back sorted."""
    one_of_each(options.targets, TARGETS, "targets")
    one_of_each(options.probes, probe_kind_names(), "probes")
    indices(options.layers, "layers", "layer indices")
    positions = options.positions
    if isinstance(positions, str):
        one_of_each([positions], POSITION_SETS, "positions")
    else:
        positions = (positions,) if isinstance(positions, int) else positions
        indices(positions, "positions", "token indices (or x / y)")
        positions = _sorted_unique(positions)
    require(options.n_prompts >= 50, "n_prompts", options.n_prompts,
            "must be >= 50 (split 60/20/20 into train/validation/test)")
    at_least(options, "", 1, "capture_batch")
    require(options.seed >= 0, "seed", options.seed, "must be >= 0")
    for kind in ("mlp", "attention", "attention_mlp"):
        fit = getattr(options, kind)
        at_least(fit, f"{kind}.", 1, "hidden", "batch_size", "max_steps", "eval_every",
                 "patience")
        require(0 < fit.learning_rate < math.inf, f"{kind}.learning_rate", fit.learning_rate,
                "must be a finite number > 0")
    return dataclasses.replace(options, layers=_sorted_unique(options.layers),
                               positions=positions)


@once
def check_probe_config(cfg: ProbeConfig) -> ProbeConfig:
    """The app's checks: the options, and both run directories hold checkpoints."""
    for key in ("run_dir", "control_run_dir"):
        path = getattr(cfg, key)
        require(path is None or (Path(path) / "checkpoints").is_dir(), key, path,
                "no checkpoints/ there (a trained run directory is needed)")
    return check_options(cfg)


def probe_options(values: Mapping) -> ProbeOptions:
    """Plain dict (e.g. the composed Hydra config minus run_dir) -> checked ProbeOptions."""
    return check_options(to_dataclass(values, ProbeOptions))
