"""Schema dataclass <-> OmegaConf: registration in Hydra's ConfigStore, building the frozen
dataclass from a composed config, and OmegaConf's errors turned into one-line ConfigErrors."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any

from icl_regression.config.schema import ConfigError, TrainConfig

MISSING = "???"  # OmegaConf's marker of a required value


class MissingValueError(ConfigError):
    """A required key (`???` in the schema) was not given; `hint` says what it takes."""

    def __init__(self, key: str, hint: str = "") -> None:
        self.key = key
        super().__init__(f"{key}={MISSING} is not allowed; "
                         f"{hint or f'{key} is required ({key}=...)'}")


def _writable(node: Any) -> Any:
    """Frozen dataclasses become read-only nodes; overrides must be able to change them."""
    from omegaconf import OmegaConf

    OmegaConf.set_readonly(node, False)
    for key in node:
        child = node._get_node(key)
        if OmegaConf.is_dict(child):
            _writable(child)
    return node


@functools.cache
def structured(schema: type) -> Any:
    """The schema as a writable OmegaConf node (types, defaults and choices enforced). Built once
    per schema: callers merge into it (`OmegaConf.merge` copies) or store it (ConfigStore
    copies), never change it."""
    from omegaconf import OmegaConf

    return _writable(OmegaConf.structured(schema))


def register_schema(name: str, schema: type) -> None:
    """Store `schema` under `name` so an app's YAML can list it first in its defaults."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=name, node=structured(schema))


def register_configs() -> None:
    """Register the training schema so Hydra type-checks every key of conf/train.yaml."""
    register_schema("train_schema", TrainConfig)


def _tuples(value: Any) -> Any:
    """Lists -> tuples, inside nested frozen dataclasses too (hashable, immutable configs)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _tuples(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


def to_dataclass(cfg: Any, schema: type = TrainConfig) -> Any:
    """A composed DictConfig (or a plain dict, e.g. a run's config.json) -> frozen `schema`
    instance; the `hydra` node is dropped. Bad keys, types or missing values -> ConfigError."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    typed = isinstance(cfg, DictConfig) and OmegaConf.get_type(cfg) is schema
    if typed and "hydra" not in cfg:  # composed against the schema already: types checked
        values: Any = cfg
    else:
        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=False)
        values = {k: v for k, v in dict(cfg).items() if k != "hydra"}
    try:
        node = values if values is cfg else OmegaConf.merge(structured(schema), values)
        missing = _missing_keys(node)
        if missing:
            raise MissingValueError(missing[0])
        return _tuples(OmegaConf.to_object(node))
    except OmegaConfBaseException as err:
        raise ConfigError(omegaconf_message(err, schema, values)) from None


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Keys left at `???`, without resolving interpolations (which may need them)."""
    from omegaconf import OmegaConf

    found = []
    for key in node:
        if OmegaConf.is_missing(node, key):
            found.append(f"{prefix}{key}")
        elif OmegaConf.is_dict(node._get_node(key)):
            found += _missing_keys(node._get_node(key), f"{prefix}{key}.")
    return found


def omegaconf_message(err: Any, schema: type, values: Mapping | None = None) -> str:
    """`KEY=VALUE is not allowed; <what is allowed>` for an OmegaConf error on `schema`."""
    from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

    key = str(getattr(err, "full_key", "") or "")
    value = getattr(err, "value", None)  # the offending value itself (a list's element too)
    value = lookup(values or {}, key) if value is None else value
    shown = MISSING if isinstance(err, MissingMandatoryValue) else repr(value)
    if isinstance(err, ConfigKeyError) or "not in" in str(getattr(err, "msg", "")):
        parent, _, _ = key.rpartition(".")
        names = ", ".join(field_names(schema, parent))
        return f"{key}={shown} is not allowed; unknown key; {parent or 'the config'} has: {names}"
    if isinstance(err, MissingMandatoryValue):
        return str(MissingValueError(key))
    if isinstance(err, ValidationError) and key:
        return f"{key}={shown} is not allowed; must be {describe(field_type(schema, key))}"
    first_line = str(getattr(err, "msg", err)).splitlines()[0]
    return f"{key or 'config'}={shown} is not allowed; {first_line}"


def lookup(values: Mapping, key: str, default: Any = None) -> Any:
    """values['a']['b'] for key 'a.b' (list indices ignored); `default` when absent."""
    if key in values:  # flat {"a.b": value}, as parsed from command-line overrides
        return values[key]
    node: Any = values
    for part in key.split("."):
        part = part.split("[")[0]
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def field_names(schema: type, path: str) -> list[str]:
    kind = field_type(schema, path) if path else schema
    return [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else []


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """Resolved annotations (the schemas use `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def field_type(schema: type, key: str) -> Any:
    """The annotated type of `key` ('a.b', 'a.b[0]' for an element) in `schema`; Any if unknown."""
    kind: Any = schema
    for part in key.split("."):
        name, _, index = part.partition("[")
        if not dataclasses.is_dataclass(kind):
            return Any
        kind = type_hints(kind).get(name, Any)
        if index:  # an element of a list or tuple field
            args = [a for a in typing.get_args(_unwrap_optional(kind)) if a is not Ellipsis]
            kind = args[0] if args else Any
        kind = _unwrap_optional(kind) if dataclasses.is_dataclass(_unwrap_optional(kind)) else kind
    return kind


def _unwrap_optional(kind: Any) -> Any:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    is_union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    return args[0] if is_union and len(args) == 1 else kind


def describe(kind: Any) -> str:
    """A type as the error message says it: 'an integer', 'one of a, b', 'a list of numbers'."""
    optional = _unwrap_optional(kind)
    if optional is not kind:
        return f"{describe(optional)}, or null"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "one of " + ", ".join(str(member.value) for member in kind)
    if typing.get_origin(kind) in (tuple, list):
        args = [a for a in typing.get_args(kind) if a is not Ellipsis]
        return "a list" + (f" (each {describe(args[0])})" if args else "")
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(kind, "a value of the documented type")
