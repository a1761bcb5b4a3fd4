"""docs/architectures.md, written from the comparison's records: no number on that page is typed
by hand.

    python -m icl_regression.figures.architectures_page \\
        --records plots/experiments/architectures.json \\
        --throughput benchmarks/results/models_throughput.json --out docs/architectures.md

`--records` is what `icl-experiments name=architectures` wrote (one record per run),
`--throughput` what benchmarks/models_throughput.py wrote. The prose around the tables is
architectures_text.md (next to this module): its `{placeholders}` are filled here from
the records, so a rerun with other numbers rewrites the page.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from icl_regression.figures.architectures import (
    TASKS,
    at_k,
    best_runs,
    mean_error,
    variant,
)

TEXT = Path(__file__).with_name("architectures_text.md")
LEARNS = 0.1  # error at k = 2d below this (a tenth of the zero predictor's): learns in context
ORDER = ("gpt", "linear_attention", "looped", "looped +curriculum", "mambaformer", "mamba",
         "hyena", "lstm", "gru")


def number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def ordered(names) -> list[str]:
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def models_table(records: Sequence[Mapping], best: dict) -> str:
    """Per variant: size, learning rates tried on linear (mean error each), the chosen one."""
    rows = []
    tried: dict[str, list] = {}
    for record in records:
        r = record["results"]
        if r["family"] == "linear":
            tried.setdefault(variant(r), []).append((r["lr"], mean_error(r)))
    for name in ordered(tried):
        chosen = best[(name, "linear")]
        sweep = ", ".join(f"{lr:g}: {err:.3f}" for lr, err in sorted(tried[name]))
        train = chosen["training"]
        rows.append([name, f"{chosen['n_params']:,}", f"{chosen['n_layers']} × {chosen['d_model']}",
                     sweep, f"{chosen['lr']:g}", number(train.get("train_s"), 0),
                     number(train.get("steps_per_s_median"), 0)])
    return table(["model", "parameters", "layers × width", "lr tried: mean error over k",
                  "lr kept", "training s", "steps/s (median, in the run)"], rows)


def task_table(best: dict, family: str) -> str:
    """Error at k = d, 2d, averaged over k, and at 2× / 4× the training points."""
    shown = {name: r for (name, f), r in best.items() if f == family}
    if not shown:
        return "(no runs)"
    any_run = next(iter(shown.values()))
    d, n = any_run["d"], any_run["n_points"]
    far = [2 * n - 1, 4 * n - 1]
    head = ["predictor", f"k = {d} (d)", f"k = {2 * d} (2d)", "mean k ≥ 1",
            *[f"k = {k} (longer)" for k in far]]
    rows = []
    for name in ordered(shown):
        r = shown[name]
        model, long = r["error"]["model"], r["extrapolation"]
        beyond = ([number(at_k(long["error"]["model"], k)) for k in far] if "error" in long
                  else ["not readable"] * len(far))
        rows.append([name, number(at_k(model, d)), number(at_k(model, 2 * d)),
                     number(mean_error(r)), *beyond])
    long_base = next((r["extrapolation"] for r in shown.values() if "error" in r["extrapolation"]),
                     None)
    for base, value in any_run["error"].items():
        if base == "model":
            continue
        extra = ([number(at_k(long_base["error"][base], k)) for k in far]
                 if long_base and base in long_base["error"] else ["—"] * len(far))
        rows.append([f"*{base}*", number(at_k(value, d)), number(at_k(value, 2 * d)),
                     number(mean_error({"error": {"model": value}})), *extra])
    return table(head, rows)


def layers_table(best: dict) -> str:
    rows = []
    for name in ordered({n for n, f in best if f == "linear"}):
        r = best[(name, "linear")]
        errs = [at_k(layer, 2 * r["d"]) for layer in r["layers"]]
        rows.append([name, " → ".join(number(e, 2) for e in errs)])
    return table(["model (linear)", "lens error at k = 2d after the read-in, layer 1, 2, …"], rows)


def loops_table(best: dict) -> str:
    rows = []
    for (name, family), r in sorted(best.items()):
        if r.get("loops"):
            k = 2 * r["d"]
            rows.append([name, family, str(r["loops"]["trained"]),
                         ", ".join(f"{n}: {number(at_k(e, k))}" for n, e in
                                   zip(r["loops"]["loops"], r["loops"]["error"], strict=True))])
    return table(["model", "task", "loops trained", "loops at evaluation: error at k = 2d"], rows)


def cost_table(best: dict) -> str:
    rows = []
    for name in ordered({n for n, f in best if f == "linear"}):
        cost = best[(name, "linear")].get("cost")
        if cost:
            rows.append([name, str(cost["n_points"]), str(cost["n_tokens"]),
                         number(cost["forward_s"] * 1e3, 1), number(cost["memory_mib"], 1),
                         number(cost["compile_s"], 1)])
    return table(["model", "points", "tokens", "forward ms", "XLA memory MiB", "compile s"], rows)


def throughput_table(bench: Mapping | None) -> str:
    if not bench:
        return "(benchmarks/models_throughput.py not run)"
    rows = [[r["model"], r["size"], f"{r['n_params']:,}", number(r["steps_per_s"], 1),
             number(r.get("per_param_vs_gpt"), 2), number(r["memory_mib"], 1)]
            for r in bench["rows"]]
    m = bench["machine"]
    sizes = ", ".join(f"{name} {count:,}" for name, count in
                      bench.get("accelerator_params", {}).items())
    return (f"Measured {m['date']} on {m['cpus_allowed']} core(s), {len(m['devices'])} device; "
            f"`uptime` at the end: `{m['uptime']}`.\n\n"
            + table(["model", "task size", "parameters", "training steps/s",
                     "steps/s × parameters vs GPT", "update memory MiB (XLA)"], rows)
            + (f"\n\nParameters at the accelerator sizes (conf/architecture_paper/, d = 20, "
               f"40 points; not trained here): {sizes}." if sizes else ""))


def learners(best: dict, family: str) -> tuple[str, str, str]:
    """Variants by error at k = 2d: below LEARNS, below half the zero predictor's, the rest."""
    groups: tuple[list, list, list] = ([], [], [])
    for name in ordered({n for n, f in best if f == family}):
        r = best[(name, family)]
        err = at_k(r["error"]["model"], 2 * r["d"])
        groups[0 if err < LEARNS else 1 if err < 0.5 else 2].append(f"{name} ({err:.3f})")
    return tuple(", ".join(g) or "none" for g in groups)


def render(records: Sequence[Mapping], bench: Mapping | None) -> str:
    best = best_runs(records)
    fields = {"models_table": models_table(records, best), "layers_table": layers_table(best),
              "loops_table": loops_table(best), "cost_table": cost_table(best),
              "throughput_table": throughput_table(bench), "learns": LEARNS,
              "n_runs": len(records),
              "experiment_s": number(sum(r.get("wall_s", 0) for r in records), 0)}
    for family in TASKS:
        fields[f"{family}_table"] = task_table(best, family)
        (fields[f"{family}_yes"], fields[f"{family}_some"],
         fields[f"{family}_no"]) = learners(best, family)
    return TEXT.read_text().format(**fields)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path,
                        default=Path("plots/experiments/architectures.json"))
    parser.add_argument("--throughput", type=Path,
                        default=Path("benchmarks/results/models_throughput.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/architectures.md"))
    args = parser.parse_args(argv)
    records = json.loads(args.records.read_text())
    bench = json.loads(args.throughput.read_text()) if args.throughput.exists() else None
    args.out.write_text(render(records, bench))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
