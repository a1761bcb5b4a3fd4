"""The attention maps of one held-out prompt, written into the run as `attention.npz` so the
figures can draw them without running the model.

    python -m icl_regression.analysis.attention run_dir=DIR [seed=0] [out_dir=DIR]

A model without attention (`has_attention` false in the model contract, models/contract.py) has
no maps: `attention.npz` then holds an empty (0, 0, 0, 0) `attention` (so the figures know, and
do not ask again) and the command says so in one line.

`attention.npz` holds `attention` (L, H, T, T) float32, `token_labels` (T,) ('x1', 'y1', …;
'·' elsewhere), `seed` (the prompt drawn from the run's training distribution) and `step`.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FILENAME = "attention.npz"


def token_labels(n_tokens: int, x_positions: Sequence[int] | None,
                 y_positions: Sequence[int] | None) -> list[str]:
    """'x1', 'y1', … at the tokens that carry them; '·' elsewhere."""
    labels = ["·"] * n_tokens
    for prefix, positions in (("x", x_positions), ("y", y_positions)):
        for i, token in enumerate(positions if positions is not None else []):
            if 0 <= int(token) < n_tokens:
                labels[int(token)] = f"{prefix}{i + 1}"
    return labels


def write_attention(run, seed: int = 0, out_dir: str | Path | None = None) -> Path:
    """Attention of the prompt `seed` of a loaded run -> OUT_DIR/attention.npz (atomically;
    default: the run directory); an empty one when the run's model has no attention."""
    import jax

    from icl_regression.storage import write_atomically

    attention = np.zeros((0, 0, 0, 0), np.float32)  # (L, H, T, T)
    if run.has_attention:
        xs, ys, _ = run.sample(jax.random.key(seed), 1)  # (1, n, d), (1, n)
        attention = np.asarray(run.intermediates(xs, ys)["attention"], np.float32)[:, 0]
    labels = token_labels(attention.shape[-1], run.x_positions, run.y_positions)  # (L, H, T, T)
    buffer = io.BytesIO()
    np.savez(buffer, attention=attention, token_labels=np.array(labels), seed=seed,
             step=run.step)
    path = Path(out_dir or run.run_dir) / FILENAME
    write_atomically(path, buffer.getvalue())
    return path


def main(argv: list[str] | None = None) -> None:
    from icl_regression.run import load_run
    from icl_regression.storage import RunFileError

    args = dict(arg.partition("=")[::2] for arg in (sys.argv[1:] if argv is None else argv))
    unknown = set(args) - {"run_dir", "seed", "out_dir"}
    if "run_dir" not in args or unknown or not args.get("seed", "0").isdigit():
        print("error: usage: python -m icl_regression.analysis.attention run_dir=DIR [seed=N] "
              "[out_dir=DIR]", file=sys.stderr)
        sys.exit(2)
    try:
        run = load_run(args["run_dir"])
    except (RunFileError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    path = write_attention(run, int(args.get("seed", 0)), args.get("out_dir"))
    print(f"wrote {path}" if run.has_attention else f"no attention maps: model "
          f"{run.config.model.name!r} has no attention")


if __name__ == "__main__":
    main()
