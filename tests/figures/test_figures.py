"""Figures: every figure function draws what it is given; output is byte-identical; the CLI
skips incomplete runs with a message and still draws the others."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.image import imread  # noqa: E402

from icl_regression.analysis.attention import token_labels  # noqa: E402
from icl_regression.catalog import discover_runs  # noqa: E402
from icl_regression.config import ConfigError  # noqa: E402
from icl_regression.figures import analysis_apps, plots, sweeps  # noqa: E402
from icl_regression.figures.app import (  # noqa: E402
    FiguresConfig,
    figures_config,  # noqa: E402
    make_figures,
)
from icl_regression.figures.attention import plot_attention  # noqa: E402
from icl_regression.figures.stored_runs import load_record  # noqa: E402
from icl_regression.figures.style import (  # noqa: E402
    default_baselines,
    parse_predictor_name,
    predictor_label,
    save_figure,
)

ROOT = Path(__file__).resolve().parents[2]
D, N_POINTS = 4, 9
KS = list(range(N_POINTS))
RIDGE_GRID = ("ridge(lam=0.01)", "ridge(lam=0.1)", "ridge(lam=1)", "ridge(lam=10)")
BASELINES = ("ols", *RIDGE_GRID, "ridge(lam=bayes)", "gd(steps=1)", "averaging", "knn(k=3)")


def band(mean: np.ndarray) -> dict:
    return {"mean": mean.tolist(), "lo": (mean * 0.9).tolist(), "hi": (mean * 1.1).tolist()}


def make_eval(seed: int, closest: str = "ols") -> dict:
    """eval.json (schema version 1) where the model's SPD is smallest to `closest`."""
    rng = np.random.default_rng(seed)
    ks = np.array(KS, dtype=float)
    ols_error = np.where(ks < D, 1 - ks / D, 1e-4)
    setting = {"k": KS, "error": {"model": band(ols_error + 0.02), "zero": band(np.ones_like(ks))}}
    setting["spd"], setting["ilwd"], setting["sensitivity_cos"] = {}, {}, {}
    for i, name in enumerate(BASELINES):
        setting["error"][name] = band(ols_error * (1 + 0.1 * i) + 0.01 * i)
        spd = 0.05 + 0.1 * rng.random() + 0.01 * ks
        setting["spd"][name] = (spd * (0.1 if name == closest else 1.0)).tolist()
        setting["ilwd"][name] = (spd * 2).tolist()
        setting["sensitivity_cos"][name] = np.clip(0.5 + 0.05 * ks, -1, 1).tolist()
    setting["ilwd_r2"] = np.linspace(0.3, 1.0, len(KS)).tolist()
    skewed = json.loads(json.dumps(setting))
    skewed["error"]["model"] = band(ols_error * 3 + 0.1)
    return {"settings": {"train": setting, "skewed": skewed, "x_scaled_2": skewed},
            "gd_eta": {"gd(steps=1)": [0.1] * len(KS)}, "n_prompts": 1000}


