"""probes.json read back: the best layer per target at a given k, as data and as a table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _column_for_k(result: dict, k: int) -> int | None:
    """Index of the probed position with k pairs seen, preferring a query (x) token."""
    columns = [i for i, kk in enumerate(result["k"]) if kk == k]
    queries = [i for i in columns if result["token_kinds"][i] == "x"]
    return (queries or columns or [None])[0]


def best_layers(result: dict, ks: Sequence[int], probe: str = "linear") -> dict:
    """{target: {k: {layer, position, r2, control_r2, fixed_w_r2} | None}} from probes.json:
    the layer with the highest held-out R² at the token that has seen k pairs."""
    as_float = lambda rows, col: np.array([np.nan if r[col] is None else r[col] for r in rows])
    summary: dict = {}
    for target, families in result["targets"].items():
        scores = families.get(probe)
        summary[target] = {}
        for k in ks:
            col = _column_for_k(result, k)
            r2 = as_float(scores["r2"], col) if scores and col is not None else np.array([np.nan])
            if np.all(np.isnan(r2)):
                summary[target][k] = None
                continue
            best = int(np.nanargmax(r2))
            summary[target][k] = {"layer": result["layers"][best],
                                  "position": result["positions"][col], "r2": float(r2[best])}
            for control in ("control_r2", "fixed_w_r2"):
                if control in scores:
                    summary[target][k][control] = float(as_float(scores[control], col)[best])
    return summary


def format_probe_summary(result: dict, d: int | None = None, probe: str = "linear") -> str:
    """A plain-text table: per target, the best layer (highest held-out R²) at k = d and k = 2d,
    its R², and the controls' R² at that layer."""
    d = result["d"] if d is None else d
    lines = [f"{probe} probes: best layer per target (0 = embedding), held-out R²",
             f"{'target':8} {'k':>3} {'layer':>5} {'trained':>8} {'untrained':>9} {'fixed-w':>8}"]
    cell = lambda v: "-" if v is None or not np.isfinite(v) else f"{v:.3f}"
    for target, per_k in best_layers(result, (d, 2 * d), probe).items():
        for k, entry in per_k.items():
            if entry is None:
                lines.append(f"{target:8} {k:>3}   (no position or constant target)")
                continue
            lines.append(f"{target:8} {k:>3} {entry['layer']:>5} {cell(entry['r2']):>8} "
                         f"{cell(entry.get('control_r2')):>9} {cell(entry.get('fixed_w_r2')):>8}")
    return "\n".join(lines)
