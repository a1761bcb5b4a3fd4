"""Library-backed baselines run on the host: optional imports and the per-prompt parallel loop."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from icl_regression.config import ConfigError


class MissingExtra(ImportError, ConfigError):  # a ConfigError: one line, exit 2
    """An optional library a baseline needs is not installed; the message names the extra."""


def require(module: str, baseline: str, extra: str = "trees"):
    """Import `module`, or a one-line MissingExtra naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(f"baseline {baseline!r} needs {module.split('.')[0]}: "
                           f"pip install 'icl_regression[{extra}]'") from err


# (context xs (k, d), context ys (k,), queries (m, d)) -> predictions (m,), float64.
FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def per_prefix(fit_predict: FitPredict, xs, ys, desc: str, n_jobs: int = 0,
               progress: bool = True) -> np.ndarray:
    """preds[b, i] = fit on pairs 0..i−1 of prompt b, predict x_i (0 with no context); prompts
    in parallel threads (the libraries release the GIL while fitting): (B, n) float32."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    batch, n, _ = xs.shape

    def one_prompt(b: int) -> np.ndarray:
        out = np.zeros(n)
        for i in range(1, n):
            out[i] = fit_predict(xs[b, :i], ys[b, :i], xs[b, i:i + 1])[0]
        return out

    workers = n_jobs or min(len(os.sched_getaffinity(0)), 8)
    with ThreadPoolExecutor(workers) as pool:
        rows = list(tqdm(pool.map(one_prompt, range(batch)), total=batch, desc=desc,
                         disable=not progress, file=sys.stderr, leave=False))
    return np.stack(rows).astype(np.float32)  # (B, n)
