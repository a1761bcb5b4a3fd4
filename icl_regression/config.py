"""Typed configuration schema and validation.

The dataclasses below are the single source of truth for every key. They are registered in
Hydra's ConfigStore (so an unknown key or a wrong type fails at composition) and library code
receives them as plain frozen dataclasses via `to_dataclass`, never a DictConfig.

`validate(cfg)` checks values (ranges, names, divisibility) and raises `ConfigError` with a
one-line message naming the key and what is allowed. The entry points call it before anything
is compiled or written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

X_DISTS = ("gaussian", "skewed", "uniform")
W_PRIORS = ("gaussian", "sparse", "fixed")
MODELS = ("gpt", "lsa")
ENCODINGS = ("interleaved", "paired")
POSITIONS = ("learned", "none")
SCHEDULES = ("cosine", "constant")
DTYPES = ("float32", "bfloat16")
LOSS_POSITIONS = ("all", "last")
CORRUPT_MODES = ("noise", "other_w")


class ConfigError(ValueError):
    """A configuration value is outside what is allowed; the message names the key."""


@dataclass(frozen=True)
class TaskConfig:
    d: int = 5  # input dimension
    n_points: int = 11  # (x, y) pairs per prompt; the model predicts y at every x
    x_dist: str = "gaussian"  # gaussian N(0, I) | skewed (eigenvalues ∝ 1/(i+1), trace d) | uniform
    x_uniform_half_width: float = 1.7320508075688772  # a in U(-a, a); √3 gives unit variance
    w_prior: str = "gaussian"  # gaussian | sparse | fixed (one w for every prompt: a control)
    w_mean: float = 0.0  # μ = w_mean · 1/√d, so ‖μ‖ = |w_mean| whatever d
    w_scale: float = 1.0  # τ: w = μ + τ/√d · z, z ~ N(0, I), so E‖w − μ‖² = τ²
    sparsity: int = 0  # s nonzero coordinates for w_prior=sparse (each N(0, τ²/s))
    noise_std: float = 0.0  # σ: y = w·x + σ ε
    pool_size: int = 0  # M > 0: w drawn uniformly from a fixed pool of M tasks; 0: fresh w
    # Corrupted demonstrations: exactly round(f · n_points) labels of every prompt replaced by
    # N(0, E y²) noise (noise) or by the labels of another task's w (other_w).
    corrupt_fraction: float = 0.0
    corrupt_mode: str = "noise"
    # Function classes (issue 13): the task family drawing the prompts (data/families/, one
    # file each; `task=<family>` picks conf/task/<family>.yaml) and its parameters. Plain
    # types on purpose (a family is a registry name, not an Enum: families are extensions).
    family: str = "linear"  # linear | sparse_linear | noisy_linear | linear_classification |
    # quadratic | relu2nn | decision_tree | noise_mixture | mixture (data.families.FAMILIES)
    hidden_width: int = 100  # relu2nn: hidden units of the random two-layer net (Garg: 100)
    tree_depth: int = 4  # decision_tree: depth of the random full binary tree (Garg: 4)
    noise_stds: tuple[float, ...] = ()  # noise_mixture: σ uniform over these, per prompt
    components: tuple[str, ...] = ()  # mixture: the component families (share these fields)
    component_weights: tuple[float, ...] = ()  # mixture: their probabilities; empty = uniform

    def __post_init__(self):
        # Composed configs hand over lists; tuples keep the config hashable (a jit static arg).
        for name in ("noise_stds", "components", "component_weights"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True)
class ModelConfig:
    name: str = "gpt"  # gpt | lsa
    n_layer: int = 4
    n_head: int = 2
    d_model: int = 64
    mlp_ratio: int = 4
    # interleaved: x1, y1, x2, ...; paired: one token per (x_{i-1}, y_{i-1}, x_i)
    encoding: str = "paired"
    positions: str = "learned"  # learned absolute positions | none
    max_len: int = 0  # positional table length in points; 0 = task.n_points
    dtype: str = "float32"  # compute dtype (bfloat16 on accelerators)
    param_dtype: str = "float32"
    # LSA only (von Oswald et al. 2022)
    tie_layers: bool = False
    use_mlp: bool = False
    use_layernorm: bool = False


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine (warmup then cosine decay) | constant (after warmup)
    warmup_steps: int = 200
    end_lr_ratio: float = 0.0  # final lr / peak lr for cosine
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    grad_clip: float = 1.0  # global-norm clipping; 0 disables


@dataclass(frozen=True)
class CurriculumConfig:
    # Active dimensions and points grow from *_start to the task's size; shapes never change
    # (inactive coordinates are zeroed, inactive positions are masked out of the loss).
    enabled: bool = False
    dims_start: int = 5
    dims_end: int = 0  # 0 = task.d
    dims_inc: int = 1
    dims_interval: int = 2000
    points_start: int = 11
    points_end: int = 0  # 0 = task.n_points
    points_inc: int = 2
    points_interval: int = 2000


@dataclass(frozen=True)
class MeshConfig:
    multi_host: bool = False  # call jax.distributed.initialize()
    coordinator_address: str = ""  # host:port; empty = from the environment (e.g. SLURM)
    num_processes: int = 0  # 0 = from the environment
    process_id: int = -1  # -1 = from the environment


@dataclass(frozen=True)
class TrainConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    name: str = "quickstart"  # experiment name: the run directory is runs/<name>/<time>
    seed: int = 0
    steps: int = 3000
    batch_size: int = 64  # global batch, split over devices
    # all: mean squared error over every active position (k = 0..n-1 context pairs);
    # last: only the last active position (a single-query loss, as in von Oswald et al. 2022)
    loss_positions: str = "all"
    log_every: int = 100  # also the number of optimizer steps per jitted call
    ckpt_every: int = 1000  # a multiple of log_every
    keep_checkpoints: int = 2  # latest N kept ...
    keep_period: int = 0  # ... plus every checkpoint at a multiple of this (0: none)
    tensorboard: bool = False
    progress: bool = True


def register_configs() -> None:
    """Register the schema so Hydra type-checks every key of conf/train.yaml against it."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    # Frozen dataclasses become read-only nodes; the schema must accept overrides.
    def writable(node):
        OmegaConf.set_readonly(node, False)
        for key in node:
            if OmegaConf.is_dict(node._get_node(key)):
                writable(node._get_node(key))
        return node

    schema = writable(OmegaConf.structured(TrainConfig))
    ConfigStore.instance().store(name="train_schema", node=schema)


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    kwargs = {}
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(names)}")
        sub = names[key].default_factory if dataclasses.is_dataclass(
            names[key].default_factory) else None  # type: ignore[arg-type]
        kwargs[key] = _build(sub, value, f"{prefix}{key}.") if sub else value
    return cls(**kwargs)


