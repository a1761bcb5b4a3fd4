"""Learning curve of a run: normalised error at chosen k for every stored checkpoint.

Each row also has the training wall time at that step (metrics.jsonl's elapsed_s).

    python benchmarks/learning_curve.py runs/garg_linear_cpu/RUN --ks 10 20 40

Prompts are the held-out evaluation stream (`evaluate_run`, training setting only), so the
numbers match `python -m icl_regression.evaluate` at the last checkpoint up to prompt count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from icl_regression.evaluate.evaluation import evaluate_run
from icl_regression.run import load_run
from icl_regression.storage import read_jsonl as read_metrics


def curve(run_dir: Path, ks: list[int], n_prompts: int) -> list[dict]:
    elapsed = {r["step"]: r["elapsed_s"] for r in read_metrics(run_dir / "metrics.jsonl")}
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    rows = []
    for step in steps:
        # No implicit-fit metrics (ILWD, sensitivity): at d = 20 they cost minutes per checkpoint.
        block = evaluate_run(load_run(run_dir, step), n_prompts=n_prompts, settings=("train",),
                             implicit_settings=())["settings"]["train"]
        row = {"step": step, "elapsed_s": elapsed.get(step)}
        for name in ("model", "ols"):
            for k in ks:
                row[f"{name}@{k}"] = block["error"][name]["mean"][block["k"].index(k)]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--n-prompts", type=int, default=2000)
    args = parser.parse_args(argv)
    rows = curve(args.run_dir, args.ks, args.n_prompts)
    head = "| step | training s | " + " | ".join(f"err@{k}" for k in args.ks) + " |"
    print(head + "\n|" + " --- |" * (2 + len(args.ks)))
    for r in rows:
        errs = " | ".join(f"{r[f'model@{k}']:.3f}" for k in args.ks)
        print(f"| {r['step']} | {r['elapsed_s'] or 0:.0f} | {errs} |")
    print("OLS: " + ", ".join(f"k={k} {rows[-1][f'ols@{k}']:.3f}" for k in args.ks))


if __name__ == "__main__":
    main()
