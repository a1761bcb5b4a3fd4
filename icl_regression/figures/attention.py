"""The attention-map figure, drawn from RUN/attention.npz (written by analysis/attention.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from icl_regression.figures.style import FULL_WIDTH, new_figure, styled
from icl_regression.integrity import load_npz

FILENAME = "attention.npz"  # the name analysis/attention.py writes


def read_attention(run_dir: Path) -> dict | None:
    """{"attention" (L, H, T, T), "token_labels" [T], "seed", "step"}, or None when absent."""
    path = Path(run_dir) / FILENAME
    if not path.exists():
        return None
    stored = load_npz(path)  # no pickles, sizes checked before anything is allocated
    return {"attention": stored["attention"], "token_labels": stored["token_labels"].tolist(),
            "seed": int(stored["seed"]), "step": int(stored["step"])}


@styled
def plot_attention(attention: np.ndarray, layers: Sequence[int] | None = None,
                   heads: Sequence[int] | None = None,
                   labels: Sequence[str] | None = None) -> Figure:
    """Attention weights of one prompt, attention (L, H, T, T): a grid of layers × heads."""
    attention = np.asarray(attention, dtype=float)
    if attention.ndim != 4:
        raise ValueError(f"attention must be (L, H, T, T) for one prompt, got {attention.shape}")
    layers = list(range(attention.shape[0])) if layers is None else list(layers)
    heads = list(range(attention.shape[1])) if heads is None else list(heads)
    for key, chosen, count in (("layers", layers, attention.shape[0]),
                               ("heads", heads, attention.shape[1])):
        if not chosen or not all(0 <= i < count for i in chosen):
            raise ValueError(f"attention.{key}={chosen} is not allowed; indices in 0..{count - 1}")
    size = min(1.7, FULL_WIDTH / len(heads))
    fig = new_figure(size * len(heads) + 0.7, size * len(layers) + 0.5)
    axes = fig.subplots(len(layers), len(heads), sharex=True, sharey=True, squeeze=False)
    vmax = float(attention[layers][:, heads].max())
    n_tokens = attention.shape[-1]
    for i, layer in enumerate(layers):
        for j, head in enumerate(heads):
            ax = axes[i, j]
            image = ax.imshow(attention[layer, head], cmap="viridis", vmin=0, vmax=vmax,
                              interpolation="nearest")
            ax.grid(False)
            ax.set_title(f"layer {layer + 1}, head {head + 1}")
            if labels is not None:
                step = max(1, math.ceil(n_tokens / 12))
                ticks = np.arange(0, n_tokens, step)
                ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=90)
                ax.set_yticks(ticks, [labels[t] for t in ticks])
            if i == len(layers) - 1:
                ax.set_xlabel("attended token (key)")
            if j == 0:
                ax.set_ylabel("query token")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    return fig
