"""Model registry: every model maps `(xs (B,n,d), ys (B,n)) -> preds (B,n)` and satisfies the
model contract (models/contract.py: layers, intermediates, token positions, read-out lens,
context limit); downstream code asks the model through it and nothing else.

A model is a Flax NNX module class `Model(model: <its ModelConfig subclass>, task: TaskConfig,
*, rngs)` in its own file of this package, registered with `@MODELS.register("name")`
(models/registry.py); its keys are a ModelConfig subclass registered under the same name
(config/models.py) and conf/model/<name>.yaml starts from them. Every module of this package is
imported by `build_model` (a new file is found by being here); `model=<name>` selects it.
"""

from __future__ import annotations

import jax
from flax import nnx

from icl_regression.config import ModelConfig, TaskConfig
from icl_regression.config.schema import MODEL_CONFIGS, MODEL_NAMES, model_schema
from icl_regression.models.contract import check_contract
from icl_regression.models.registry import MODELS


def _register() -> None:
    """Import the model files (each registers itself into MODELS: a new model is one new file
    here, or in a plugin); at call time so importing the package stays cheap. A model
    registered without keys of its own gets its class's `config_class` (a subclass of GPT:
    GPTConfig's), else the common ModelConfig."""
    from icl_regression.registry import import_submodules

    import_submodules(__name__, skip=("registry", "layers", "contract"))
    for name, model_class in MODELS.items():
        if name not in MODEL_CONFIGS:
            MODEL_CONFIGS.register(name, getattr(model_class, "config_class", ModelConfig))


def build_model(model: ModelConfig, task: TaskConfig, seed: int) -> nnx.Module:
    """A freshly initialised model; parameters are a pure function of `seed`."""
    from icl_regression.data.tasks import STREAMS

    _register()
    model = model_schema(model)  # a bare ModelConfig: its model's own keys, at their defaults
    rngs = nnx.Rngs(params=seed * 1000 + STREAMS["init"])
    if model.name not in MODELS:
        raise ValueError(f"model.name={model.name!r} is not allowed; allowed: "
                         f"{', '.join(MODELS)}")
    return check_contract(MODELS.get(model.name)(model, task, rngs=rngs))


def count_params(model: nnx.Module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def model_names() -> tuple[str, ...]:
    """Every registered model (built-in and plugins)."""
    _register()
    return MODELS.names()


MODEL_NAMES.append(model_names)  # config's validate_model asks it (config cannot import this)
