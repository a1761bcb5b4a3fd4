"""Model registry: every model maps `(xs (B,n,d), ys (B,n)) -> preds (B,n)` and offers
`intermediates(xs, ys)` (residual stream per layer and attention weights)."""

from __future__ import annotations

from flax import nnx

from icl_regression.config import ModelConfig, TaskConfig


def build_model(model: ModelConfig, task: TaskConfig, seed: int) -> nnx.Module:
    """A freshly initialised model; parameters are a pure function of `seed`."""
    from icl_regression.data.tasks import STREAMS

    rngs = nnx.Rngs(params=seed * 1000 + STREAMS["init"])
    if model.name == "gpt":
        from icl_regression.models.gpt import GPT

        return GPT(model, task, rngs=rngs)
    if model.name == "lsa":
        from icl_regression.models.lsa import LSA

        return LSA(model, task, rngs=rngs)
    raise ValueError(f"model.name={model.name!r} is not allowed; allowed: gpt, lsa")


def count_params(model: nnx.Module) -> int:
    return sum(p.size for p in __import__("jax").tree.leaves(nnx.state(model, nnx.Param)))
