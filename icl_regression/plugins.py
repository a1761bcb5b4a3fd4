"""Extensions from outside the package: a user's module registers task families, baselines,
models, settings, experiments, figures and probe kinds with the same calls the package uses, and
every app imports it first.

Two ways in, as pytest and others do it:

* an entry point in the user's own package (found once installed):

      [project.entry-points."icl_regression.plugins"]
      my_tasks = "my_pkg.my_tasks"

* `plugins=[my_pkg.my_tasks]` on any app's command line (or `plugins=...` in a config); a
  training run records its plugins in config.json, so loading the run imports them again.

The user's own YAML configs (conf/task/<family>.yaml, conf/model/<name>.yaml, presets) join
through Hydra's search path: `hydra.searchpath=[file:///abs/path/to/conf]`.
A stream id a plugin registers that is already taken, or a module that fails to import, is one
line naming the plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points

from icl_regression.config import ConfigError

ENTRY_POINT_GROUP = "icl_regression.plugins"
_loaded: set[str] = set()  # module names imported as plugins in this process
_entry_points_done = False


class PluginError(ConfigError):
    """A plugin could not be loaded; the message names it and why."""


def named_in(overrides: Sequence[str]) -> tuple[str, ...]:
    """The modules of a `plugins=...` override (`plugins=a.b` or `plugins=[a.b,c.d]`)."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "plugins":
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            return tuple(v.strip().strip("'\"") for v in value.split(",") if v.strip())
    return ()


def _import(name: str, origin: str) -> None:
    if name in _loaded:
        return
    try:
        importlib.import_module(name)
    except ValueError as err:  # a registry's clash: a name or stream id already taken
        raise PluginError(f"{origin}={name!r} is not allowed; {err} (pick an unused one)") from None
    except ImportError as err:
        raise PluginError(f"{origin}={name!r} is not allowed; it does not import ({err}); "
                          "put its folder on PYTHONPATH or pip install it") from None
    _loaded.add(name)


def load_entry_points() -> tuple[str, ...]:
    """Import every module registered under the `icl_regression.plugins` entry point group."""
    global _entry_points_done
    names = tuple(ep.value.split(":")[0] for ep in entry_points(group=ENTRY_POINT_GROUP))
    if not _entry_points_done:
        _entry_points_done = True
        for name in names:
            _import(name, "entry point " + ENTRY_POINT_GROUP)
    return names


def load_plugins(modules: Iterable[str] = ()) -> tuple[str, ...]:
    """The entry points, then `modules`, each imported once per process; returns the modules
    imported as plugins so far. PluginError (one line) when one cannot be loaded."""
    load_entry_points()
    for name in modules:
        _import(name, "plugins")
    return tuple(sorted(_loaded))


def loaded() -> tuple[str, ...]:
    return tuple(sorted(_loaded))



def register_entry_configs(conf_dir: str) -> None:
    """`task=<family>` and `model=<name>` for every registered family and model, even without a
    conf/task/<family>.yaml or conf/model/<name>.yaml (a plugin's one file is enough); a YAML
    of the same name, in the package or on the search path, still wins."""
    from pathlib import Path

    from hydra.core.config_store import ConfigStore

    from icl_regression.data.families import FAMILIES
    from icl_regression.models import model_names

    store = ConfigStore.instance()
    for group, key, names in (("task", "family", FAMILIES.names()),
                              ("model", "name", model_names())):
        for name in names:
            if not (Path(conf_dir) / group / f"{name}.yaml").exists():
                # a model's own keys (config/models.py) are model/<name>_schema
                schema = {"defaults": [f"{name}_schema", "_self_"]} if group == "model" else {}
                store.store(group=group, name=name, node={**schema, key: name})
