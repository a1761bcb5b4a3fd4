"""Every app's configuration: the training schema, building it from Hydra, its value checks."""

from icl_regression.config.build import (
    MissingValueError,
    register_configs,
    register_schema,
    to_dataclass,
)
from icl_regression.config.checks import effective_loss_target, once, validate, validate_devices
from icl_regression.config.models import (
    GPTConfig,
    GRUConfig,
    HyenaConfig,
    LinearAttentionConfig,
    LoopedConfig,
    LSAConfig,
    LSTMConfig,
    MambaConfig,
    MambaFormerConfig,
    drop_foreign_keys,
    model_keys,
    model_label,
)
from icl_regression.config.schema import (
    CORRUPT_MODES,
    MODEL_CONFIGS,
    Choice,
    ConfigError,
    CorruptMode,
    CurriculumConfig,
    DType,
    Encoding,
    LossPositions,
    LossTarget,
    MeshConfig,
    ModelConfig,
    OptimConfig,
    Positions,
    Schedule,
    TaskConfig,
    TrainConfig,
    WPrior,
    XDist,
)

__all__ = [
    "CORRUPT_MODES", "MODEL_CONFIGS", "Choice", "ConfigError", "CorruptMode", "CurriculumConfig",
    "DType", "Encoding", "GPTConfig", "GRUConfig", "HyenaConfig", "LSAConfig", "LSTMConfig",
    "LinearAttentionConfig", "LoopedConfig", "LossPositions", "LossTarget", "MambaConfig",
    "MambaFormerConfig", "MeshConfig", "MissingValueError", "ModelConfig",
    "drop_foreign_keys", "model_keys", "model_label",
    "OptimConfig", "Positions", "Schedule", "TaskConfig", "TrainConfig", "WPrior", "XDist",
    "effective_loss_target", "once", "register_configs", "register_schema", "to_dataclass",
    "validate", "validate_devices",
]
