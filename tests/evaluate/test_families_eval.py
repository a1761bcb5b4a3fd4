"""icl-eval per family: its baselines, accuracy, per-component selection; figures read it."""

import json
import subprocess
import sys

import numpy as np
import pytest

from icl_regression.config import TaskConfig
from icl_regression.evaluate.eval_json import format_table, validate_eval_json
from icl_regression.evaluate.evaluation import evaluate_baselines

FAST = dict(n_prompts=400, settings=("train", "x_scale_2"), progress=False)


@pytest.fixture(scope="module")
def mixture_eval():
    task = TaskConfig(family="noise_mixture", d=3, n_points=8, noise_stds=(0.1, 1.0))
    return validate_eval_json(evaluate_baselines(task, **FAST))


def test_noise_mixture_scores_each_sigma_against_its_oracle(mixture_eval):
    train = mixture_eval["settings"]["train"]
    assert {"ridge(sigma=0.1)", "ridge(sigma=1)", "mixture_bayes"} <= set(train["error"])
    comps = train["components"]
    assert list(comps) == ["sigma=0.1", "sigma=1"]
    assert sum(c["n_prompts"] for c in comps.values()) == 400
    for label, ridge in (("sigma=0.1", "ridge(sigma=0.1)"), ("sigma=1", "ridge(sigma=1)")):
        comp = comps[label]
        assert comp["oracle"]["baseline"] == "ridge"
        # the oracle is that σ's ridge, run on the component's prompts alone: same numbers
        np.testing.assert_allclose(comp["error"]["oracle"]["mean"], comp["error"][ridge]["mean"],
                                   rtol=1e-5)
        k = 3  # k = d: the Bayes predictor of the mixture is never worse than a wrong σ
        other = [n for n in comp["error"] if n.startswith("ridge(sigma") and n != ridge][0]
        assert comp["error"]["mixture_bayes"]["mean"][k] < comp["error"][other]["mean"][k]
    assert "component sigma=0.1" in format_table(mixture_eval)


def test_classification_reports_accuracy_and_skips_w_x_settings():
    task = TaskConfig(family="linear_classification", d=3, n_points=8)
    out = validate_eval_json(evaluate_baselines(task, **FAST))
    assert list(out["settings"]) == ["train"] and "x_scale_2" in out["family"]["skipped_settings"]
    acc = out["settings"]["train"]["accuracy"]
    assert acc["zero"] == [0.5] * 8 and acc["logistic(lam=1)"][-1] > 0.7
    assert "accuracy of sign" in format_table(out)


def test_tree_family_runs_expensive_baselines_on_a_subset():
    pytest.importorskip("sklearn")
    pytest.importorskip("xgboost")
    task = TaskConfig(family="decision_tree", d=3, n_points=6, tree_depth=2)
    out = validate_eval_json(evaluate_baselines(task, **FAST, expensive_prompts=30))
    assert out["predictors"]["tree(max_depth=2)"]["n_prompts"] == 30
    assert {"tree(max_depth=None)", "xgboost", "knn(k=3)"} <= set(out["settings"]["train"]["error"])
    assert out["family"]["has_w"] is False and out["implicit_prompts"] == 0


def test_figures_read_eval_json_without_jax(mixture_eval, tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(mixture_eval))
    code = ("import sys; from icl_regression.figures import mixture; "
            f"mixture.main([{str(path)!r}, {str(tmp_path / 'fig')!r}]); "
            "assert 'jax' not in sys.modules, 'figures imported jax'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "fig.png").stat().st_size > 1000
    assert (tmp_path / "fig_components.png").stat().st_size > 1000
