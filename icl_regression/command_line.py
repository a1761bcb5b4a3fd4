"""Hydra's command line as the apps read it before Hydra's own main: its flags, and the
override list of every job a multirun starts (what `cli.preflight` composes and checks)."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from typing import Any

from icl_regression.config import ConfigError


def hydra_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The flags of Hydra's command line that decide what runs (Hydra parses them again)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("overrides", nargs="*")
    for flag, short in (("--help", "-h"), ("--hydra-help", None), ("--version", None),
                        ("--resolve", None), ("--multirun", "-m"), ("--experimental-rerun", None)):
        parser.add_argument(*[f for f in (flag, short) if f], action="store_true")
    for flag, short in (("--cfg", "-c"), ("--package", "-p"), ("--run", "-r"),
                        ("--config-path", "-cp"), ("--config-name", "-cn"),
                        ("--config-dir", "-cd"), ("--info", "-i"), ("--shell-completion", "-sc")):
        parser.add_argument(flag, short, nargs="?", const=True)
    args, _ = parser.parse_known_args(list(argv))
    return args


def job_overrides(base: Any, overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """The override list of every job the command line starts (one job unless multirun): the
    cartesian product of the sweeps, in command-line order, as Hydra's basic sweeper makes it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(list(overrides))
    hydra_side = [o.input_line for o in parsed if o.is_hydra_override()]
    sweeps = [o for o in parsed if o.is_sweep_override() and not o.is_hydra_override()]
    if not multirun:
        if sweeps:  # Hydra's own "Ambiguous value" error, raised here as one line
            key, _, value = sweeps[0].input_line.partition("=")
            key = key.lstrip("+~")
            raise ConfigError(f"{key}={value!r} is not allowed; a sweep needs -m (--multirun), "
                              f"a list is {key}=[{value}]")
        return [list(overrides)]
    params = base.hydra.sweeper.get("params") or {}
    task_side = [f"{key}={value}" for key, value in params.items()]
    task_side += [o.input_line for o in parsed if not o.is_hydra_override()]
    choices = []  # per override: the KEY=VALUE strings of its values
    for override in parser.parse_overrides(task_side):
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    return [hydra_side + list(job) for job in itertools.product(*choices)]
