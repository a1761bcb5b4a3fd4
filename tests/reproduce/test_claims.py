"""Claims as code: the verdict rule against an independent computation, every registered claim
against the contract (parametrised over the registry, so a new claim is tested by being
registered), measurements on hand-made records, plans that reuse runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from icl_regression.reproduce import claims as C
from icl_regression.reproduce.claims import CLAIMS, RUNS, Measurement, claim_names
from icl_regression.reproduce.steps import KINDS

NAMES = claim_names()


@pytest.mark.parametrize("values", [[0.2, 0.4, 0.3], [1.0, 1.5], [0.1, 0.12, 0.09, 0.2, 0.15]])
def test_interval_over_seeds_is_student_t(values):
    spread = C.interval([Measurement(v) for v in values])
    n = len(values)
    half = stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
    assert spread["over"] == "seeds" and spread["n_seeds"] == n
    assert spread["mean"] == pytest.approx(np.mean(values))
    assert spread["hi"] - spread["mean"] == pytest.approx(half, rel=2e-3)


def test_one_seed_uses_its_prompt_band_or_the_point():
    assert C.interval([Measurement(0.5, 0.4, 0.7)])["lo"] == 0.4
    point = C.interval([Measurement(0.5)])
    assert (point["lo"], point["hi"], point["over"]) == (0.5, 0.5, "point")
    assert C.interval([Measurement(None)])["mean"] is None


@pytest.mark.parametrize("lo, hi, expected", [(0.001, 0.009, "holds"), (0.02, 0.05, "fails"),
                                              (0.005, 0.02, "inconclusive")])
def test_verdict_reads_the_whole_interval(lo, hi, expected):
    spread = {"mean": (lo + hi) / 2, "lo": lo, "hi": hi}
    assert C.verdict(spread, C.at_most(0.01)) == expected
    flipped = {"holds": "fails", "fails": "holds", "inconclusive": "inconclusive"}[expected]
    assert C.verdict(spread, C.at_least(0.01)) == flipped


def test_nothing_measured_is_inconclusive():
    assert C.verdict({"mean": None, "lo": None, "hi": None}, C.at_least(0)) == "inconclusive"


@pytest.mark.parametrize("name", NAMES)
def test_claim_contract(name):
    claim = CLAIMS.get(name)
    assert claim.paper in C.PAPERS and claim.statement and claim.quantity and claim.where
    assert claim.check.op in ("<=", ">=") and math.isfinite(claim.check.bound)
    assert claim.needs, "a claim is measured from records"
    for step in claim.needs:
        assert step.kind in KINDS
        assert step.run in RUNS and (step.control is None or step.control in RUNS)
    assert set(claim.runs) <= set(RUNS.names())


@pytest.mark.parametrize("run", sorted({r for n in NAMES for r in CLAIMS.get(n).runs}))
@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_every_run_composes_at_every_scale(run, scale):
    from icl_regression.cli import compose_train

    cfg = compose_train(RUNS.get(run).train_overrides(scale, seed=1))
    assert cfg.seed == 1 and cfg.steps > 0


def test_claims_share_runs_instead_of_training_twice(tmp_path):
    from icl_regression.reproduce.plan import make_plan

    chosen = [CLAIMS.get("akyurek.probe_xty"), CLAIMS.get("fu.newton_linear")]
    plan = make_plan(chosen, [0, 1], "cpu", tmp_path)
    assert sorted(plan.train) == sorted(f"train:{r}:seed{s}" for s in (0, 1)
                                        for r in ("probe_study", "probe_study_fixed_w"))
    dirs = {job.run_dir for job in plan.train.values()}
    assert len(dirs) == 4 and all(d.is_relative_to(tmp_path / "cpu") for d in dirs)
    again = make_plan(chosen, [0, 1], "cpu", tmp_path)
    assert {j.run_dir for j in again.train.values()} == dirs  # same config: same directory


def test_a_changed_config_is_a_new_run(tmp_path):
    from icl_regression.reproduce.plan import train_job

    first = train_job("scale_1x16", 0, "cpu", tmp_path)
    assert train_job("scale_1x16", 1, "cpu", tmp_path).run_dir != first.run_dir
    assert train_job("scale_1x16", 0, "paper", tmp_path).run_dir != first.run_dir
    assert not first.done()


def _setting(errors: dict, k: list[int], spd: dict | None = None) -> dict:
    return {"k": k, "error": {n: {"mean": m, "lo": [v - 0.01 for v in m],
                                  "hi": [v + 0.01 for v in m]} for n, m in errors.items()},
            "spd": spd or {}}


def test_garg_measurements_on_a_hand_made_record():
    d, n = 3, 7
    ks = list(range(n))
    model = [1.0, 0.7, 0.4, 0.05, 0.01, 0.004, 0.002]
    ols = [1.0, 0.66, 0.33, 0.0, 0.0, 0.0, 0.0]
    record = {"task": {"d": d, "n_points": n},
              "settings": {"train": _setting({"model": model, "ols": ols}, ks)}}
    records = lambda step: record  # noqa: E731
    below = CLAIMS.get("garg.linear_below_d").measure(records)
    assert below.value == pytest.approx(np.mean([0.04, 0.07]))  # k = 1, 2 (k < d = 3)
    at_2d = CLAIMS.get("garg.linear_2d").measure(records)
    assert at_2d.value == 0.002 and at_2d.lo == pytest.approx(-0.008)  # k = 2d = 6


def test_tree_claim_takes_the_best_of_every_tree_and_xgboost():
    ks = [0, 1, 2]
    errors = {"model": [1, 0.8, 0.6], "tree(max_depth=3)": [1, 0.9, 0.75],
              "tree(max_depth=None)": [1, 0.9, 0.7], "xgboost": [1, 1.0, 0.9]}
    record = {"task": {"d": 2, "n_points": 3}, "settings": {"train": _setting(errors, ks)}}
    measured = CLAIMS.get("garg.tree_vs_trees").measure(lambda step: record)
    assert measured.value == pytest.approx(0.6 - 0.7)
    assert measured.detail["best_baseline"] == "tree(max_depth=None)"


def test_depth_margin_is_distance_to_the_nearest_other_algorithm():
    ks = [0, 1, 2]
    spd = {"gd(steps=1)": [None, 0.1, 0.2], "ridge(lam=1)": [None, 0.3, 0.5],
           "ridge(lam=0.1)": [None, 0.25, 0.45], "ols": [None, 0.6, 0.6], "zero": [1, 1, 1]}
    record = {"settings": {"train": _setting({"model": [1, 1, 1]}, ks, spd)}}
    measured = CLAIMS.get("akyurek.shallow_gd").measure(lambda step: record)
    assert measured.value == pytest.approx(np.mean([0.25, 0.45]) - np.mean([0.1, 0.2]))


def test_raventos_transition_is_the_first_pool_nearer_ridge():
    from icl_regression.reproduce.papers import raventos2023 as R

    nearer_ridge = {2: False, 8: False, 32: True, 128: True, 512: True}

    def records(step):
        pool = int(step.run.split("_")[1])
        ridge, dmmse = (0.1, 0.5) if nearer_ridge[pool] else (0.5, 0.1)
        spd = {"dmmse": [0, dmmse, dmmse], "ridge(lam=bayes)": [0, ridge, ridge]}
        return {"results": {"settings": {"fresh": {"spd": spd}, "pool": {"spd": spd}}}}

    assert CLAIMS.get("raventos.transition").measure(records).value == 32
    assert CLAIMS.get("raventos.small_pool_dmmse").measure(records).value == pytest.approx(0.4)
    assert R.POOLS[0] == 2


def test_progress_of_running_jobs_reads_the_newest_logged_step(tmp_path):
    """The bar moves while a run trains: a training job by its metrics.jsonl (a half-written
    last line is skipped), a record by its time against the estimate, never 1 before it ends."""
    from icl_regression.reproduce.plan import make_plan
    from icl_regression.reproduce.runner import Runner, last_logged_step

    plan = make_plan([CLAIMS.get("oswald.loss_equals_gd")], [0], "cpu", tmp_path)
    runner = Runner(plan, jobs=1, logs=tmp_path / "logs")
    (train_id, job), = plan.train.items()
    assert last_logged_step(job.run_dir / "metrics.jsonl") == 0  # not started
    job.run_dir.mkdir(parents=True)
    logged = list(range(0, job.steps // 2 + 1, max(job.steps // 8, 1)))
    lines = [f'{{"step": {step}, "loss": 1.0}}' for step in logged]
    (job.run_dir / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 99999, "lo')
    assert runner.fraction_done(train_id, 0.0) == pytest.approx(logged[-1] / job.steps)
    record_id = next(iter(plan.steps))
    estimate = runner.estimate(record_id)
    assert runner.fraction_done(record_id, estimate / 4) == pytest.approx(0.25)
    assert runner.fraction_done(record_id, estimate * 10) == 0.9
