"""A finished (or running) run, loaded for notebooks, evaluation, probes and figures.

    run = icl_regression.load_run("runs/quickstart/2026-11-29_10-00-00")
    xs, ys, ws = run.sample(jax.random.key(0), 1000)
    preds = run.predict(xs, ys)  # (B, n): preds[:, i] uses only the first i pairs
"""

from __future__ import annotations

import dataclasses
import json
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from icl_regression.config import TrainConfig, to_dataclass
from icl_regression.data import tasks


def load_config(run_dir: str | Path) -> TrainConfig:
    """The run's config: `config.json` (written by training) or Hydra's `.hydra/config.yaml`."""
    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists():
        return to_dataclass(json.loads((run_dir / "config.json").read_text()))
    hydra_cfg = run_dir / ".hydra" / "config.yaml"
    if hydra_cfg.exists():
        from omegaconf import OmegaConf

        return to_dataclass(OmegaConf.load(hydra_cfg))
    raise FileNotFoundError(f"{run_dir} holds no config.json or .hydra/config.yaml: not a run")


@dataclasses.dataclass
class Run:
    run_dir: Path
    config: TrainConfig
    model: nnx.Module
    step: int  # optimizer steps of the loaded parameters (0 = untrained)
    predict_batch: int = 4096  # prompts per jitted call, to bound memory

    @cached_property
    def _graphdef_and_state(self):
        return nnx.split(self.model)

    @cached_property
    def _jit_predict(self):
        graphdef, _ = self._graphdef_and_state
        return jax.jit(lambda state, xs, ys: nnx.merge(graphdef, state)(xs, ys))

    @cached_property
    def _jit_intermediates(self):
        graphdef, _ = self._graphdef_and_state
        return jax.jit(lambda state, xs, ys: nnx.merge(graphdef, state).intermediates(xs, ys))

    def predict(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
        """xs (B, n, d), ys (B, n) -> preds (B, n); the signature every baseline shares."""
        _, state = self._graphdef_and_state
        chunks = [self._jit_predict(state, xs[i:i + self.predict_batch],
                                    ys[i:i + self.predict_batch])
                  for i in range(0, xs.shape[0], self.predict_batch)]
        return jnp.concatenate(chunks, 0)

    def intermediates(self, xs: jax.Array, ys: jax.Array) -> dict:
        """preds (B, n), residuals (L+1, B, T, D), attention (L, B, H, T, T)."""
        _, state = self._graphdef_and_state
        return self._jit_intermediates(state, xs, ys)

    def sample(self, key: jax.Array, batch_size: int):
        """Held-out prompts of the training distribution at full dimension and points."""
        task = tasks.held_out_task(self.config.task)
        return tasks.sample_prompts(key, task, batch_size, self.config.seed)

    @property
    def x_positions(self) -> np.ndarray:
        return self.model.x_positions(self.config.task.n_points)

    @property
    def y_positions(self) -> np.ndarray | None:
        return self.model.y_positions(self.config.task.n_points)

    def untrained(self, seed: int | None = None) -> Run:
        """Same architecture, fresh initialisation (a control for probes)."""
        from icl_regression.models import build_model

        seed = self.config.seed + 1 if seed is None else seed
        return Run(self.run_dir, self.config, build_model(self.config.model, self.config.task,
                                                          seed), step=0)


def load_run(run_dir: str | Path, step: int | None = None) -> Run:
    """The run's model at its newest checkpoint that restores (or at `step`)."""
    from icl_regression.checkpoints import Checkpointer, restore_newest
    from icl_regression.models import build_model
    from icl_regression.train.loop import make_optimizer

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    model = build_model(cfg.model, cfg.task, cfg.seed)
    graphdef, params = nnx.split(model)
    tx, _ = make_optimizer(cfg)
    ckpt = Checkpointer(run_dir / "checkpoints")
    try:
        abstract = {"params": params, "opt_state": tx.init(params)}
        # The newest checkpoint that restores: a damaged one is skipped with a warning (not
        # moved: only training, which writes it again, moves it aside).
        found, restored = (step, ckpt.restore(abstract, step)) if step is not None else (
            restore_newest(ckpt.directory, lambda s: ckpt.restore(abstract, s)) or (None, None))
        if found is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint yet (train it first)")
    finally:
        ckpt.close()
    return Run(run_dir, cfg, nnx.merge(graphdef, restored["params"]), step=found)
