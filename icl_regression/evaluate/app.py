"""`icl-eval run_dir=DIR [key=value ...]` / `python -m icl_regression.evaluate`: the evaluation
app. Writes DIR/eval.json (OUT_DIR/eval.json with `out_dir=OUT_DIR`: runs on read-only storage,
or still training; or the baselines alone for `task` without run_dir) and prints its table; the
computation is evaluate/evaluation.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from icl_regression.cli import App, run_app
from icl_regression.config import register_schema, to_dataclass
from icl_regression.evaluate.eval_json import format_table, write_eval_json
from icl_regression.evaluate.evaluation import (
    check_config,
    eval_config_type,
    evaluate_baselines,
    evaluate_run,
)

# Keys of earlier versions, still accepted (with a note): the knobs now sit under their set.
OLD_KEYS = {"knn_k": "knn.k", "ridge_lams": "ridge_grid.lams", "lasso_alpha": "lasso.alpha",
            "dmmse_noise_std": "dmmse.noise_std"}


def _eval_config(cfg):
    """Composed DictConfig -> checked frozen EvalConfig."""
    return check_config(to_dataclass(cfg, eval_config_type()))


def run_from_config(cfg) -> Path:
    """The entry point's work: check, evaluate, write eval.json, print the table."""
    from icl_regression.run import load_run

    check_config(cfg)  # already done (once) on the command line; here for library callers
    if cfg.run_dir:
        data = evaluate_run(load_run(cfg.run_dir), cfg)
        out = Path(cfg.out or Path(cfg.out_dir or cfg.run_dir) / "eval.json")
    else:
        data = evaluate_baselines(cfg.task, cfg)
        out = Path(cfg.out or "runs/baselines/eval.json")
    start = time.perf_counter()
    write_eval_json(out, data)
    print(format_table(data))
    print(f"[icl] wrote {out} ({time.perf_counter() - start:.1f}s to write)", file=sys.stderr)
    if cfg.layerwise:
        from icl_regression.evaluate.layerwise import run_layerwise_app

        run_layerwise_app(cfg.run_dir, cfg.seed, cfg.out_dir or cfg.run_dir)
    return out


def register_eval_schema() -> None:
    """Store EvalConfig as `evaluate_schema`, the first entry of conf/evaluate.yaml."""
    register_schema("evaluate_schema", eval_config_type())


def _evaluate_app(cfg, _output_dir: Path) -> None:
    run_from_config(cfg)


APP = App("evaluate", eval_config_type, check_config, _evaluate_app, aliases=OLD_KEYS,
          entry_groups=True)


def main() -> None:
    """`icl-eval` / `python -m icl_regression.evaluate` (cli.py runs it)."""
    run_app(APP)


if __name__ == "__main__":
    main()
