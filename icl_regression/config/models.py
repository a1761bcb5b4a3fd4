"""Each model's own configuration keys: one ModelConfig subclass per registered model.

Design. `TrainConfig.model` is typed as the common `ModelConfig` (name, n_layer, d_model, dtype,
param_dtype). Every model adds its own keys in a frozen subclass registered here under its name
(`@model_keys("lstm", label="LSTM")`), and `conf/model/<name>.yaml` starts from that class
(`defaults: [<name>_schema]`, stored in Hydra's ConfigStore by `config.build`). Composition thus
merges the subclass into the model node, so Hydra and OmegaConf type-check every key of the
chosen model and refuse any other model's key in one line naming it
(`icl-train model=lstm model.n_head=4`: `model.n_head=4 is not allowed; unknown key; ...`).
Why subclasses rather than one flat record or an untyped `model.options` dict: command lines,
presets and config.json keep the flat `model.<key>` spelling, OmegaConf keeps its type errors,
and a new model (a plugin too) brings its keys without editing this package's schema.
The classes are plain dataclasses without JAX, so the figures read a run's config and labels.

Old runs. A config.json written when ModelConfig was one flat record holds every model's keys;
`drop_foreign_keys` removes those the run's model never had (they were never read), so such a
run loads and resumes with the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from icl_regression.config.checks import at_least, require
from icl_regression.config.schema import (
    MODEL_CONFIGS,
    Encoding,
    ModelConfig,
    Positions,
    Remat,
    TaskConfig,
)

# The keys of the one flat ModelConfig that runs stored before each model had its own class.
FLAT_MODEL_KEYS = ("name", "n_layer", "n_head", "d_model", "mlp_ratio", "encoding", "positions",
                   "max_len", "dtype", "param_dtype", "remat", "tie_layers", "use_mlp",
                   "use_layernorm")


def model_keys(name: str, label: str) -> Callable[[type], type]:
    """Register a ModelConfig subclass as the keys of model `name`; `label` names the model in
    figures and tables."""

    def register(cls: type) -> type:
        cls.label = label
        return MODEL_CONFIGS.register(name, cls)

    return register


def model_label(name: str) -> str:
    """'transformer', 'LSTM', …: the registered label, or the name itself."""
    return getattr(MODEL_CONFIGS.get(name), "label", name) if name in MODEL_CONFIGS else name


def drop_foreign_keys(config: Mapping[str, Any]) -> dict:
    """A stored run's config with the flat-record keys its model does not have removed."""
    config = dict(config)
    model = config.get("model")
    if isinstance(model, Mapping) and model.get("name", "gpt") in MODEL_CONFIGS:
        own = MODEL_CONFIGS.get(model.get("name", "gpt")).__dataclass_fields__
        config["model"] = {k: v for k, v in model.items()
                           if k in own or k not in FLAT_MODEL_KEYS}
    return config


def _divides(m: Any, key: str = "n_head") -> None:
    heads = getattr(m, key)
    require(m.d_model % heads == 0, f"model.{key}", heads, f"must divide model.d_model={m.d_model}")


def _table(m: Any, task: TaskConfig) -> None:
    require(m.max_len == 0 or m.max_len >= task.n_points, "model.max_len", m.max_len,
            f"must be 0 or >= task.n_points={task.n_points}")


@model_keys("gpt", label="transformer")
@dataclass(frozen=True)
class GPTConfig(ModelConfig):
    n_head: int = 2
    mlp_ratio: int = 4
    # interleaved: x1, y1, x2, ...; paired: one token per (x_{i-1}, y_{i-1}, x_i)
    encoding: Encoding = Encoding.paired
    positions: Positions = Positions.learned  # learned absolute positions | none
    max_len: int = 0  # positional table length in points; 0 = task.n_points
    # What each block keeps for the backward pass: dots = matmul outputs only, the elementwise
    # rest recomputed (fewer stacked buffers for the layer scan to write: ×1.25 steps/s on CPU,
    # benchmarks/engine_levers.py); none = everything; full = only the block's input.
    remat: Remat = Remat.dots

    def check(self, task: TaskConfig) -> None:
        at_least(self, "model.", 1, "n_head", "mlp_ratio")
        _divides(self)
        _table(self, task)


