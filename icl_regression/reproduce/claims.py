"""Claims as code: a paper's finding, the runs and records it needs, the number it is read from,
and the test that decides holds / fails / inconclusive.

One module per paper in `reproduce/papers/` registers its claims (found by being there):

    GARG_LINEAR = RunSpec("garg_linear", "garg_linear_cpu", paper_preset="garg_linear")
    EVAL = Step("eval", "garg_linear", {"n_prompts": 1000, "settings": ["train"]})

    @register_claim("garg.linear_2d", paper=GARG, where="Fig. 2", check=at_most(0.01),
                    statement="error at k = 2d is about 0", paper_value="≈ 0", needs=(EVAL,))
    def linear_2d(records) -> Measurement:
        error = records(EVAL)["settings"]["train"]["error"]["model"]
        return Measurement(error["mean"][40], error["lo"][40], error["hi"][40])

A run (`RunSpec`) is named once and shared: every claim that names it reads the same trained
run. A `Step` is one analysis of one run (icl-eval, icl-probe, layer by layer, an experiment,
the LSA measurement; reproduce/steps.py); `records(step)` is its stored JSON record.
The verdict over seeds is `verdict(values, check)` below.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from icl_regression.registry import Registry, import_submodules


@dataclass(frozen=True)
class RunSpec:
    """A training run: a CPU-scale preset and the paper-scale one, each with overrides."""

    name: str
    preset: str
    overrides: tuple[str, ...] = ()
    paper_preset: str | None = None  # None: the CPU preset at paper scale too
    paper_overrides: tuple[str, ...] | None = None  # None: the CPU overrides

    def train_overrides(self, scale: str, seed: int) -> list[str]:
        """icl-train overrides of this run at `scale` (cpu | paper | smoke) for one seed."""
        if scale == "paper":
            preset = self.paper_preset or self.preset
            extra = self.overrides if self.paper_overrides is None else self.paper_overrides
        else:
            preset, extra = self.preset, self.overrides
        smoke = ("debug=default", "steps=4", "keep_period=0") if scale == "smoke" else ()
        return [f"preset={preset}", *extra, f"seed={seed}", *smoke, "progress=false"]


@dataclass(frozen=True)
class Step:
    """One analysis of one run: `kind` (reproduce/steps.py) with its options."""

    kind: str
    run: str  # a RunSpec name
    options: Mapping[str, Any] = field(default_factory=dict)
    control: str | None = None  # probes: the fixed-w control run (a RunSpec name)

    @property
    def key(self) -> str:
        """The record's file name stem: kind plus a hash of what determines its numbers."""
        text = json.dumps([self.options, self.control], sort_keys=True, default=str)
        return f"{self.kind}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"

    def __hash__(self) -> int:
        return hash((self.kind, self.run, self.key))


@dataclass(frozen=True)
class Measurement:
    """One seed's number; `lo`/`hi`: its own 95% band over prompts where it has one; `curves`:
    what the result page draws ({name: {"x": [...], "y": [...]}})."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    curves: Mapping[str, Mapping[str, list]] = field(default_factory=dict)
    detail: Mapping[str, Any] = field(default_factory=dict)  # the numbers behind the value


@dataclass(frozen=True)
class Check:
    """`value <op> bound`, stated with its tolerance (the bound already includes it)."""

    op: str  # "<=" or ">="
    bound: float

    def passes(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound

    @property
    def text(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.bound:g}"


def at_most(bound: float) -> Check:
    return Check("<=", bound)


def at_least(bound: float) -> Check:
    return Check(">=", bound)


@dataclass(frozen=True)
class Claim:
    name: str
    paper: str  # the paper key (a module of reproduce/papers, a result page)
    where: str  # figure or section
    statement: str  # the claim in one line
    quantity: str  # what the measured value is
    check: Check
    needs: tuple[Step, ...]
    measure: Callable[[Callable[[Step], dict]], Measurement]
    paper_value: str | None = None  # the paper's number where it gives one

    @property
    def runs(self) -> tuple[str, ...]:
        names = [s.run for s in self.needs] + [s.control for s in self.needs if s.control]
        return tuple(dict.fromkeys(names))


CLAIMS: Registry[Claim] = Registry("claim")
RUNS: Registry[RunSpec] = Registry("reproduction run")
PAPERS: dict[str, str] = {}  # key -> citation line, in registration order


def register_paper(key: str, citation: str) -> str:
    PAPERS.setdefault(key, citation)
    return key


def register_run(spec: RunSpec) -> RunSpec:
    """A run many claims may share (registered once, by name)."""
    if spec.name in RUNS:
        if RUNS.get(spec.name) != spec:
            raise ValueError(f"reproduction run {spec.name!r} is registered twice, differently")
        return spec
    return RUNS.register(spec.name, spec)


def register_claim(name: str, *, paper: str, where: str, statement: str, quantity: str,
                   check: Check, needs: Sequence[Step], paper_value: str | None = None):
    """Decorator on the measurement `(records) -> Measurement`."""
    def decorate(measure: Callable) -> Callable:
        for step in needs:
            for run in (step.run, step.control):
                if run is not None and run not in RUNS:
                    raise ValueError(f"claim {name!r}: run {run!r} is not registered")
        CLAIMS.register(name, Claim(name, paper, where, statement, quantity, check,
                                    tuple(needs), measure, paper_value))
        return measure
    return decorate


def claim_names() -> tuple[str, ...]:
    """Every registered claim (built-in papers and plugins), in registration order."""
    import_submodules("icl_regression.reproduce.papers")
    return CLAIMS.names()


# Two-sided 95% Student t quantiles by degrees of freedom (n seeds - 1); beyond 30, normal.
T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile(dof: int) -> float:
    usable = [d for d in T_95 if d <= dof]
    return 1.96 if dof > 30 else T_95[max(usable)]


def interval(measured: Sequence[Measurement]) -> dict:
    """Mean and 95% interval of a claim's value: over seeds (Student t on the seed means) when
    there are several, else the one seed's own band over prompts (or the point itself)."""
    values = [m.value for m in measured if m.value is not None and math.isfinite(m.value)]
    if not values:
        return {"mean": None, "lo": None, "hi": None, "n_seeds": 0, "over": "none"}
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        one = next(m for m in measured if m.value is not None)
        lo = one.lo if one.lo is not None else mean
        hi = one.hi if one.hi is not None else mean
        return {"mean": mean, "lo": lo, "hi": hi, "n_seeds": 1,
                "over": "prompts" if one.lo is not None else "point"}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n_seeds": n, "over": "seeds"}


def verdict(spread: Mapping, check: Check) -> str:
    """holds: the whole interval passes the check; fails: the whole interval fails it;
    inconclusive: the interval straddles the bound (or nothing could be measured)."""
    if spread["mean"] is None:
        return "inconclusive"
    ends = [check.passes(spread["lo"]), check.passes(spread["hi"])]
    return "holds" if all(ends) else "fails" if not any(ends) else "inconclusive"
