"""`make demo`: train the quickstart on this machine, evaluate it against the baselines, probe
it, draw its figures, and print where everything lives.

    python -m icl_regression.demo [key=value ...]   # overrides on top of experiment=quickstart
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from icl_regression.cli import CONF_DIR
from icl_regression.config import ConfigError, TrainConfig, to_dataclass, validate


def compose_config(overrides: list[str]) -> TrainConfig:
    """The training app's config for `experiment=quickstart` plus `overrides`."""
    from hydra import compose, initialize_config_dir

    from icl_regression.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=quickstart", *overrides])
    return validate(to_dataclass(cfg))


def main(argv: list[str] | None = None) -> None:
    overrides = sys.argv[1:] if argv is None else argv
    try:
        cfg = compose_config(overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path("runs") / cfg.name / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")

    from icl_regression.evaluate.eval_json import format_table
    from icl_regression.evaluate.runner import evaluate_run
    from icl_regression.figures.app import FiguresConfig, make_figures
    from icl_regression.probes.runner import format_probe_summary, probe_run
    from icl_regression.run import load_run
    from icl_regression.train.loop import train_and_evaluate

    t0 = time.perf_counter()
    summary = train_and_evaluate(cfg, run_dir)
    run = load_run(run_dir)

    t1 = time.perf_counter()
    evaluation = evaluate_run(run_dir)
    print(f"\n[demo] evaluation ({time.perf_counter() - t1:.0f}s) -> {run_dir / 'eval.json'}")
    print(format_table(evaluation, "train"))

    t1 = time.perf_counter()
    print(f"\n[demo] linear probes -> {run_dir / 'probes.json'}")
    probes = probe_run(run, probes=("linear",))
    print(format_probe_summary(probes, cfg.task.d))
    print(f"[demo] probes took {time.perf_counter() - t1:.0f}s")

    t1 = time.perf_counter()
    report = make_figures(FiguresConfig(runs=(str(run_dir),), out=str(run_dir / "plots"),
                                        per_run_plots=False, formats=("png",)), log=lambda _: None)
    print(f"\n[demo] figures ({time.perf_counter() - t1:.0f}s):")
    for path in report.written:
        print(f"  {path}")
    print(f"\n[demo] training {summary['train_s']:.0f}s ({summary['steps_per_sec']:.0f} steps/s, "
          f"compile {summary['compile_s']:.0f}s); whole demo {time.perf_counter() - t0:.0f}s")
    print(f"[demo] the run lives in {run_dir}  (load it: icl_regression.load_run('{run_dir}'))")


if __name__ == "__main__":
    main()
