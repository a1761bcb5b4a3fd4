"""Reading the numbers claims are measured from out of the stored records (eval.json,
experiment records, probes.json, layerwise.json, the LSA measurement): one helper per
question, so a claim module states its measurement in a few lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from icl_regression.reproduce.claims import Measurement


def predictors(names: Sequence[str], prefix: str) -> list[str]:
    """The predictors named `prefix` or `prefix(...)` (e.g. every `tree(max_depth=...)`)."""
    found = [n for n in names if n == prefix or n.startswith(prefix + "(")]
    if not found:
        raise KeyError(f"no predictor {prefix!r} among {', '.join(names)}")
    return found


def predictor(names: Sequence[str], prefix: str) -> str:
    """The first predictor named `prefix` or `prefix(...)`."""
    return predictors(names, prefix)[0]


def error_at(setting: Mapping, name: str, k: int) -> Measurement:
    """A predictor's error at prefix length k of an eval.json setting, with its band."""
    band = setting["error"][name]
    i = list(setting["k"]).index(k)
    return Measurement(band["mean"][i], band["lo"][i], band["hi"][i])


def mean_over(values: Sequence, ks: Sequence[int], keep: Sequence[int]) -> float:
    """Mean of a per-k list over the k in `keep` (nulls skipped)."""
    picked = [values[list(ks).index(k)] for k in keep]
    return float(np.mean([v for v in picked if v is not None]))


def curves_of(setting: Mapping, names: Sequence[str]) -> dict:
    """{name: {"x": k, "y": mean error}} for the result page's figure."""
    return {n: {"x": list(setting["k"]), "y": list(setting["error"][n]["mean"])}
            for n in names if n in setting["error"]}


def difference(a: Measurement, b: Measurement) -> Measurement:
    """a − b, its band from the two bands (independent prompts' errors: a conservative sum)."""
    value = a.value - b.value
    if None in (a.lo, a.hi, b.lo, b.hi):
        return Measurement(value)
    half = np.hypot((a.hi - a.lo) / 2, (b.hi - b.lo) / 2)
    return Measurement(value, value - half, value + half)
