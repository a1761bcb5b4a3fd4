"""This project's training update against Garg et al.'s PyTorch model, each run the way its
users run it, alternated on the same machine.

    pip install -e ".[bench]"                         # torch (CPU) and transformers
    python benchmarks/vs_pytorch.py                   # small and paper config, 5 rounds each
    python benchmarks/vs_pytorch.py --cases small --rounds 7 --json vs_pytorch.json
    python benchmarks/vs_pytorch.py --rounds 3 --json benchmarks/results/vs_pytorch.json --readme
    python benchmarks/vs_pytorch.py --render benchmarks/results/vs_pytorch.json --readme

JAX side: the training app's compiled update (`loop.make_update`: `steps` optimizer steps in
one jitted, scanned call, each step's batch sampled inside, the logged metrics included), on the
devices the app picks (`split_host_cpu` + `DataParallel.create`, as `train_and_evaluate` does),
compiled and warmed up once in this process; a timing is one call, as one chunk of the app's
`metrics.jsonl` is. A call runs the app's steady state: every call sets up its temporary
buffers afresh (about 1 GB of first-touch page faults at the paper config, ~0.4 s), which the app
pays once per `log_every` steps (100 for the quickstart, 500 for garg_linear), so a call is
timed over enough steps to amortise it as the app does (the small case runs the app's own chunk;
the paper case 8 steps instead of 500, which would take half an hour; `--jax-steps 2` shows the
short-call figure).

PyTorch side (benchmarks/torch_reference.py): Garg et al.'s `TransformerModel` (HF GPT2Model)
and training step — fresh `torch.randn` batch every step, Adam, MSE at the x tokens — in a
fresh process per timing with PyTorch's default threading (this script sets no thread count
and no OpenMP variable; the child inherits the caller's environment unchanged), its own
warm-up, then the timed steps; once eager and once under `torch.compile`. Beside them, every
round also runs benchmarks/garg_standalone.py (a plain pasted-in script of the same model): the
reference must be within ±10% of it, or the harness is slowing PyTorch down.

One round = JAX, reference eager, reference compiled, standalone, one after the other (only one
of them runs at a time). Per round, ratio = JAX steps/s / PyTorch steps/s; the table gives the
median over rounds and the min-max spread, with the load average at every round. Results and
history: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# name -> (Hydra overrides of the JAX side, JAX steps per timed call, PyTorch timed steps,
# PyTorch warm-up steps). The shapes are torch_reference.SHAPES[name].
CASES = {
    # small: d=5, 11 points, 4 x 64, 2 heads, interleaved tokens, batch 64, y as the target;
    # 100 JAX steps a call = the quickstart's log_every, the app's chunk
    "small": (["preset=quickstart", "model.encoding=interleaved", "model.n_head=2",
               "loss_target=labels"], 100, 40, 5),
    # paper: Garg et al.'s d=20, 41 points, 12 x 256, 8 heads, batch 64; 8 JAX steps a call
    # (the app's chunk is 500: docs/benchmarks.md measures 2 vs 8)
    "paper": (["preset=garg_linear"], 8, 2, 2),
}
README = HERE.parent / "README.md"
README_MARKERS = ("<!-- vs_pytorch table: begin -->", "<!-- vs_pytorch table: end -->")


def jax_side(overrides: list[str], n_steps: int):
    """(one timed call as a no-argument callable, config, devices, compile seconds)."""
    import jax
    from train_throughput import setup

    from icl_regression.cli import compose_train_or_fail as compose
    from icl_regression.config import validate_devices
    from icl_regression.train.mesh import DataParallel, split_host_cpu

    cfg = compose(overrides)
    split_host_cpu(cfg.mesh, cfg.batch_size)  # as train_and_evaluate: before JAX starts
    parallel = DataParallel.create(cfg.mesh, batch_size=cfg.batch_size)
    validate_devices(cfg, parallel.n_devices)
    update, params, opt_state, _ = setup(cfg, parallel)
    start = time.perf_counter()
    compiled = update.lower(params, opt_state, 0, n_steps, cfg.task.n_points).compile()
    compile_s = time.perf_counter() - start
    call = lambda: jax.block_until_ready(compiled(params, opt_state, 0))
    call()  # warm-up
    return call, cfg, parallel.n_devices, compile_s


def torch_run(case: str, steps: int, warmup: int, compiled: bool) -> dict:
    cmd = [sys.executable, str(HERE / "torch_reference.py"), "--case", case, "--steps",
           str(steps), "--warmup", str(warmup)] + (["--compile"] if compiled else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def standalone_run(case: str, steps: int) -> float:
    cmd = [sys.executable, str(HERE / "garg_standalone.py"), case, str(steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-2])


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def compare(name: str, rounds: int, compiled: bool, jax_steps: int | None = None) -> dict:
    overrides, default_steps, torch_steps, warmup = CASES[name]
    jax_steps = jax_steps or default_steps
    call, cfg, n_devices, compile_s = jax_side(overrides, jax_steps)
    print(f"[vs_pytorch] {name}: JAX compiled in {compile_s:.1f} s on {n_devices} device(s)",
          file=sys.stderr, flush=True)
    per_round = []
    for i in range(rounds):
        row = {"load": os.getloadavg()[0]}
        start = time.perf_counter()
        call()
        row["jax"] = jax_steps / (time.perf_counter() - start)
        eager = torch_run(name, torch_steps, warmup, False)
        row["eager"] = eager["steps_per_s"]
        if compiled:
            row["compiled"] = torch_run(name, torch_steps, warmup, True)["steps_per_s"]
        row["standalone"] = standalone_run(name, torch_steps)
        row["info"] = eager
        per_round.append(row)
        print(f"[vs_pytorch] {name} round {i + 1}: " + ", ".join(
            f"{k} {v:.3g}" for k, v in row.items() if k != "info"), file=sys.stderr, flush=True)
    m, t = cfg.model, cfg.task
    result = {
        "config": name, "d": t.d, "points": t.n_points, "layers": m.n_layer, "width": m.d_model,
        "heads": m.n_head, "batch": cfg.batch_size, "devices": n_devices,
        "jax_steps_per_call": jax_steps, "torch_steps": torch_steps, "compile_s": compile_s,
        "rounds": per_round, "load": spread([r["load"] for r in per_round]),
        **{side: spread([r[side] for r in per_round])
           for side in ("jax", "eager", "compiled", "standalone") if side in per_round[0]},
        "vs_eager": spread([r["jax"] / r["eager"] for r in per_round]),
        "ref_vs_standalone": spread([r["eager"] / r["standalone"] for r in per_round]),
        "torch": per_round[0]["info"],
    }
    if compiled:
        result["vs_compiled"] = spread([r["jax"] / r["compiled"] for r in per_round])
    return result


def fmt(s: dict, digits: int = 3) -> str:
    return f"{s['median']:.{digits}g} ({s['min']:.{digits}g}–{s['max']:.{digits}g})"


def markdown(rows: list[dict]) -> str:
    lines = ["| config | shape | JAX steps/s | PyTorch eager | PyTorch compiled "
             "| standalone script | reference / standalone | **JAX / eager** "
             "| **JAX / compiled** | load |", "|" + " --- |" * 10]
    for r in rows:
        shape = (f"d={r['d']}, {r['points']} points, {r['layers']} × {r['width']}, "
                 f"{r['heads']} heads, batch {r['batch']}")
        compiled = fmt(r["compiled"]) if "compiled" in r else "—"
        vs_compiled = f"**{fmt(r['vs_compiled'])}×**" if "vs_compiled" in r else "—"
        lines.append(
            f"| {r['config']} | {shape} | {fmt(r['jax'])} ({r['devices']} devices, "
            f"{r['jax_steps_per_call']} steps a call) | {fmt(r['eager'])} "
            f"| {compiled} | {fmt(r['standalone'])} | {fmt(r['ref_vs_standalone'])} "
            f"| **{fmt(r['vs_eager'])}×** | {vs_compiled} "
            f"| {r['load']['min']:.1f}–{r['load']['max']:.1f} |")
    return "\n".join(lines)


def header(meta: dict) -> str:
    """The line above the table: when, where, which versions and threads, compile times."""
    return (f"{meta['started']}; {meta['cpu']}, {meta['cores']} cores ({meta['usable']} usable); "
            f"jax {meta['jax']}, torch {meta['torch']} ({meta['threads']} threads, its default; "
            f"attention {meta['attention']}; OMP_WAIT_POLICY={meta['omp_wait_policy']}, "
            f"OMP_NUM_THREADS={meta['omp_num_threads']}); JAX compile s: "
            + ", ".join(f"{c} {s:.1f}" for c, s in meta["compile_s"].items())
            + f"; {meta['rounds']} rounds; medians (min–max)")


def per_round(rows: list[dict]) -> str:
    return "\n".join(f"{r['config']}, per round: " + "; ".join(
        ", ".join(f"{k} {v:.3g}" for k, v in one.items() if k != "info")
        for one in r["rounds"]) for r in rows)


def render(result: dict) -> str:
    """The markdown of one run (header, table, per-round values): what the script prints and
    what `--readme` writes into the README from the JSON."""
    return "\n\n".join([header(result["meta"]), markdown(result["rows"]),
                         per_round(result["rows"])])


def write_readme(result: dict, readme: Path = README) -> None:
    """Replace the README's block between README_MARKERS with `render(result)`."""
    begin, end = README_MARKERS
    text = readme.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{readme}: markers {begin} ... {end} not found")
    head, rest = text.split(begin, 1)
    readme.write_text(head + begin + "\n" + render(result) + "\n" + end + rest.split(end, 1)[1])


def run(args) -> dict:
    import jax

    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [compare(name, args.rounds, not args.no_compile, args.jax_steps)
            for name in args.cases]
    info = rows[0]["torch"]
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    meta = {"started": started, "cpu": cpu, "cores": os.cpu_count(),
            "usable": len(os.sched_getaffinity(0)), "jax": jax.__version__,
            **{key: info[key] for key in ("torch", "threads", "attention", "omp_wait_policy",
                                          "omp_num_threads")},
            "compile_s": {r["config"]: r["compile_s"] for r in rows}, "rounds": args.rounds}
    return {"meta": meta, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the sides")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--jax-steps", type=int, help="JAX steps per timed call (default: "
                        "the case's; 2 at the paper config shows the per-call set-up)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="time nothing: print (and with --readme write) a stored result")
    parser.add_argument("--readme", action="store_true",
                        help="write the table into README.md between its markers")
    args = parser.parse_args(argv)
    result = json.loads(args.render.read_text()) if args.render else run(args)
    if args.json and not args.render:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    if args.readme:
        write_readme(result)


if __name__ == "__main__":
    main()
