"""Raventós, Paul, Chen & Ganguli 2023, "Pretraining task diversity and the emergence of
non-Bayesian in-context learning for regression" (NeurIPS): trained on a pool of M tasks, a
transformer is the pool's Bayes predictor (dMMSE) when M is small and ridge regression (the
Bayes predictor of the Gaussian prior, fresh tasks) beyond a task-diversity threshold (Fig. 2)."""

from __future__ import annotations

import numpy as np

from icl_regression.reproduce.claims import (
    Measurement,
    RunSpec,
    Step,
    at_least,
    at_most,
    register_claim,
    register_paper,
    register_run,
)

RAVENTOS = register_paper("raventos2023", "Raventós et al. 2023, Pretraining task diversity and "
                                          "the emergence of non-Bayesian in-context learning "
                                          "for regression (NeurIPS)")
POOLS = (2, 8, 32, 128, 512)
EXPERIMENT = {"name": "task_diversity", "n_prompts": 1000}
STEPS = {}
for pool in POOLS:
    register_run(RunSpec(f"pool_{pool}", "task_diversity_cpu", (f"task.pool_size={pool}",),
                         paper_preset="task_diversity"))
    STEPS[pool] = Step("experiment", f"pool_{pool}", EXPERIMENT)


def _spd(records, pool: int, setting: str) -> dict:
    """Mean over k ≥ 1 of the SPD from the model to dMMSE and to ridge λ*, on `setting`."""
    block = records(STEPS[pool])["results"]["settings"][setting]["spd"]
    return {name: float(np.nanmean(np.array(block[key][1:], float)))
            for name, key in (("dmmse", "dmmse"), ("ridge", "ridge(lam=bayes)"))}


@register_claim("raventos.small_pool_dmmse", paper=RAVENTOS, where="Fig. 2", needs=(STEPS[2],),
                statement=f"with M = {POOLS[0]} pretraining tasks the model is the pool's "
                          "Bayes predictor (dMMSE), not ridge",
                quantity="SPD(model, ridge λ*) − SPD(model, dMMSE), pool tasks",
                check=at_least(0.0), paper_value="nearest dMMSE below the threshold")
def small_pool_dmmse(records) -> Measurement:
    spd = _spd(records, POOLS[0], "pool")
    return Measurement(spd["ridge"] - spd["dmmse"], detail=spd)


@register_claim("raventos.large_pool_ridge", paper=RAVENTOS, where="Fig. 2",
                needs=(STEPS[POOLS[-1]],), check=at_least(0.0),
                statement=f"with M = {POOLS[-1]} tasks the model tracks ridge on fresh tasks",
                quantity="SPD(model, dMMSE) − SPD(model, ridge λ*), fresh tasks",
                paper_value="nearest ridge above the threshold")
def large_pool_ridge(records) -> Measurement:
    spd = _spd(records, POOLS[-1], "fresh")
    return Measurement(spd["dmmse"] - spd["ridge"], detail=spd)


@register_claim("raventos.transition", paper=RAVENTOS, where="Fig. 2",
                needs=tuple(STEPS.values()), check=at_most(float(POOLS[-1])),
                statement="the switch from dMMSE to ridge happens at a finite pool size "
                          "(its location at this scale, as measured)",
                quantity="smallest M with SPD to ridge < SPD to dMMSE on fresh tasks",
                paper_value="a threshold, growing about linearly with d")
def transition(records) -> Measurement:
    per_pool = {pool: _spd(records, pool, "fresh") for pool in POOLS}
    switched = [pool for pool, s in per_pool.items() if s["ridge"] < s["dmmse"]]
    curves = {f"SPD to {n}": {"x": list(POOLS), "y": [per_pool[p][n] for p in POOLS]}
              for n in ("dmmse", "ridge")}
    return Measurement(float(min(switched)) if switched else None, curves=curves,
                       detail={"spd_fresh": {str(p): s for p, s in per_pool.items()}})
