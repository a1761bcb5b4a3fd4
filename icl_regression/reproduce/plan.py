"""What a reproduction must do: the training runs and analysis records of the chosen claims and
seeds, where each lives, and whether it is already done.

A run directory is `ROOT/<scale>/<run>/seed<k>-<hash>`, the hash over the run's composed
training config and the training code's version (`code_version`: the sources of the
packages that decide a run's numbers), so a changed preset or changed training code trains a
new run instead of reusing one that no longer matches. A run is done when
`reproduce_done.json` in it records that hash (written after icl-train reached the last step);
a run killed part-way resumes from its newest checkpoint. A record is
`RUN/reproduce/<step key>-<analysis version>.json`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from icl_regression.integrity import read_json_or_none
from icl_regression.reproduce.claims import CLAIMS, RUNS, Claim, Step
from icl_regression.reproduce.steps import scaled_options

PACKAGE = Path(__file__).resolve().parents[1]
# The composed config already holds every preset value, so the presets are not hashed here.
TRAINING_CODE = ("train", "models", "data", "config", "checkpoints.py")
ANALYSIS_CODE = ("evaluate", "baselines", "probes", "analysis", "experiments", "run.py",
                 "reproduce/steps.py")
DONE_FILE = "reproduce_done.json"


@functools.cache
def source_hash(parts: tuple[str, ...]) -> str:
    """sha256 over the package's .py / .yaml files under `parts`: 12 hex digits."""
    digest = hashlib.sha256()
    for part in parts:
        path = PACKAGE / part
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.suffix in (".py", ".yaml"))
        for file in files:
            digest.update(str(file.relative_to(PACKAGE)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]


def code_version() -> str:
    return source_hash(TRAINING_CODE)


def analysis_version() -> str:
    return source_hash(ANALYSIS_CODE)


@dataclass(frozen=True)
class TrainJob:
    run: str  # RunSpec name
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path
    config_hash: str
    steps: int
    estimate_s: float  # before any timing is known: from the model and prompt sizes

    @property
    def id(self) -> str:
        return f"train:{self.run}:seed{self.seed}"

    def done(self) -> bool:
        marker = read_json_or_none(self.run_dir / DONE_FILE)
        return isinstance(marker, dict) and marker.get("config_hash") == self.config_hash


@dataclass(frozen=True)
class StepJob:
    step: Step
    seed: int
    kind: str
    options: dict
    run: TrainJob
    control: TrainJob | None
    record: Path

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.step.run}:seed{self.seed}:{self.step.key}"

    @property
    def needs(self) -> tuple[TrainJob, ...]:
        return (self.run,) + ((self.control,) if self.control else ())

    def done(self) -> bool:
        stored = read_json_or_none(self.record)
        return isinstance(stored, dict) and "result" in stored


@dataclass
class Plan:
    claims: list[Claim]
    seeds: list[int]
    train: dict[str, TrainJob] = dataclasses.field(default_factory=dict)
    steps: dict[str, StepJob] = dataclasses.field(default_factory=dict)
    by_claim: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # job ids, in order

    def record(self, step: Step, seed: int) -> Path:
        return self.steps[self._step_id(step, seed)].record

    def _step_id(self, step: Step, seed: int) -> str:
        return f"{step.kind}:{step.run}:seed{seed}:{step.key}"


def train_job(run: str, seed: int, scale: str, root: Path) -> TrainJob:
    """The run's checked training config (composed as icl-train would) and its directory."""
    from icl_regression.cli import compose_train
    from icl_regression.train.resume import config_dict

    overrides = tuple(RUNS.get(run).train_overrides(scale, seed))
    cfg = compose_train(overrides)
    text = json.dumps([config_dict(cfg), code_version()], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    run_dir = root / scale / run / f"seed{seed}-{digest}"
    return TrainJob(run, seed, overrides, run_dir, digest, cfg.steps, training_estimate(cfg))


def training_estimate(cfg) -> float:
    """Seconds to train on this 2-core CPU, roughly: steps × (5 ms + prompts × tokens × layers
    × width² × 1.4 ns), the constant fitted to the quickstart (61 steps/s)."""
    units = (cfg.batch_size * cfg.task.n_points * max(cfg.model.n_layer, 1)
             * max(cfg.model.d_model, 16) ** 2)
    return cfg.steps * (0.005 + 1.4e-9 * units)


def make_plan(claims: Sequence[Claim], seeds: Sequence[int], scale: str, root: Path) -> Plan:
    """Every training run and record the claims need, each once (shared runs trained once)."""
    plan = Plan(list(claims), list(seeds))
    for claim in claims:
        ids: list[str] = []
        for seed in seeds:
            for run in claim.runs:
                job = plan.train.get(f"train:{run}:seed{seed}") or train_job(run, seed, scale,
                                                                             root)
                plan.train[job.id] = job
                ids.append(job.id)
            for step in claim.needs:
                ids.append(_add_step(plan, step, seed, scale))
        plan.by_claim[claim.name] = list(dict.fromkeys(ids))
    return plan


def _add_step(plan: Plan, step: Step, seed: int, scale: str) -> str:
    run = plan.train[f"train:{step.run}:seed{seed}"]
    control = plan.train[f"train:{step.control}:seed{seed}"] if step.control else None
    options = scaled_options(step.kind, step.options, scale)
    scaled = dataclasses.replace(step, options=options)
    record = run.run_dir / "reproduce" / f"{scaled.key}-{analysis_version()}.json"
    job = StepJob(step, seed, step.kind, options, run, control, record)
    plan.steps.setdefault(job.id, job)
    return job.id


def selected_claims(names: Sequence[str]) -> list[Claim]:
    """`claims=all`, or names and paper keys (`garg2022` selects all of its claims)."""
    from icl_regression.reproduce.claims import claim_names

    every = claim_names()
    if list(names) in (["all"], []):
        return [CLAIMS.get(n) for n in every]
    chosen = [n for n in every if n in names or CLAIMS.get(n).paper in names]
    return [CLAIMS.get(n) for n in chosen]
