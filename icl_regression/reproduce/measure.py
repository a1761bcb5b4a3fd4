"""Claims measured from the stored records: one value per seed, the interval over seeds (or
over prompts with one seed), the verdict, and the verdict table. Reads JSON only."""

from __future__ import annotations

import math
from collections.abc import Mapping

from icl_regression.integrity import read_json_or_none
from icl_regression.reproduce.claims import Claim, Measurement, interval, verdict
from icl_regression.reproduce.plan import Plan


class MissingRecord(LookupError):
    """A record a claim reads is absent (its job failed or was not run)."""


def _records(plan: Plan, seed: int):
    def records(step) -> dict:
        stored = read_json_or_none(plan.record(step, seed))
        if not isinstance(stored, dict) or "result" not in stored:
            raise MissingRecord(f"no record {step.kind} of run {step.run!r} (seed {seed})")
        return stored["result"]
    return records


def _clean(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def measure_claim(claim: Claim, plan: Plan, failed: Mapping[str, str]) -> dict:
    per_seed, reasons = [], []
    for seed in plan.seeds:
        try:
            m = claim.measure(_records(plan, seed))
        except MissingRecord as err:
            blockers = [f"{j}: {failed[j]}" for j in plan.by_claim[claim.name] if j in failed]
            reasons.append("; ".join(blockers) or str(err))
            m = Measurement(None)
        except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as err:
            reasons.append(f"seed {seed}: the measurement failed ({type(err).__name__}: "
                           f"{str(err)[:120]})")  # one claim's bug never hides the others
            m = Measurement(None)
        if m.value is None and not reasons:
            reasons.append(f"seed {seed}: the records define no value (e.g. a fit over one "
                           "layer)")
        per_seed.append({"seed": seed, "value": _clean(m.value), "lo": _clean(m.lo),
                         "hi": _clean(m.hi), "curves": m.curves, "detail": m.detail})
    spread = interval([Measurement(s["value"], s["lo"], s["hi"]) for s in per_seed])
    return {"paper": claim.paper, "where": claim.where, "statement": claim.statement,
            "quantity": claim.quantity, "paper_value": claim.paper_value,
            "check": {"op": claim.check.op, "bound": claim.check.bound,
                      "text": claim.check.text},
            "runs": list(claim.runs), "per_seed": per_seed, "spread": spread,
            "verdict": verdict(spread, claim.check), "reason": "; ".join(reasons) or None}


def measure_all(plan: Plan, failed: Mapping[str, str]) -> dict:
    from icl_regression.reproduce.claims import PAPERS, RUNS

    claims = {c.name: measure_claim(c, plan, failed) for c in plan.claims}
    runs = {job_id: {"run": job.run, "seed": job.seed, "run_dir": str(job.run_dir),
                     "preset": RUNS.get(job.run).preset, "overrides": list(job.overrides),
                     "steps": job.steps}
            for job_id, job in plan.train.items()}
    papers = {c["paper"]: PAPERS.get(c["paper"], c["paper"]) for c in claims.values()}
    return {"schema_version": 1, "papers": papers, "claims": claims, "runs": runs,
            "failed": dict(failed)}


def number(value: float | None) -> str:
    """Three significant digits, fixed notation where it reads well."""
    if value is None:
        return "—"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.4g}"
    return f"{value:.2e}"


def measured_text(spread: Mapping) -> str:
    if spread["mean"] is None:
        return "not measured"
    over = {"seeds": f"{spread['n_seeds']} seeds", "prompts": "prompts",
            "point": "one seed"}[spread["over"]]
    if spread["over"] == "point":
        return f"{number(spread['mean'])} ({over})"
    return f"{number(spread['mean'])} [{number(spread['lo'])}, {number(spread['hi'])}] ({over})"


def table_rows(result: Mapping, paper: str | None = None) -> list[list[str]]:
    rows = []
    for name, c in result["claims"].items():
        if paper is None or c["paper"] == paper:
            rows.append([name, c["paper_value"] or "—", measured_text(c["spread"]),
                         c["check"]["text"], f"**{c['verdict']}**"])
    return rows


HEADER = ["claim", "paper", "measured (95% interval)", "test", "verdict"]


def markdown_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)


def format_table(result: Mapping) -> str:
    """The verdict table for the terminal (fixed-width columns)."""
    rows = [[r[0], r[1], r[2], r[3], r[4].strip("*")] for r in table_rows(result)]
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*HEADER), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*row) for row in rows])
