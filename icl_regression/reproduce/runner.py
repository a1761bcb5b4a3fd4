"""Running a plan: every job (a training run or an analysis record) in a process of its own,
`jobs` at a time, a job starting once the runs it reads are trained, claims in order so that
each finishes as early as it can. A job already done is skipped; a training run killed part-way
resumes from its newest checkpoint (icl-train's own resume), so stopping the reproduction and
starting it again redoes nothing. Ctrl-C / SIGTERM stop every child (training checkpoints
first), and the children die with the parent even if it is killed outright (Linux).

At scale=paper the training jobs are Hydra multirun jobs through `launcher` (e.g. slurm: one
SLURM job per run, all submitted at once); the analyses follow here as usual.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from icl_regression.reproduce.plan import DONE_FILE, Plan, StepJob, TrainJob
from icl_regression.storage import write_json

ONE_DEVICE = "--xla_force_host_platform_device_count=1"
DEFAULT_STEP_S = 40.0  # an analysis record's ETA before any timing is known


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Runner:
    plan: Plan
    jobs: int
    logs: Path
    plugins: tuple[str, ...] = ()
    launcher: str | None = None  # paper scale: a Hydra launcher for the training jobs
    launcher_args: tuple[str, ...] = ()  # its KEY=VALUE settings (hydra.launcher.KEY)
    timings: dict[str, float] = field(default_factory=dict)  # job id -> seconds (earlier runs)
    failed: dict[str, str] = field(default_factory=dict)  # job id -> last line of its log
    report: Callable[[str], None] = print

    def estimate(self, job_id: str) -> float:
        if job_id in self.timings:
            return self.timings[job_id]
        job = self.plan.train.get(job_id)
        return job.estimate_s if job else DEFAULT_STEP_S

    def command(self, job: TrainJob | StepJob) -> list[str]:
        plugins = [f"plugins=[{','.join(self.plugins)}]"] if self.plugins else []
        if isinstance(job, TrainJob):
            # One job per run either way: a preset's own sweep (hydra.mode / sweeper params)
            # never applies, since the run's overrides already pick its point.
            where = ([f"hydra.sweep.dir={job.run_dir.parent}",
                      f"hydra.sweep.subdir={job.run_dir.name}", "hydra.sweeper.params={}",
                      f"hydra/launcher={self.launcher}",
                      *(f"hydra.launcher.{arg}" for arg in self.launcher_args)]
                     if self.launcher
                     else [f"hydra.run.dir={job.run_dir}", "hydra.mode=RUN"])
            multirun = ["-m"] if self.launcher else []
            return [sys.executable, "-m", "icl_regression.train", *multirun, *job.overrides,
                    *plugins, *where]
        control = [str(job.control.run_dir)] if job.control else []
        return [sys.executable, "-m", "icl_regression.reproduce.steps", str(job.run.run_dir),
                job.kind, json.dumps(job.options), str(job.record), *control]

    def _env(self) -> dict:
        env = dict(os.environ)
        if self.jobs > 1 and "device_count" not in env.get("XLA_FLAGS", ""):
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + ONE_DEVICE).strip()
        if self.plugins:
            env["ICL_REPRODUCE_PLUGINS"] = ",".join(self.plugins)
        return env

    def _start(self, job_id: str) -> tuple[subprocess.Popen, float]:
        job = self.plan.train.get(job_id) or self.plan.steps[job_id]
        log = self.logs / (job_id.replace(":", "_") + ".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log, "ab")
        proc = subprocess.Popen(self.command(job), stdout=handle, stderr=subprocess.STDOUT,
                                env=self._env(), preexec_fn=_die_with_parent)
        handle.close()
        return proc, time.perf_counter()

    def _finish(self, job_id: str, code: int, seconds: float) -> None:
        job = self.plan.train.get(job_id) or self.plan.steps[job_id]
        if code == 0 and isinstance(job, TrainJob) and _reached(job):
            write_json(job.run_dir / DONE_FILE, {"config_hash": job.config_hash,
                                                 "overrides": list(job.overrides),
                                                 "wall_s": seconds})
        if code == 0 and job.done():
            self.timings[job_id] = seconds
            return
        log = self.logs / (job_id.replace(":", "_") + ".log")
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        self.failed[job_id] = f"exit {code}: {lines[-1] if lines else 'no output'}"

    def pending(self) -> list[str]:
        """Job ids still to do, claims in order (each claim's runs before its records)."""
        out: list[str] = []
        for ids in self.plan.by_claim.values():
            for job_id in ids:
                job = self.plan.train.get(job_id) or self.plan.steps[job_id]
                if job_id not in out and not job.done():
                    out.append(job_id)
        return out

    def order(self, todo: list[str]) -> list[str]:
        """Records first, as soon as their runs are trained (each completes a claim early);
        training longest first (the shortest overall wall time on a fixed number of slots)."""
        claim_of: dict[str, int] = {}
        for i, ids in enumerate(self.plan.by_claim.values()):
            for job_id in ids:
                claim_of.setdefault(job_id, i)
        return sorted(todo, key=lambda j: (0, claim_of[j]) if j in self.plan.steps
                      else (1, -self.estimate(j)))

    def _ready(self, job_id: str, busy: set[str]) -> bool:
        """A record's runs are trained (none still to do or running, none failed)."""
        job = self.plan.steps.get(job_id)
        return job is None or not any(n.id in busy or n.id in self.failed for n in job.needs)

    def fraction_done(self, job_id: str, elapsed_s: float) -> float:
        """How far a running job is: a training run by its newest logged step, a record by its
        time against its estimate (below 1 until it exits)."""
        job = self.plan.train.get(job_id)
        if job is not None:
            return min(last_logged_step(job.run_dir / "metrics.jsonl") / max(job.steps, 1), 1.0)
        return min(elapsed_s / max(self.estimate(job_id), 1e-9), 0.9)

    def _blocked(self, job_id: str) -> bool:
        job = self.plan.steps.get(job_id)
        return job is not None and any(n.id in self.failed for n in job.needs)

    def run(self, on_done: Callable[[str, float], None],
            on_tick: Callable[[dict[str, float]], None] | None = None) -> None:
        """Run every pending job; `on_done(job_id, seconds)` after each, and about once a
        second `on_tick({running job id: fraction done})`."""
        todo = self.order(self.pending())
        remaining, running = set(todo), {}
        parallel = len(todo) if self.launcher else self.jobs
        last_tick = 0.0
        try:
            while remaining or running:
                now = time.perf_counter()
                if on_tick and running and now - last_tick >= 1.0:
                    last_tick = now
                    on_tick({job_id: self.fraction_done(job_id, now - start)
                             for job_id, (_, start) in running.items()})
                for job_id in [j for j in todo if j in remaining]:
                    if len(running) >= parallel:
                        break
                    if self._blocked(job_id):
                        remaining.discard(job_id)
                        self.failed[job_id] = "skipped: a run it reads failed"
                    elif self._ready(job_id, remaining | set(running)):
                        remaining.discard(job_id)
                        running[job_id] = self._start(job_id)
                time.sleep(0.2)
                for job_id, (proc, start) in list(running.items()):
                    if proc.poll() is not None:
                        del running[job_id]
                        seconds = time.perf_counter() - start
                        self._finish(job_id, proc.returncode, seconds)
                        on_done(job_id, seconds)
        except BaseException:
            for proc, _ in running.values():
                proc.send_signal(signal.SIGTERM)  # icl-train checkpoints, then exits
            for proc, _ in running.values():
                proc.wait()
            raise


def last_logged_step(metrics: Path) -> int:
    """The step of the last whole line of a training run's metrics.jsonl; 0 if none yet."""
    try:
        with open(metrics, "rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - 4096, 0))
            lines = handle.read().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            step = json.loads(line).get("step")
        except (ValueError, AttributeError):
            continue  # a line still being written, or not a record
        if isinstance(step, int):
            return step
    return 0


def _reached(job: TrainJob) -> bool:
    """icl-train also exits 0 when a signal stopped it (after a checkpoint): done only at the
    last step."""
    from icl_regression.checkpoints import checkpoint_steps

    steps = checkpoint_steps(job.run_dir / "checkpoints")
    return bool(steps) and max(steps) >= job.steps
