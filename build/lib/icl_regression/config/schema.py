"""The training schema: every key of conf/train.yaml, its type, its default, its choices.

The dataclasses are the single source of truth for every key: Hydra type-checks the composed
config against them (build.py) and library code receives them as plain frozen dataclasses.
Value ranges are checked in checks.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Choice(str, Enum):
    """A configuration choice: compares, hashes, formats and serialises as its plain string
    (`cfg.task.x_dist == "gaussian"`, JSON, f-strings, dict keys), while OmegaConf rejects any
    other value at composition, naming the key and the allowed values."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return repr(self.value)

    def __hash__(self) -> int:
        return str.__hash__(self)


def choice(name: str, *values: str) -> type[Choice]:
    """A Choice enum whose member names are its values (so hashes and dict lookups agree)."""
    return Choice(name, [(value, value) for value in values], module=__name__, qualname=name)


XDist = choice("XDist", "gaussian", "skewed", "uniform")
WPrior = choice("WPrior", "gaussian", "sparse", "fixed")
CorruptMode = choice("CorruptMode", "noise", "other_w")
Encoding = choice("Encoding", "interleaved", "paired")
Positions = choice("Positions", "learned", "none")
DType = choice("DType", "float32", "bfloat16")
Schedule = choice("Schedule", "cosine", "constant")
LossPositions = choice("LossPositions", "all", "last")
LossTarget = choice("LossTarget", "labels", "posterior_mean", "auto")
Remat = choice("Remat", "none", "dots", "full")

CORRUPT_MODES = tuple(mode.value for mode in CorruptMode)


class ConfigError(ValueError):
    """A configuration value is outside what is allowed; the message names the key."""


@dataclass(frozen=True)
class TaskConfig:
    d: int = 5  # input dimension
    n_points: int = 11  # (x, y) pairs per prompt; the model predicts y at every x
    # gaussian N(0, I) | skewed (eigenvalues ∝ 1/(i+1), trace d) | uniform U(-a, a)
    x_dist: XDist = XDist.gaussian
    x_uniform_half_width: float = 1.7320508075688772  # a in U(-a, a); √3 gives unit variance
    w_prior: WPrior = WPrior.gaussian  # gaussian | sparse | fixed (one w for all prompts)
    w_mean: float = 0.0  # μ = w_mean · 1/√d, so ‖μ‖ = |w_mean| whatever d
    w_scale: float = 1.0  # τ: w = μ + τ/√d · z, z ~ N(0, I), so E‖w − μ‖² = τ²
    sparsity: int = 0  # s nonzero coordinates for w_prior=sparse (each N(0, τ²/s))
    noise_std: float = 0.0  # σ: y = w·x + σ ε
    pool_size: int = 0  # M > 0: w drawn uniformly from a fixed pool of M tasks; 0: fresh w
    # Corrupted demonstrations: exactly round(f · n_points) labels of every prompt replaced by
    # N(0, E y²) noise (noise) or by the labels of another task's w (other_w).
    corrupt_fraction: float = 0.0
    corrupt_mode: CorruptMode = CorruptMode.noise
    # Function classes: the task family drawing the prompts (data/families/, one file each;
    # `task=<family>` picks conf/task/<family>.yaml) and its parameters. A plain string, not an
    # Enum: families are extensions, registered by name (data.families.FAMILIES).
    family: str = "linear"
    hidden_width: int = 100  # relu2nn: hidden units of the random two-layer net (Garg: 100)
    tree_depth: int = 4  # decision_tree: depth of the random full binary tree (Garg: 4)
    noise_stds: tuple[float, ...] = ()  # noise_mixture: σ uniform over these, per prompt
    components: tuple[str, ...] = ()  # mixture: the component families (share these fields)
    component_weights: tuple[float, ...] = ()  # mixture: their probabilities; empty = uniform

    def __post_init__(self):
        # Configs built from lists (JSON, Python) keep tuples: hashable, a jit static argument.
        for name in ("noise_stds", "components", "component_weights"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True)
class ModelConfig:
    # A registered model (models/, one file each; `model=<name>` picks conf/model/<name>.yaml).
    # A plain string, not an Enum: models are extensions, registered by name (models.MODELS).
    name: str = "gpt"
    n_layer: int = 4
    n_head: int = 2
    d_model: int = 64
    mlp_ratio: int = 4
    # interleaved: x1, y1, x2, ...; paired: one token per (x_{i-1}, y_{i-1}, x_i)
    encoding: Encoding = Encoding.paired
    positions: Positions = Positions.learned  # learned absolute positions | none
    max_len: int = 0  # positional table length in points; 0 = task.n_points
    dtype: DType = DType.float32  # compute dtype (bfloat16 on accelerators)
    param_dtype: DType = DType.float32
    # What each block keeps for the backward pass: dots = matmul outputs only, the elementwise
    # rest recomputed (fewer stacked buffers for the layer scan to write: ×1.25 steps/s on CPU,
    # benchmarks/engine_levers.py); none = everything; full = only the block's input. GPT only.
    remat: Remat = Remat.dots
    # LSA only (von Oswald et al. 2022)
    tie_layers: bool = False
    use_mlp: bool = False
    use_layernorm: bool = False


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    schedule: Schedule = Schedule.cosine  # cosine (warmup, cosine decay) | constant (after warmup)
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
    # Compile each points stage at its own prompt length instead of masking: early stages then
    # cost less per step (one compilation per stage). The data stream differs from masking.
    staged_shapes: bool = False


@dataclass(frozen=True)
class MeshConfig:
    multi_host: bool = False  # call jax.distributed.initialize()
    coordinator_address: str = ""  # host:port; empty = from the environment (e.g. SLURM)
    num_processes: int = 0  # 0 = from the environment
    process_id: int = -1  # -1 = from the environment
    # CPU only: split the host into this many data-parallel devices (XLA runs each device's
    # program on its own thread; ×1.4–1.8 steps/s at small sizes on 2 cores). 0 = one per
    # core, as many as the batch divides into; 1 = one device. Ignored on accelerators and
    # with multi_host.
    cpu_devices: int = 0


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
    loss_positions: LossPositions = LossPositions.all
    # labels: the loss compares each prediction with the prompt's label y_i; posterior_mean:
    # with E[y_i | the prompt before y_i] instead (the Bayes predictor's output: min-norm OLS,
    # or ridge λ* with label noise). Same minimiser, far less gradient noise at k < d.
    # Linear tasks with a zero-mean Gaussian w prior only (train/targets.py).
    loss_target: LossTarget = LossTarget.labels
    log_every: int = 100  # also the number of optimizer steps per jitted call
    ckpt_every: int = 1000  # a multiple of log_every
    keep_checkpoints: int = 2  # latest N kept ...
    keep_period: int = 0  # ... plus every checkpoint at a multiple of this (0: none)
    tensorboard: bool = False
    progress: bool = True
    # Modules imported before anything else (icl_regression.plugins): a user's own families,
    # models, baselines. Recorded in config.json, so loading the run imports them again.
    plugins: tuple[str, ...] = ()