def make_probes(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    layers, positions = [0, 1, 2], list(range(0, 2 * N_POINTS, 2))
    targets = {}
    for target in ("w", "w_ols", "xty"):
        targets[target] = {probe: {"r2": rng.random((3, len(positions))).tolist(),
                                   "mse": rng.random((3, len(positions))).tolist(),
                                   "control_r2": (0.2 * rng.random((3, len(positions)))).tolist()}
                           for probe in ("linear", "mlp")}
    return {"layers": layers, "positions": positions, "k": KS, "targets": targets}


def make_metrics(steps: int = 30) -> list[dict]:
    return [{"step": 100 * (i + 1), "loss": 1.0 / (i + 1), "loss_norm": 1.0 / (i + 1),
             "lr": 1e-3 * min(1.0, (i + 1) / 5), "grad_norm": 1.0 + np.sin(i), "param_norm": 10.0,
             "steps_per_sec": 100.0, "elapsed_s": float(i), "curriculum_dims": min(D, 2 + i // 10),
             "curriculum_points": N_POINTS} for i in range(steps)]


def write_run(run_dir: Path, *, n_layer: int = 2, noise_std: float = 0.0, files=("metrics",
              "eval", "probes"), closest: str = "ols", experiment: str = "unit") -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    config = (f"name: {experiment}\nseed: 0\nsteps: 3000\n"
              f"task:\n  d: {D}\n  n_points: {N_POINTS}\n  noise_std: {noise_std}\n"
              f"model:\n  name: gpt\n  n_layer: {n_layer}\n  n_head: 2\n")
    (run_dir / ".hydra" / "config.yaml").write_text(config)
    if "metrics" in files:
        (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in make_metrics()))
    if "eval" in files:
        (run_dir / "eval.json").write_text(json.dumps(make_eval(n_layer, closest)))
    if "probes" in files:
        (run_dir / "probes.json").write_text(json.dumps(make_probes(n_layer)))
    return run_dir


def pixels(path: Path) -> np.ndarray:
    return imread(path)[..., :3]  # (H, W, 3) in [0, 1]


def assert_drawn(path: Path) -> None:
    image = pixels(path)
    inked = np.mean(image.min(axis=-1) < 0.9)  # share of pixels that are not near-white
    assert image.std() > 0.05 and inked > 0.02, f"{path.name}: looks empty ({inked=:.3f})"


def attention_example() -> np.ndarray:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 2, 8, 8))  # (L, H, T, T)
    logits = np.where(np.tril(np.ones((8, 8))) > 0, logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


def noise_entries() -> list[dict]:
    entries = []
    for noise_std, closest in ((0.1, "ridge(lam=0.1)"), (0.5, "ridge(lam=1)")):
        lams, spd = sweeps.ridge_lambda_spd(make_eval(1, closest)["settings"]["train"]["spd"], KS)
        entries.append(dict(noise_std=noise_std, bayes_lambda=noise_std**2 * D, lams=lams, spd=spd))
    return entries


def depth_inputs() -> tuple:
    spd = {1: make_eval(1, "gd(steps=1)")["settings"]["train"]["spd"],
           4: make_eval(4, "ols")["settings"]["train"]["spd"]}
    depths, best, best_spd = sweeps.closest_baselines(spd, default_baselines(BASELINES))
    return depths, KS, default_baselines(BASELINES), best, best_spd


FIGURES = {
    "error_vs_k": lambda: plots.plot_error_curves(make_eval(0)["settings"], bayes_lambda=0.25,
                                                     d=D, n_prompts=1000),
    "spd_ilwd": lambda: plots.plot_spd_ilwd(make_eval(0)["settings"]["train"], d=D),
    "sensitivity": lambda: plots.plot_sensitivity(make_eval(0)["settings"]["train"], d=D),
    "probes": lambda: plots.plot_probe_heatmaps(make_probes(0), "mlp"),
    "training": lambda: plots.plot_training_curves(make_metrics()),
    "attention": lambda: plot_attention(
        attention_example(), labels=token_labels(8, [0, 2, 4, 6], [1, 3, 5, 7])),
    "depth_sweep": lambda: sweeps.plot_depth_sweep(*depth_inputs()),
    "noise_sweep": lambda: sweeps.plot_noise_sweep(noise_entries()),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_draws_and_is_byte_identical(name, tmp_path):
    formats = ("png", "pdf") if name == "error_vs_k" else ("png",)  # PDF is slow to render
    first = save_figure(FIGURES[name](), tmp_path / "a" / name, formats, dpi=60)
    second = save_figure(FIGURES[name](), tmp_path / "b" / name, formats, dpi=60)
    assert_drawn(first[0])
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two identical draws"


def test_error_figure_shows_each_setting_and_the_data():
    settings = make_eval(0)["settings"]
    fig = plots.plot_error_curves(settings, bayes_lambda=0.25, d=D)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["training distribution", "skewed", "x scaled 2"]
    model_line = next(line for line in panels[1].lines if line.get_label() == "model")
    np.testing.assert_allclose(model_line.get_ydata(), settings["skewed"]["error"]["model"]["mean"])
    zero_line = [line for line in panels[0].lines if np.all(np.asarray(line.get_ydata()) == 1.0)]
    assert zero_line, "the zero-predictor line at 1 is missing"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "ridge, Bayes λ* = 0.25" in legend and "OLS (min-norm)" in legend
    assert not any("lam=0.1" in t or "λ = 0.1" in t for t in legend), "grid shown by default"


def test_predictor_names_parse_and_label():
    assert parse_predictor_name("ridge(lam=0.1)") == ("ridge", {"lam": "0.1"})
    assert parse_predictor_name("gd(eta=0.5, steps=3)") == ("gd", {"eta": "0.5", "steps": "3"})
    assert parse_predictor_name("ols") == ("ols", {})
    assert predictor_label("knn(k=3)") == "3-NN (mean y)"
    assert predictor_label("gd(steps=1)") == "GD, 1 step, η tuned"
    assert default_baselines(["zero", "knn(k=3)", "ridge(lam=1)", "ridge(lam=bayes)",
                              "gd(steps=5)", "gd(steps=1)", "ols"]) == [
        "ols", "ridge(lam=bayes)", "gd(steps=1)", "knn(k=3)"]


def test_sweep_summaries_pick_the_lowest_spd():
    depths, _, names, best, best_spd = depth_inputs()
    assert depths == [1, 4]
    assert {names[i] for i in best[0]} == {"gd(steps=1)"} and {names[i] for i in best[1]} == {"ols"}
    spd = make_eval(4, "ols")["settings"]["train"]["spd"]
    np.testing.assert_allclose(best_spd[1], spd["ols"])
    entries = noise_entries()
    assert [float(e["lams"][np.argmin(e["spd"])]) for e in entries] == [0.1, 1.0]
    np.testing.assert_array_equal(entries[0]["lams"], [0.01, 0.1, 1.0, 10.0])  # no Bayes entry
    configs = {"a": {"model": {"n_layer": 1}, "seed": 0}, "b": {"model": {"n_layer": 2}, "seed": 0},
               "c": {"model": {"n_layer": 4}, "seed": 1}, "d": {"model": {"n_layer": 8},
                                                             "seed": 1, "progress": False}}
    assert sweeps.group_sweeps(configs, "model.n_layer") == [["a", "b"], ["c", "d"]]
    assert sweeps.group_sweeps(configs, "task.noise_std") == []


def test_bad_options_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="formats"):
        figures_config({"formats": ["gif"]})
    with pytest.raises(ConfigError, match="runs="):
        discover_runs([str(tmp_path / "nowhere" / "*")])


def test_cli_skips_incomplete_runs_and_draws_the_rest(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "depth" / "0", n_layer=1, closest="gd(steps=1)")
    write_run(runs / "depth" / "1", n_layer=4, files=("eval",))
    write_run(runs / "crashed", files=())  # config only: training never logged
    (runs / "stray").mkdir()
    (runs / "stray" / "metrics.jsonl").write_text("{}\n")  # not a Hydra run directory
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", JAX_PLATFORMS="cpu")
    command = [sys.executable, "-m", "icl_regression.figures", f"runs={runs}",
               f"out={tmp_path / 'plots'}", "formats=[png]", "dpi=50"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"skipped {runs / 'crashed'}: nothing to plot" in result.stdout
    assert f"skipped {runs / 'stray'}: no config.json or .hydra/config.yaml" in result.stdout
    assert "no probes.json (compute_missing=true computes it)" in result.stdout
    plots = tmp_path / "plots"
    for name in ("training_curves", "error_vs_k", "spd_ilwd", "sensitivity", "probes_linear"):
        assert_drawn(plots / "unit_0" / f"{name}.png")
        assert (runs / "depth" / "0" / "plots" / f"{name}.png").read_bytes() == \
            (plots / "unit_0" / f"{name}.png").read_bytes()
    assert_drawn(plots / "unit_1" / "error_vs_k.png")
    assert not (plots / "unit_1" / "training_curves.png").exists()
    assert_drawn(plots / "sweeps" / "unit_depth.png")
    assert not any("crashed" in str(p) for p in plots.rglob("*"))


def test_compute_missing_runs_the_analysis_apps_only_when_asked(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", files=("metrics",))
    (run / "checkpoints").mkdir()
    commands = []

    def fake_app(command, **_):  # stands in for `python -m icl_regression.<app> run_dir=...`
        commands.append(command[2:])
        if command[2] == "icl_regression.evaluate":
            (run / "eval.json").write_text(json.dumps(make_eval(0)))
        return subprocess.CompletedProcess(command, 1 if "probes" in command[2] else 0, "",
                                           "error: probes failed here")

    monkeypatch.setattr(analysis_apps.subprocess, "run", fake_app)
    no_attention = FiguresConfig(attention=dataclasses.replace(FiguresConfig().attention,
                                                               enabled=False))
    analysis_apps.compute_missing(run, no_attention)
    assert commands == []  # nothing is computed unless asked
    record = load_record(run)
    assert record.eval is None and "no eval.json (compute_missing=true computes it)" in record.notes
    logged = []
    analysis_apps.compute_missing(run, FiguresConfig(compute_missing=True), logged.append)
    assert commands == [["icl_regression.analysis.attention", f"run_dir={run}", "seed=0"],
                        ["icl_regression.evaluate", f"run_dir={run}"],
                        ["icl_regression.probes", f"run_dir={run}"]]
    assert load_record(run).eval["n_prompts"] == 1000
    assert logged == ["compute_missing: icl_regression.probes run_dir=" + str(run)
                      + " failed (error: probes failed here)"]


def test_attention_is_drawn_from_the_stored_file(tmp_path):
    import io

    run = write_run(tmp_path / "run", files=("metrics",))
    buffer = io.BytesIO()
    np.savez(buffer, attention=attention_example(), token_labels=np.array(["x1", "y1"] * 4),
             seed=0, step=20)
    (run / "attention.npz").write_bytes(buffer.getvalue())
    record = load_record(run)
    assert record.attention["token_labels"][:2] == ["x1", "y1"] and record.attention["step"] == 20
    report = make_figures(FiguresConfig(runs=(str(run),), out=str(tmp_path / "plots"),
                                        formats=("png",), dpi=40), log=lambda _: None)
    assert any(p.name == "attention.png" for p in report.written)


def test_figures_package_imports_no_jax():
    forbidden = ("jax", "flax", "orbax", "icl_regression.models", "icl_regression.run",
                 "icl_regression.train", "icl_regression.evaluate", "icl_regression.probes",
                 "icl_regression.data.tasks")
    code = ("import sys, icl_regression.figures.app, icl_regression.figures.experiments, "
            f"icl_regression.figures.lsa; bad = [m for m in {forbidden!r} if m in sys.modules]; "
            "print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
