"""The architecture comparison's presets: every built-in model but LSA is swept, each size
composes and validates, and the CPU sizes match the GPT's parameter count within 10%."""

from __future__ import annotations

import pytest
from conftest import CONF_DIR, compose, sweep_of

from icl_regression.config import to_dataclass, validate
from icl_regression.models import build_model, count_params, model_names

CPU_SIZES = sorted(p.stem for p in (CONF_DIR / "architecture").glob("*.yaml"))
BUILT_IN = {"gpt", "lsa", "lstm", "gru", "mamba", "linear_attention", "hyena", "looped",
            "mambaformer"}
PAPER_SIZES = sorted(p.stem for p in (CONF_DIR / "architecture_paper").glob("*.yaml"))


def config(preset: str, group: str, option: str):
    return validate(to_dataclass(compose([f"preset={preset}", f"+{group}={option}"])))


@pytest.mark.parametrize("preset, group", [
    ("architectures_cpu", "+architecture"), ("architectures_sparse_linear_cpu", "+architecture"),
    ("architectures_decision_tree_cpu", "+architecture"),
    ("architectures", "+architecture_paper"), ("architectures_decision_tree",
                                               "+architecture_paper")])
def test_every_model_but_lsa_is_in_every_comparison_sweep(preset, group):
    mode, swept = sweep_of(preset, group)
    assert mode == "MULTIRUN"
    swept_models = {option.split("_curriculum")[0] for option in swept}
    assert swept_models == BUILT_IN - {"lsa"} and swept_models <= set(model_names())
    assert set(swept) == set(CPU_SIZES if group == "+architecture" else PAPER_SIZES)


def test_cpu_sizes_have_the_gpts_parameter_count_within_ten_percent():
    counts = {}
    for option in CPU_SIZES:
        cfg = config("architectures_base_cpu", "architecture", option)
        assert cfg.model.name == option.split("_curriculum")[0] and cfg.steps == 2000
        counts[option] = count_params(build_model(cfg.model, cfg.task, 0))
    gpt = counts["gpt"]
    assert all(abs(n / gpt - 1) < 0.1 for n in counts.values()), counts


@pytest.mark.parametrize("option", PAPER_SIZES)
def test_accelerator_sizes_compose_at_the_papers_scale(option):
    cfg = config("architectures_base", "architecture_paper", option)
    assert (cfg.task.d, cfg.task.n_points, cfg.curriculum.enabled) == (20, 40, True)
    assert cfg.model.name == option.split("_curriculum")[0]


@pytest.mark.slow
def test_accelerator_sizes_have_the_gpts_parameter_count_within_ten_percent():
    counts = {option: count_params(build_model(cfg.model, cfg.task, 0)) for option in PAPER_SIZES
              if (cfg := config("architectures_base", "architecture_paper", option))}
    assert all(abs(n / counts["gpt"] - 1) < 0.1 for n in counts.values()), counts
