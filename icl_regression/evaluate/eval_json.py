"""eval.json: schema check, atomic write, and the model-vs-baselines table.

Schema (version 2; lists are per position, aligned with the setting's "k"; null = undefined):

    {"schema_version": 2, "run_dir": str | null, "step": int | null, "task": {TaskConfig},
     "seed": int, "n_prompts": N, "implicit_prompts": int, "implicit_queries": m,
     "predictors": {NAME: {"baseline": str, "params": {...}, "n_prompts"?: int}},
     "gd_eta": {"steps": int, "k": [...], "eta": [...]},
     "family": {"name": str, "has_w": bool, "classification": bool, "components": [LABEL],
                "skipped_settings": {SETTING: reason}},
     "settings": {SETTING: {"description": str, "k": [...], "n_prompts_per_k": [...],
                            "normaliser": float,
                            "error": {PREDICTOR: {"mean": [...], "lo": [...], "hi": [...]}},
                            "spd": {BASELINE: [...]}, "ilwd": {BASELINE: [...]},
                            "ilwd_r2": [...], "sensitivity_cos": {BASELINE: [...]},
                            "accuracy"?: {PREDICTOR: [...]},
                            "components"?: {LABEL: {"n_prompts": int, "normaliser": float,
                                "oracle": {"baseline": str, "params": {...}},
                                "error": {PREDICTOR | "oracle": {"mean", "lo", "hi"}}}}}}}

Version 2 added "family", the optional "accuracy" (±1-label families: sign
agreement, 0 counts ½) and "components" (mixtures, "train" only), and "n_prompts" on a
predictor evaluated on fewer prompts (expensive baselines: the first N). Version 1 files (no
"family") still validate.
"""

from __future__ import annotations

from pathlib import Path

from icl_regression.storage import write_json

SCHEMA_VERSION = 2
TOP_KEYS = {"schema_version": int, "run_dir": (str, type(None)), "step": (int, type(None)),
            "task": dict, "seed": int, "n_prompts": int, "implicit_prompts": int,
            "implicit_queries": int, "predictors": dict, "gd_eta": dict, "settings": dict}
SETTING_KEYS = {"description": str, "k": list, "n_prompts_per_k": list, "normaliser": float,
                "error": dict, "spd": dict, "ilwd": dict, "ilwd_r2": list,
                "sensitivity_cos": dict}


def _check(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise ValueError(f"eval.json {where}: {what}")


def _check_curve(curve, length: int, where: str) -> None:
    _check(isinstance(curve, list) and len(curve) == length, where,
           f"must be a list of {length} numbers")
    _check(all(v is None or isinstance(v, (int, float)) for v in curve), where,
           "entries must be numbers or null")


def validate_eval_json(data: dict) -> dict:
    """Raise ValueError naming the first key that breaks the documented schema."""
    for key, kind in TOP_KEYS.items():
        _check(key in data, key, "missing")
        _check(isinstance(data[key], kind), key, f"wrong type {type(data[key]).__name__}")
    _check(data["schema_version"] in (1, 2), "schema_version", "must be 1 or 2")
    _check(data["schema_version"] == 1 or isinstance(data.get("family"), dict), "family",
           "missing (schema_version 2)")
    eta = data["gd_eta"]
    _check(isinstance(eta.get("k"), list), "gd_eta.k", "missing")
    _check_curve(eta.get("eta"), len(eta["k"]), "gd_eta.eta")
    for name, setting in data["settings"].items():
        for key, kind in SETTING_KEYS.items():
            where = f"settings.{name}.{key}"
            _check(key in setting, where, "missing")
            _check(isinstance(setting[key], kind), where, f"wrong type {type(setting[key])}")
        n_k = len(setting["k"])
        _check_curve(setting["n_prompts_per_k"], n_k, f"settings.{name}.n_prompts_per_k")
        _check("zero" in setting["error"], f"settings.{name}.error", "needs the zero predictor")
        for pred, curves in setting["error"].items():
            for stat in ("mean", "lo", "hi"):
                _check_curve(curves.get(stat), n_k, f"settings.{name}.error.{pred}.{stat}")
        for key in ("spd", "ilwd", "sensitivity_cos"):
            for base, curve in setting[key].items():
                _check(base in data["predictors"], f"settings.{name}.{key}.{base}",
                       "not a listed predictor")
                _check_curve(curve, n_k, f"settings.{name}.{key}.{base}")
        if setting["ilwd_r2"]:
            _check_curve(setting["ilwd_r2"], n_k, f"settings.{name}.ilwd_r2")
        for pred, curve in setting.get("accuracy", {}).items():
            _check_curve(curve, n_k, f"settings.{name}.accuracy.{pred}")
        for label, block in setting.get("components", {}).items():
            for pred, curves in block["error"].items():
                for stat in ("mean", "lo", "hi"):
                    _check_curve(curves.get(stat), n_k,
                                 f"settings.{name}.components.{label}.error.{pred}.{stat}")
    return data


def write_eval_json(path: str | Path, data: dict) -> Path:
    """Validate, then write atomically (temp file in the same directory + os.replace): a run
    still training is evaluated without waiting for, or disturbing, its trainer."""
    validate_eval_json(data)
    path = Path(path)
    write_json(path, data)
    return path


def _number(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def table_positions(d: int, n_points: int) -> list[int]:
    """k = 1, d/2, d, 2d (those below n_points, without repeats)."""
    ks = [1, max(d // 2, 1), d, 2 * d]
    return [k for i, k in enumerate(ks) if k < n_points and k not in ks[:i]]


def format_table(data: dict, setting: str = "train") -> str:
    """Markdown table of normalised error (± half the 95% band) at k = 1, d/2, d, 2d, and the
    model's SPD to each baseline where a model was evaluated."""
    block = data["settings"][setting]
    ks = [k for k in table_positions(data["task"]["d"], data["task"]["n_points"])
          if k in block["k"]]
    cols = [block["k"].index(k) for k in ks]
    header = "| predictor | " + " | ".join(f"k={k}" for k in ks) + " |"
    lines = [f"error / zero-predictor error, setting {setting!r} "
             f"({block['n_prompts_per_k'][cols[0]] if cols else 0} prompts per k)", "",
             header, "|---" * (len(ks) + 1) + "|"]

    def cell(curves, c):
        mean, hi = curves["mean"][c], curves["hi"][c]
        return "—" if mean is None else f"{mean:.3f} ± {hi - mean:.3f}"

    for name, curves in block["error"].items():
        lines.append(f"| {name} | " + " | ".join(cell(curves, c) for c in cols) + " |")
    if block.get("accuracy"):
        lines += ["", "accuracy of sign(prediction) (0 counts ½)", "", header,
                  "|---" * (len(ks) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(_number(curve[c]) for c in cols) + " |"
                  for name, curve in block["accuracy"].items()]
    for label, comp in block.get("components", {}).items():
        lines += ["", f"component {label} ({comp['n_prompts']} prompts; oracle: "
                  f"{comp['oracle']['baseline']} {comp['oracle']['params']})", "", header,
                  "|---" * (len(ks) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(cell(curves, c) for c in cols) + " |"
                  for name, curves in comp["error"].items()]
    if block["spd"]:
        lines += ["", "SPD(model, baseline) / zero-predictor error", "", header,
                  "|---" * (len(ks) + 1) + "|"]
        for name, curve in block["spd"].items():
            lines.append(f"| {name} | " + " | ".join(f"{curve[c]:.4f}" for c in cols) + " |")
    return "\n".join(lines)
