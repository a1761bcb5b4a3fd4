"""Every app's configuration: the training schema, building it from Hydra, its value checks."""

from icl_regression.config.build import (
    MissingValueError,
    register_configs,
    register_schema,
    to_dataclass,
)
from icl_regression.config.checks import effective_loss_target, once, validate, validate_devices
from icl_regression.config.schema import (
    CORRUPT_MODES,
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
    "CORRUPT_MODES", "Choice", "ConfigError", "CorruptMode", "CurriculumConfig", "DType",
    "Encoding", "LossPositions", "LossTarget", "MeshConfig", "MissingValueError", "ModelConfig",
    "OptimConfig", "Positions", "Schedule", "TaskConfig", "TrainConfig", "WPrior", "XDist",
    "effective_loss_target", "once", "register_configs", "register_schema", "to_dataclass",
    "validate", "validate_devices",
]