@model_keys("lsa", label="LSA")
@dataclass(frozen=True)
class LSAConfig(ModelConfig):
    """Linear self-attention (von Oswald et al. 2022); d_model does not apply (the stream is
    the token [x, y])."""

    name: str = "lsa"
    n_head: int = 1
    mlp_ratio: int = 4
    tie_layers: bool = False  # one parameter set applied n_layer times (recurrent)
    use_mlp: bool = False  # a GELU MLP after each attention layer
    use_layernorm: bool = False  # pre-LN on the attention / MLP branch inputs

    def check(self, task: TaskConfig) -> None:
        at_least(self, "model.", 1, "n_head", "mlp_ratio")


@dataclass(frozen=True)
class SequenceConfig(ModelConfig):
    """Keys of every model that reads the prompt as a token sequence (data/tokens.py)."""

    encoding: Encoding = Encoding.paired  # interleaved | paired, as for the GPT


@model_keys("lstm", label="LSTM")
@dataclass(frozen=True)
class LSTMConfig(SequenceConfig):
    name: str = "lstm"


@model_keys("gru", label="GRU")
@dataclass(frozen=True)
class GRUConfig(SequenceConfig):
    name: str = "gru"


@model_keys("mamba", label="Mamba")
@dataclass(frozen=True)
class MambaConfig(SequenceConfig):
    name: str = "mamba"
    d_state: int = 16  # N: state size per channel of the selective SSM
    d_conv: int = 4  # width of the depthwise causal convolution
    expand: int = 2  # inner width = expand · d_model

    def check(self, task: TaskConfig) -> None:
        at_least(self, "model.", 1, "d_state", "d_conv", "expand")


@model_keys("linear_attention", label="linear attention")
@dataclass(frozen=True)
class LinearAttentionConfig(SequenceConfig):
    name: str = "linear_attention"
    n_head: int = 2
    mlp_ratio: int = 4

    def check(self, task: TaskConfig) -> None:
        at_least(self, "model.", 1, "n_head", "mlp_ratio")
        _divides(self)


@model_keys("hyena", label="Hyena")
@dataclass(frozen=True)
class HyenaConfig(SequenceConfig):
    name: str = "hyena"
    mlp_ratio: int = 4
    order: int = 2  # N: gated long convolutions per operator (Poli et al. 2023 use 2)
    filter_width: int = 32  # hidden width of the implicit filter's MLP
    filter_features: int = 8  # sine features of the position fed to that MLP
    short_conv: int = 3  # width of the depthwise causal convolution of the projections

    def check(self, task: TaskConfig) -> None:
        at_least(self, "model.", 1, "mlp_ratio", "order", "filter_width", "filter_features",
                 "short_conv")


@model_keys("looped", label="looped transformer")
@dataclass(frozen=True)
class LoopedConfig(SequenceConfig):
    """One GPT block of n_layer layers applied n_loops times, the embedded prompt added to its
    input at every loop (Yang et al. 2024)."""

    name: str = "looped"
    n_layer: int = 1
    n_head: int = 2
    mlp_ratio: int = 4
    positions: Positions = Positions.learned
    max_len: int = 0  # positional table length in points; 0 = task.n_points
    n_loops: int = 8  # loops at the end of training and at evaluation
    # Loop curriculum (Yang et al. 2024): training starts at loops_start loops and adds one
    # every loops_every steps up to n_loops; 0 = n_loops from the first step.
    loops_start: int = 0
    loops_every: int = 100
    # The loss averages the predictions of the last loop_window loops, the gradient flows
    # through those loops only (earlier ones run under stop-gradient); 0 = the last loop's
    # prediction, gradient through every loop.
    loop_window: int = 0

    def check(self, task: TaskConfig) -> None:
        at_least(self, "model.", 1, "n_head", "mlp_ratio", "n_loops", "loops_every")
        at_least(self, "model.", 0, "loops_start", "loop_window")
        _divides(self)
        _table(self, task)
        require(self.loops_start <= self.n_loops, "model.loops_start", self.loops_start,
                f"must be <= model.n_loops={self.n_loops}")
        require(self.loop_window <= self.n_loops, "model.loop_window", self.loop_window,
                f"must be <= model.n_loops={self.n_loops}")


@model_keys("mambaformer", label="MambaFormer")
@dataclass(frozen=True)
class MambaFormerConfig(SequenceConfig):
    """Park et al. 2024: a Mamba block, then n_layer pairs (attention block, Mamba block: the
    Mamba block in place of the MLP); no positional embedding."""

    name: str = "mambaformer"
    n_head: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2

    def check(self, task: TaskConfig) -> None:
        at_least(self, "model.", 1, "n_head", "d_state", "d_conv", "expand")
        _divides(self)
