"""`icl-reproduce` / `make reproduce` / `python -m icl_regression.reproduce`: re-derive the
papers' claims from scratch and say which hold.

    icl-reproduce                                 # every claim, CPU scale, seed 0
    icl-reproduce claims=[garg.linear_2d,oswald2022] seeds=3
    icl-reproduce scale=paper hydra/launcher=slurm hydra.launcher.partition=gpu

It trains the runs the chosen claims need (each once, however many claims read it), computes
the records they are measured from, measures every claim on every seed, and prints one table:
claim, the paper's number, the measured value with its 95% interval, the test, the verdict. It
writes OUT/reproduction.json and the result pages (reproduce/pages.py). Runs and records are
reused while their config and code version match (reproduce/plan.py): a second call right
after the first trains nothing, and one that was killed picks up where it stopped.
Options: conf/reproduce.yaml.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from icl_regression.cli import App, run_app
from icl_regression.config import once
from icl_regression.config.checks import at_least, require
from icl_regression.integrity import read_json_or_none
from icl_regression.reproduce import measure
from icl_regression.reproduce.plan import analysis_version, code_version, make_plan, selected_claims
from icl_regression.reproduce.runner import Runner
from icl_regression.storage import write_json

SCALES = ("cpu", "paper", "smoke")


@dataclass(frozen=True)
class ReproduceConfig:
    claims: tuple[str, ...] = ("all",)  # claim names or paper keys (garg2022, ...), or all
    seeds: int = 1  # training seeds 0..seeds-1 of every run
    scale: str = "cpu"  # cpu | paper (accelerator presets) | smoke (a few steps: wiring only)
    root: str = "runs/reproduce"  # runs go to ROOT/<scale>/<run>/seed<k>-<hash>
    out: str = ""  # reproduction.json + pages; empty: docs/results (cpu), ROOT/<scale> (else)
    jobs: int = 2  # processes at once (cpu, smoke); each gets one CPU device when > 1
    # Training through a Hydra launcher (paper scale: e.g. slurm); on the command line
    # `hydra/launcher=slurm hydra.launcher.partition=gpu` sets both, as for icl-train.
    launcher: str | None = None
    launcher_args: tuple[str, ...] = ()  # its KEY=VALUE settings (e.g. partition=gpu)
    pages: bool = True  # write the result pages
    plugins: tuple[str, ...] = ()  # modules to import first (icl_regression.plugins)

    @property
    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        return Path("docs/results") if self.scale == "cpu" else Path(self.root) / self.scale


@once
def check_reproduce(cfg: ReproduceConfig) -> ReproduceConfig:
    from icl_regression.reproduce.claims import PAPERS, claim_names

    names = claim_names()
    allowed = ("all", *PAPERS, *names)
    for name in cfg.claims:
        require(name in allowed, "claims", name, f"allowed: all, a paper ({', '.join(PAPERS)})"
                f" or a claim ({', '.join(names)})")
    require(cfg.scale in SCALES, "scale", cfg.scale, f"allowed: {', '.join(SCALES)}")
    at_least(cfg, "", 1, "seeds", "jobs")
    from icl_regression.cli import CONF_DIR

    launchers = sorted(p.stem for p in (Path(CONF_DIR) / "hydra" / "launcher").glob("*.yaml"))
    require(cfg.launcher is None or cfg.launcher in (*launchers, "submitit_local", "basic"),
            "launcher", cfg.launcher, f"null (local processes) or a Hydra launcher: "
            f"{', '.join([*launchers, 'submitit_local'])}")
    require(not cfg.launcher_args or cfg.launcher is not None, "launcher_args",
            cfg.launcher_args, "settings of the launcher that launcher= names")
    for arg in cfg.launcher_args:
        require("=" in arg, "launcher_args", arg, "KEY=VALUE")
    return cfg


def reproduce(cfg: ReproduceConfig) -> dict:
    """Train what is missing, compute the records, measure, write reproduction.json."""
    start = time.perf_counter()
    claims = selected_claims(cfg.claims)
    seeds = list(range(cfg.seeds))
    plan = make_plan(claims, seeds, cfg.scale, Path(cfg.root))
    out = cfg.out_dir
    earlier = read_json_or_none(out / "reproduction.json") or {}
    runner = Runner(plan, cfg.jobs, Path(cfg.root) / cfg.scale / "logs", cfg.plugins,
                    cfg.launcher, cfg.launcher_args, timings=dict(earlier.get("timings", {})))
    todo = runner.pending()
    print(f"[reproduce] {len(claims)} claims x {len(seeds)} seed(s), scale={cfg.scale}: "
          f"{len(plan.train)} runs, {len(plan.steps)} records; to do: {len(todo)} jobs "
          f"(~{sum(runner.estimate(j) for j in todo) / 60 / cfg.jobs:.0f} min)", flush=True)
    elapsed = Path(cfg.root) / cfg.scale / "elapsed.json"
    spent = float((read_json_or_none(elapsed) or {}).get("seconds", 0.0))

    def spent_so_far() -> float:  # the work's wall time over every call that did some
        total = spent + time.perf_counter() - start
        write_json(elapsed, {"seconds": total})  # after every job: a kill loses nothing
        return total

    _run_with_progress(runner, todo, cfg.jobs, spent_so_far)
    if todo:
        spent = spent_so_far()
    result = measure.measure_all(plan, runner.failed)
    result.update({"scale": cfg.scale, "seeds": seeds, "code_version": code_version(),
                   "analysis_version": analysis_version(), "jobs": cfg.jobs,
                   "wall_s": spent, "call_s": time.perf_counter() - start,
                   "machine": f"{platform.machine()}, {platform.python_version()}",
                   "timings": {**earlier.get("timings", {}), **runner.timings}})
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "reproduction.json", result)
    print(measure.format_table(result))
    if cfg.pages:
        from icl_regression.reproduce.pages import write_pages

        written = write_pages(result, out)
        print(f"[reproduce] wrote {out / 'reproduction.json'} and {len(written)} pages")
    return result


def _run_with_progress(runner: Runner, todo: list[str], jobs: int, tick) -> None:
    """One bar over the estimated work, and a line as each claim's last job ends, with the ETA
    of the rest (from the previous reproduction's timings where known)."""
    estimates = {j: runner.estimate(j) for j in todo}
    total = sum(estimates.values())
    left = {name: [j for j in ids if j in todo] for name, ids in runner.plan.by_claim.items()}
    announced = {name for name, ids in left.items() if not ids}
    cumulative, counted = 0.0, set()
    for name, ids in left.items():  # the ETA of each claim, claims taken in order
        cumulative += sum(estimates[j] for j in ids if j not in counted)
        counted.update(ids)
        if ids:
            print(f"[reproduce] {name}: {len(ids)} jobs, ETA ~{cumulative / jobs / 60:.0f} min",
                  flush=True)
    bar = tqdm(total=round(total), unit="s(est)", desc="reproduce", disable=not todo)
    started, finished = time.perf_counter(), [0.0]  # the estimates of the jobs that ended

    def advance(partial: float = 0.0) -> None:
        bar.n = max(bar.n, min(round(finished[0] + partial), bar.total))
        bar.refresh()

    def on_tick(running: dict[str, float]) -> None:
        advance(sum(fraction * estimates[j] for j, fraction in running.items()))
        names = {j: "/".join(j.split(":")[1:3]) for j in running}  # run/seed: one job each
        bar.set_postfix_str(", ".join(f"{names[j]} {f:.0%}" for j, f in running.items()),
                            refresh=False)

    def on_done(job_id: str, seconds: float) -> None:
        finished[0] += estimates[job_id]
        bar.set_postfix_str("", refresh=False)  # the next tick names what still runs
        advance()
        tick()
        for ids in left.values():
            if job_id in ids:
                ids.remove(job_id)
        remaining = {j for ids in left.values() for j in ids}
        eta = sum(estimates[j] for j in remaining) / jobs
        for name, ids in left.items():
            if not ids and name not in announced:
                announced.add(name)
                status = "failed job(s)" if any(j in runner.failed for j in
                                                runner.plan.by_claim[name]) else "ready"
                tqdm.write(f"[reproduce] {name}: {status} · {len(announced)}/{len(left)} "
                           f"claims · {time.perf_counter() - started:.0f} s elapsed · "
                           f"ETA {eta / 60:.1f} min")
        if job_id in runner.failed:
            tqdm.write(f"[reproduce] {job_id} failed: {runner.failed[job_id]}")

    try:
        runner.run(on_done, on_tick)
    finally:
        bar.close()


def with_hydra_launcher(cfg: ReproduceConfig) -> ReproduceConfig:
    """`hydra/launcher=NAME hydra.launcher.KEY=VALUE` on this app's command line (as on
    icl-train's) -> the launcher of the training jobs and its settings."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    choice = hydra_cfg.runtime.choices.get("hydra/launcher")
    if not choice or choice == "basic":
        return cfg
    args = tuple(o.removeprefix("hydra.launcher.") for o in hydra_cfg.overrides.hydra
                 if o.startswith("hydra.launcher."))
    return dataclasses.replace(cfg, launcher=choice, launcher_args=cfg.launcher_args + args)


def reproduce_app(cfg: ReproduceConfig, _output_dir: Path | None = None) -> None:
    try:
        result = reproduce(with_hydra_launcher(cfg))
    except KeyboardInterrupt:
        print("[reproduce] stopped (training checkpointed); the same command resumes",
              file=sys.stderr)
        sys.exit(130)
    counts = {v: sum(c["verdict"] == v for c in result["claims"].values())
              for v in ("holds", "fails", "inconclusive")}
    print(f"[reproduce] {json.dumps(counts)} in {result['wall_s']:.0f} s")


APP = App("reproduce", ReproduceConfig, check_reproduce, reproduce_app)


def main() -> None:
    """`icl-reproduce` (cli.py runs it)."""
    run_app(APP)


if __name__ == "__main__":
    main()
