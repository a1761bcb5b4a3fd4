"""`icl-probe run_dir=DIR [options]` / `python -m icl_regression.probes`: the probe app.
Writes DIR/probes.json (OUT_DIR/probes.json with `out_dir=OUT_DIR`) and prints the summary;
the computation is probes/probing.py.
"""

from __future__ import annotations

from pathlib import Path

from icl_regression.cli import App, run_app
from icl_regression.probes.options import ProbeConfig, check_probe_config
from icl_regression.probes.probing import probe_run
from icl_regression.probes.study import format_study
from icl_regression.probes.summary import format_probe_summary


def _probe_app(cfg: ProbeConfig, _output_dir: Path) -> None:
    result = probe_run(cfg.run_dir, cfg, cfg.control_run_dir, out_dir=cfg.out_dir)
    for probe in cfg.probes:
        print(format_probe_summary(result, probe=probe))
    if cfg.control_run_dir is not None:
        print(format_study(result))
    print(f"wrote {Path(cfg.out_dir or cfg.run_dir) / 'probes.json'}")


APP = App("probes", ProbeConfig, check_probe_config, _probe_app, hints={
    "run_dir": "run_dir is required: a trained run directory (icl-probe run_dir=DIR)"})


def main() -> None:
    """`icl-probe` / `python -m icl_regression.probes` (cli.py runs it)."""
    run_app(APP)


if __name__ == "__main__":
    main()
