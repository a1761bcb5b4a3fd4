"""The analyses a claim can ask of a run, each a function (run directory, options) -> JSON
record, the same library calls the apps make: icl-eval (`evaluate_run`), icl-probe
(`probe_run`), layer by layer (`layerwise_run`), an experiment of icl-experiments (its
registered loop) and the one-layer LSA measurement of icl-lsa. A record is stored at
RUN/reproduce/<step key>.json and reused while the run and the options are unchanged.
`python -m icl_regression.reproduce.steps RUN KIND OPTIONS_JSON OUT [CONTROL]` computes one in a
process of its own (what the reproduce app runs, two at a time on two cores).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from icl_regression.storage import finite_or_none, write_json

KINDS: dict[str, Callable[..., dict]] = {}

# At scale=smoke every analysis runs on a handful of prompts: it checks the wiring, not a claim.
SMOKE_OPTIONS = {
    "eval": {"n_prompts": 48, "expensive_prompts": 8, "implicit_settings": []},
    "probes": {"n_prompts": 160, "mlp": {"max_steps": 3}, "attention": {"max_steps": 3},
               "attention_mlp": {"max_steps": 3}},
    "layerwise": {"n_prompts": 100},
    "experiment": {"n_prompts": 16},
    "lsa": {"n_eval": 128},
}


def kind(name: str):
    def decorate(fn: Callable[..., dict]) -> Callable[..., dict]:
        KINDS[name] = fn
        return fn
    return decorate


def scaled_options(kind_name: str, options: Mapping[str, Any], scale: str) -> dict:
    """The step's options at `scale`: unchanged, or shrunk to a few prompts for smoke runs."""
    out = json.loads(json.dumps(dict(options)))
    if scale == "smoke":
        for key, value in SMOKE_OPTIONS.get(kind_name, {}).items():
            out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


@kind("eval")
def eval_record(run_dir: Path, options: dict, control: Path | None = None) -> dict:
    from icl_regression.evaluate.evaluation import EvalConfig, check_config, evaluate_run
    from icl_regression.run import load_run

    options = {"progress": False, **options}
    cfg = check_config(EvalConfig(**_tuples(options)))
    return evaluate_run(load_run(run_dir), cfg)


@kind("probes")
def probes_record(run_dir: Path, options: dict, control: Path | None = None) -> dict:
    from icl_regression.probes.kinds import FitOptions
    from icl_regression.probes.options import ProbeOptions, check_options
    from icl_regression.probes.probing import probe_run

    fits = {k: FitOptions(**options.pop(k)) for k in ("mlp", "attention", "attention_mlp")
            if k in options}
    probe_options = check_options(ProbeOptions(**{"progress": False, **_tuples(options)},
                                               **fits))
    return probe_run(run_dir, probe_options, control_run=control, write=False)


@kind("layerwise")
def layerwise_record(run_dir: Path, options: dict, control: Path | None = None) -> dict:
    from icl_regression.evaluate.layerwise import LayerwiseOptions, layerwise_run

    return layerwise_run(run_dir, LayerwiseOptions(**_tuples(options)), write=False)


@kind("experiment")
def experiment_record(run_dir: Path, options: dict, control: Path | None = None) -> dict:
    """`options`: {"name": experiment, its shared options, "<name>": its own}; the record is
    the one icl-experiments stores in RUN/experiments/<name>.json (reused from there)."""
    from icl_regression.experiments.app import evaluate_one, experiments_config

    cfg = experiments_config({"runs": [str(run_dir)], "per_run_plots": False, **options})
    return evaluate_one(run_dir, cfg)


@kind("lsa")
def lsa_record(run_dir: Path, options: dict, control: Path | None = None) -> dict:
    from icl_regression.analysis.lsa import finite_numbers, measure_single

    return finite_numbers(measure_single(run_dir, **options, n_curve=min(256, options.get(
        "n_eval", 4096))))


def _tuples(options: Mapping[str, Any]) -> dict:
    """JSON lists -> tuples, as the frozen option dataclasses hold them."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def compute(run_dir: Path, kind_name: str, options: dict, out: Path,
            control: Path | None = None) -> dict:
    """One record, written atomically to `out` with its options and wall time."""
    start = time.perf_counter()
    result = KINDS[kind_name](Path(run_dir), dict(options), control)
    record = {"kind": kind_name, "options": options, "run_dir": str(run_dir),
              "control": None if control is None else str(control),
              "wall_s": time.perf_counter() - start, "result": _plain(result)}
    write_json(out, record)
    return record


def _plain(value: Any) -> Any:
    """Arrays and NumPy scalars -> JSON numbers (NaN -> null)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool, type(None), int)):
        return value
    return finite_or_none(value)


def main(argv: list[str] | None = None) -> None:
    from icl_regression.plugins import load_plugins

    load_plugins(m for m in os.environ.get("ICL_REPRODUCE_PLUGINS", "").split(",") if m)
    run_dir, kind_name, options, out, *control = argv if argv is not None else sys.argv[1:]
    compute(Path(run_dir), kind_name, json.loads(options), Path(out),
            Path(control[0]) if control else None)


if __name__ == "__main__":
    main()
