"""`make demo` / `icl-demo`: train the quickstart on this machine, evaluate it against the
baselines, probe it, draw its figures, and print where everything lives.

    python -m icl_regression.demo [key=value ...]   # the training app's overrides (quickstart)

The demo is the training app (conf/train.yaml, same schema, checks and run directory) with a
longer `work`: cli.py runs it, so bad input is one line and exit 2 as for icl-train.
"""

from __future__ import annotations

import time
from pathlib import Path

from icl_regression.cli import App, run_app
from icl_regression.config import TrainConfig, validate
from icl_regression.train.app import lock_and_check
from icl_regression.train.loop import train_run


def demo(cfg: TrainConfig, run_dir: Path) -> None:
    """Train (or resume) in `run_dir`, then evaluate, probe and draw the run."""
    from icl_regression.evaluate.eval_json import format_table
    from icl_regression.evaluate.evaluation import evaluate_run
    from icl_regression.figures.app import FiguresConfig, make_figures
    from icl_regression.probes.probing import format_probe_summary, probe_run
    from icl_regression.run import load_run

    t0 = time.perf_counter()
    summary = train_run(cfg, run_dir)
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


APP = App("train", TrainConfig, validate, demo, precheck=lock_and_check, entry_groups=True)


def main() -> None:
    """`icl-demo` / `python -m icl_regression.demo`."""
    run_app(APP)


if __name__ == "__main__":
    main()
