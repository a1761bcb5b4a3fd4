"""The model table: `model.name` -> the Flax NNX class that builds it."""

from __future__ import annotations

from icl_regression.registry import Registry

MODELS: Registry[type] = Registry("model.name")
