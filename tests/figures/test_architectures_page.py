"""The architecture comparison's figure and generated page from hand-made records: the best
learning rate per model is the one with the lower error, and the page's numbers are the
records' own."""

from __future__ import annotations

import json

from icl_regression.figures.architectures import best_runs, plot_architectures
from icl_regression.figures.architectures_page import main, render

K = list(range(11))


def band(values):
    return {"mean": values, "lo": values, "hi": values}


def result(model, family, lr, level, **extra):
    curve = [1.0] + [level] * 10
    return {"results": {
        "model": model, "family": family, "lr": lr, "n_params": 1234, "n_layers": 2,
        "d_model": 8, "d": 5, "n_points": 11, "curriculum": False, "k": K,
        "training": {"train_s": 12.5, "steps": 2000, "steps_per_s_median": 160.0},
        "error": {"model": band(curve), "ols": band([1.0] + [0.0] * 10)},
        "extrapolation": extra.pop("extrapolation", {"n_points": 44, "limit": None, "error": {
            "model": band([1.0] + [level] * 43), "ols": band([1.0] + [0.0] * 43)}}),
        "layers": [[1.0] * 11, curve], "loops": None,
        "cost": {"n_points": 1024, "n_prompts": 8, "n_tokens": 1024, "compile_s": 1.0,
                 "forward_s": 0.0123, "memory_mib": 45.6}, **extra}, "wall_s": 3.0}


RECORDS = [result("gpt", "linear", 0.002, 0.25), result("gpt", "linear", 0.006, 0.0625),
           result("lstm", "linear", 0.002, 0.75,
                  extrapolation={"skipped": "reads at most 11 points"}),
           result("gpt", "sparse_linear", 0.006, 0.125)]


def test_the_lower_error_learning_rate_is_kept_and_every_one_is_listed():
    best = best_runs(RECORDS)
    assert best[("gpt", "linear")]["lr"] == 0.006 and len(best) == 3
    page = render(RECORDS, None)
    assert "| gpt | 1,234 | 2 × 8 | 0.002: 0.250, 0.006: 0.062 | 0.006 |" in page
    assert "| gpt | 0.062 | 0.062 | 0.062 | 0.062 | 0.062 |" in page  # k = d, 2d, mean, 21, 43
    assert "| lstm | 0.750 | 0.750 | 0.750 | not readable | not readable |" in page
    assert "| gpt | 1024 | 1024 | 12.3 | 45.6 | 1.0 |" in page
    assert "gpt (0.062); sparse linear: none" in page  # linear, below 0.1 at k = 2d
    assert "lstm (0.750); sparse linear: none" in page  # linear, above 0.5


def test_the_figure_and_the_page_are_written_from_files(tmp_path):
    assert plot_architectures(RECORDS).axes
    records = tmp_path / "records.json"
    records.write_text(json.dumps(RECORDS))
    main(["--records", str(records), "--throughput", str(tmp_path / "absent.json"),
          "--out", str(tmp_path / "page.md")])
    assert "benchmarks/models_throughput.py not run" in (tmp_path / "page.md").read_text()