def to_dataclass(cfg: Any) -> TrainConfig:
    """A composed DictConfig (or plain dict) -> frozen TrainConfig, dropping the `hydra` node."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            # The hydra node holds job-time interpolations; the schema never needs them.
            cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    values = {k: v for k, v in dict(cfg).items() if k != "hydra"}
    return _build(TrainConfig, values, "")


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed; {allowed}")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every value; raise ConfigError naming the first offending key."""
    t, m, o, c = cfg.task, cfg.model, cfg.optim, cfg.curriculum
    _require(t.d >= 1, "task.d", t.d, "must be an integer >= 1")
    _require(t.n_points >= 1, "task.n_points", t.n_points, "must be an integer >= 1")
    _require(t.x_dist in X_DISTS, "task.x_dist", t.x_dist, f"allowed: {', '.join(X_DISTS)}")
    _require(t.w_prior in W_PRIORS, "task.w_prior", t.w_prior, f"allowed: {', '.join(W_PRIORS)}")
    _require(t.w_scale >= 0, "task.w_scale", t.w_scale, "must be >= 0")
    _require(t.noise_std >= 0, "task.noise_std", t.noise_std, "must be >= 0")
    _require(t.pool_size >= 0, "task.pool_size", t.pool_size, "must be >= 0 (0 = fresh w)")
    _require(t.x_uniform_half_width > 0, "task.x_uniform_half_width", t.x_uniform_half_width,
             "must be > 0")
    _require(0 <= t.corrupt_fraction <= 1, "task.corrupt_fraction", t.corrupt_fraction,
             "must be in [0, 1]")
    _require(t.corrupt_mode in CORRUPT_MODES, "task.corrupt_mode", t.corrupt_mode,
             f"allowed: {', '.join(CORRUPT_MODES)}")
    if t.w_prior == "sparse":
        _require(1 <= t.sparsity <= t.d, "task.sparsity", t.sparsity,
                 f"must be in 1..task.d={t.d} for w_prior=sparse")
    from icl_regression.data.families import check_task  # the families need JAX: imported late

    check_task(t)

    _require(m.name in MODELS, "model.name", m.name, f"allowed: {', '.join(MODELS)}")
    _require(m.n_layer >= 1, "model.n_layer", m.n_layer, "must be >= 1")
    _require(m.n_head >= 1, "model.n_head", m.n_head, "must be >= 1")
    _require(m.d_model >= 1, "model.d_model", m.d_model, "must be >= 1")
    _require(m.d_model % m.n_head == 0, "model.n_head", m.n_head,
             f"must divide model.d_model={m.d_model}")
    _require(m.mlp_ratio >= 1, "model.mlp_ratio", m.mlp_ratio, "must be >= 1")
    _require(m.encoding in ENCODINGS, "model.encoding", m.encoding,
             f"allowed: {', '.join(ENCODINGS)}")
    _require(m.positions in POSITIONS, "model.positions", m.positions,
             f"allowed: {', '.join(POSITIONS)}")
    _require(m.max_len == 0 or m.max_len >= t.n_points, "model.max_len", m.max_len,
             f"must be 0 or >= task.n_points={t.n_points}")
    _require(m.dtype in DTYPES, "model.dtype", m.dtype, f"allowed: {', '.join(DTYPES)}")
    _require(m.param_dtype in DTYPES, "model.param_dtype", m.param_dtype,
             f"allowed: {', '.join(DTYPES)}")

    _require(o.lr > 0, "optim.lr", o.lr, "must be > 0")
    _require(o.schedule in SCHEDULES, "optim.schedule", o.schedule,
             f"allowed: {', '.join(SCHEDULES)}")
    _require(o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps, "must be >= 0")
    _require(0 <= o.end_lr_ratio <= 1, "optim.end_lr_ratio", o.end_lr_ratio, "must be in [0, 1]")
    _require(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    _require(o.grad_clip >= 0, "optim.grad_clip", o.grad_clip, "must be >= 0 (0 disables)")

    if c.enabled:
        _require(1 <= c.dims_start <= t.d, "curriculum.dims_start", c.dims_start,
                 f"must be in 1..task.d={t.d}")
        _require(1 <= c.points_start <= t.n_points, "curriculum.points_start", c.points_start,
                 f"must be in 1..task.n_points={t.n_points}")
        _require(c.dims_end == 0 or c.dims_start <= c.dims_end <= t.d, "curriculum.dims_end",
                 c.dims_end, f"must be 0 (= task.d) or in curriculum.dims_start..task.d={t.d}")
        _require(c.points_end == 0 or c.points_start <= c.points_end <= t.n_points,
                 "curriculum.points_end", c.points_end,
                 f"must be 0 (= task.n_points) or in points_start..task.n_points={t.n_points}")
        for key in ("dims_inc", "points_inc"):
            _require(getattr(c, key) >= 0, f"curriculum.{key}", getattr(c, key), "must be >= 0")
        for key in ("dims_interval", "points_interval"):
            _require(getattr(c, key) >= 1, f"curriculum.{key}", getattr(c, key), "must be >= 1")

    _require(cfg.steps >= 1, "steps", cfg.steps, "must be >= 1")
    _require(cfg.batch_size >= 1, "batch_size", cfg.batch_size, "must be >= 1")
    _require(cfg.loss_positions in LOSS_POSITIONS, "loss_positions", cfg.loss_positions,
             f"allowed: {', '.join(LOSS_POSITIONS)}")
    _require(cfg.log_every >= 1, "log_every", cfg.log_every, "must be >= 1")
    _require(cfg.ckpt_every >= 1 and cfg.ckpt_every % cfg.log_every == 0, "ckpt_every",
             cfg.ckpt_every, f"must be a positive multiple of log_every={cfg.log_every}")
    _require(cfg.keep_checkpoints >= 1, "keep_checkpoints", cfg.keep_checkpoints, "must be >= 1")
    _require(cfg.keep_period >= 0, "keep_period", cfg.keep_period, "must be >= 0")
    return cfg


def validate_devices(cfg: TrainConfig, n_devices: int) -> None:
    """The global batch must split evenly over the data-parallel devices."""
    _require(cfg.batch_size % n_devices == 0, "batch_size", cfg.batch_size,
             f"must be divisible by the number of devices ({n_devices})")
