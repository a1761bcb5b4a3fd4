"""The probe study (Akyürek et al. 2022, §5): per target and probe family, the best layer for
k ≥ d and the held-out R² of the trained model, the untrained and the fixed-w controls there.

    python -m icl_regression.probes run_dir=RUN control_run_dir=CONTROL positions=y \
        probes=[linear,mlp,attention,attention_mlp]

prints this table after the per-family summaries; `study_summary(probes_json)` returns it.
"""

from __future__ import annotations

import numpy as np

STUDY_TARGETS = ("xty", "w_ols")  # the finding: Xᵀy and w_ols decodable, unlike the controls
R2_MIN, MARGIN = 0.8, 0.3  # R² ≥ 0.8 with the fixed-w control at least 0.3 below


def _mean_over(grid, columns: np.ndarray) -> np.ndarray:
    """[layer][position] (null = NaN) -> mean over the chosen positions: (L,)."""
    values = np.array([[np.nan if v is None else v for v in row] for row in grid], float)
    return np.nanmean(values[:, columns], axis=1)


def study_summary(result: dict, k_min: int | None = None) -> dict:
    """{target: {family: {layer, trained, untrained, fixed_w, met}}} from probes.json, R²
    averaged over the probed positions with k ≥ k_min (default d) at the best trained layer."""
    k_min = result["d"] if k_min is None else k_min
    columns = np.flatnonzero(np.asarray(result["k"]) >= k_min)
    summary: dict = {}
    for target, families in result["targets"].items():
        summary[target] = {}
        for family, scores in families.items():
            trained = _mean_over(scores["r2"], columns)
            best = int(np.nanargmax(trained))
            row = {"layer": result["layers"][best], "trained": float(trained[best])}
            for key, name in (("control_r2", "untrained"), ("fixed_w_r2", "fixed_w")):
                row[name] = float(_mean_over(scores[key], columns)[best]) if key in scores \
                    else None
            row["met"] = bool(row["trained"] >= R2_MIN and row["fixed_w"] is not None
                              and row["fixed_w"] <= row["trained"] - MARGIN)
            summary[target][family] = row
    return summary


def format_study(result: dict, k_min: int | None = None) -> str:
    """Markdown table of `study_summary`, and whether the finding is reproduced."""
    k_min = result["d"] if k_min is None else k_min
    summary = study_summary(result, k_min)
    cell = lambda v: "—" if v is None else f"{v:.3f}"
    lines = [f"probe study: held-out R² averaged over probed positions with k ≥ {k_min}, at the "
             "trained model's best layer", "",
             "| target | probe | layer | trained | untrained | fixed w |",
             "|---|---|---|---|---|---|"]
    for target, families in summary.items():
        for family, row in families.items():
            lines.append(f"| {target} | {family} | {row['layer']} | {cell(row['trained'])} | "
                         f"{cell(row['untrained'])} | {cell(row['fixed_w'])} |")
    met = {t: [f for f, row in summary[t].items() if row["met"]]
           for t in STUDY_TARGETS if t in summary}
    verdict = all(met.values()) and len(met) == len(STUDY_TARGETS)
    lines += ["", f"finding (R² ≥ {R2_MIN} and fixed w ≥ {MARGIN} below, for "
              f"{' and '.join(STUDY_TARGETS)}): " + ("reproduced by " + "; ".join(
                  f"{t}: {', '.join(f)}" for t, f in met.items()) if verdict
                  else "not reproduced")]
    return "\n".join(lines)
