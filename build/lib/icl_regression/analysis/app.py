"""`icl-lsa` / `python -m icl_regression.analysis.app`: the linear-self-attention numbers and
figures (von Oswald et al. 2022) from the LSA preset runs: this module trains them (when asked)
and draws; the measurement is lsa.py.

    icl-lsa train=true               # train (or resume) the 9 preset runs, measure, plot
    icl-lsa                          # measure and plot existing runs
    icl-lsa replot=true              # redraw from OUT/lsa_numbers.json
    icl-lsa deep=runs/oswald_lsa_deep/multirun/TIME   # read the deep runs from a sweep
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from icl_regression.analysis import lsa
from icl_regression.cli import App, compose_train, run_app
from icl_regression.config import TrainConfig, once
from icl_regression.config.checks import at_least, require
from icl_regression.figures.lsa import save_lsa_figures
from icl_regression.storage import write_json


@dataclass(frozen=True)
class LsaConfig:
    train: bool = False  # train (or resume) the presets first
    runs: str = "runs"  # holds oswald_lsa/reference and oswald_lsa_deep/L{k}_{untied,tied}
    out: str = "plots"  # lsa_*.png and lsa_numbers.json
    deep: str | None = None  # folder of deep LSA runs (a multirun sweep works); None: RUNS/...
    depths: tuple[int, ...] = lsa.DEPTHS  # the deep runs' layer counts
    n_eval: int = 4096  # held-out prompts per measurement
    replot: bool = False  # redraw from OUT/lsa_numbers.json without measuring
    plugins: tuple[str, ...] = ()  # modules to import first (icl_regression.plugins)

    @property
    def single_dir(self) -> Path:
        return Path(self.runs) / "oswald_lsa" / "reference"


def compose_preset(preset: str, overrides: tuple[str, ...] = ()) -> TrainConfig:
    """The validated config of `conf/preset/<preset>.yaml` plus overrides."""
    return compose_train([f"preset={preset}", *overrides])


def preset_runs(runs_root: Path, depths=lsa.DEPTHS) -> dict:
    """{run_dir: (preset, overrides)} for every run the figures read."""
    runs = {runs_root / "oswald_lsa" / "reference": ("oswald_lsa", ())}
    for depth in depths:
        for tied in (False, True):
            name = f"L{depth}_{'tied' if tied else 'untied'}"
            runs[runs_root / "oswald_lsa_deep" / name] = (
                "oswald_lsa_deep", (f"model.n_layer={depth}", f"model.tie_layers={tied}"))
    return runs


def train_presets(runs_root: Path, depths=lsa.DEPTHS) -> None:
    from icl_regression.train.loop import train_run

    for run_dir, (preset, overrides) in preset_runs(runs_root, depths).items():
        train_run(compose_preset(preset, overrides), run_dir)  # resumes if present



@once
def check_lsa(cfg: LsaConfig) -> LsaConfig:
    """The one place LsaConfig values are checked (including that the runs to read exist)."""
    require(bool(cfg.runs) and bool(cfg.out), "runs" if not cfg.runs else "out",
            cfg.runs or cfg.out, "a folder")
    require(bool(cfg.depths) and all(d >= 2 for d in cfg.depths), "depths", cfg.depths,
            "a non-empty list of layer counts >= 2 (depth 1 is the reference run)")
    at_least(cfg, "", 2, "n_eval")
    numbers = Path(cfg.out) / "lsa_numbers.json"
    require(not cfg.replot or numbers.exists(), "replot", cfg.replot,
            f"{numbers} does not exist; run without replot first")
    require(cfg.train or cfg.replot or (cfg.single_dir / "checkpoints").exists(), "runs",
            cfg.runs, f"{cfg.single_dir} holds no trained run; pass train=true")
    return cfg


def measure(cfg: LsaConfig) -> dict:
    """Every number of the figures; written to OUT/lsa_numbers.json."""
    numbers = {"single": lsa.measure_single(cfg.single_dir, cfg.n_eval)}
    single = numbers["single"]
    print(f"[lsa] 1 layer: trained {single['trained_loss']:.4f} vs GD {single['gd_loss']:.4f}"
          f" (η={single['eta']:.4f}), cosine {single['cosine']:.4f}, L2 {single['l2']:.4f}")
    deep_dir = Path(cfg.deep) if cfg.deep else Path(cfg.runs) / "oswald_lsa_deep"
    numbers["depth"] = lsa.measure_depths(cfg.single_dir, deep_dir, cfg.depths, cfg.n_eval)
    write_json(Path(cfg.out) / "lsa_numbers.json", lsa.finite_numbers(numbers), indent=1)
    return numbers


def lsa_app(cfg: LsaConfig, _output_dir: Path | None = None) -> None:
    """Train if asked, measure (or reread), draw the four figures."""
    if cfg.train:
        train_presets(Path(cfg.runs), cfg.depths)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.replot:
        numbers = json.loads((out / "lsa_numbers.json").read_text())
    else:
        numbers = measure(cfg)
    save_lsa_figures(numbers, out)
    print(f"[lsa] wrote {out}/lsa_*.png and lsa_numbers.json")


APP = App("lsa", LsaConfig, check_lsa, lsa_app)


def main() -> None:
    """`icl-lsa` (cli.py runs it)."""
    run_app(APP)


if __name__ == "__main__":
    main()
