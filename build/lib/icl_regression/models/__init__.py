"""Model registry: every model maps `(xs (B,n,d), ys (B,n)) -> preds (B,n)` and offers
`intermediates(xs, ys)` (residual stream per layer and attention weights).

A model is a Flax NNX module class `Model(model: ModelConfig, task: TaskConfig, *, rngs)`
registered with `@MODELS.register("name")` (models/registry.py) in its own file, imported in
`_register` below; `model.name=<name>` then selects it.
"""

from __future__ import annotations

import jax
from flax import nnx

from icl_regression.config import ModelConfig, TaskConfig
from icl_regression.config.checks import MODEL_NAMES
from icl_regression.models.registry import MODELS


def _register() -> None:
    """Import the model files (each registers itself into MODELS: a new model is one new file
    here, or in a plugin); at call time so importing the package stays cheap."""
    from icl_regression.registry import import_submodules

    import_submodules(__name__, skip=("registry", "layers"))


def build_model(model: ModelConfig, task: TaskConfig, seed: int) -> nnx.Module:
    """A freshly initialised model; parameters are a pure function of `seed`."""
    from icl_regression.data.tasks import STREAMS

    _register()
    rngs = nnx.Rngs(params=seed * 1000 + STREAMS["init"])
    if model.name not in MODELS:
        raise ValueError(f"model.name={model.name!r} is not allowed; allowed: "
                         f"{', '.join(MODELS)}")
    return MODELS.get(model.name)(model, task, rngs=rngs)


def count_params(model: nnx.Module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def model_names() -> tuple[str, ...]:
    """Every registered model (built-in and plugins)."""
    _register()
    return MODELS.names()


MODEL_NAMES.append(model_names)  # config's validate_model asks it (config cannot import this)
