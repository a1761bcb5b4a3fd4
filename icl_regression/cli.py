"""The one way every app starts: Hydra composes conf/<app>.yaml against the app's schema
dataclass, the checks run, and any bad input ends as one line on stderr, exit code 2.

Before Hydra's own `main` runs (it writes `.hydra/`, the run directory and a multirun's sweep
folder before calling the app), `preflight` composes the same command line with Hydra's compose
API: every job of a multirun, its schema dataclass and its checks, and the app's `precheck` on the
run directory. So `task.d=abc`, `preset=nope`, an unknown key, a missing required key or a
value out of range prints `error: KEY=VALUE is not allowed; <what is allowed>` and exits 2 with
nothing computed or written. The checked config reaches the app's `work` as a frozen dataclass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icl_regression.command_line import hydra_arguments, job_overrides
from icl_regression.config import (
    ConfigError,
    MissingValueError,
    TrainConfig,
    register_schema,
    to_dataclass,
    validate,
)
from icl_regression.config.build import omegaconf_message

# The configs ship inside the package (found through it, never through the working tree), so an
# installed package's console scripts work from any directory. A user's own config folders join
# through Hydra's `hydra.searchpath=[file:///their/conf]`.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")
# Old spellings still accepted, with a note: `experiment=NAME` is `preset=NAME` (training presets
# are presets; experiments are the evaluation loops of icl-experiments).
ALIASES = {"experiment": "preset"}


@dataclass(frozen=True)
class App:
    """An entry point: conf/<config_name>.yaml, whose defaults list `<config_name>_schema`."""

    config_name: str
    schema_factory: type | Callable[[], type]  # the schema, or a function building it (plugins)
    check: Callable[[Any], Any]  # the schema's value checks; returns the checked config
    work: Callable[[Any, Path], Any]  # (checked config, Hydra's output directory)
    precheck: Callable[[Any, Path], None] | None = None  # on the run directory, before writing
    # required key -> what it takes (or a function returning that, read when needed)
    hints: Mapping[str, str | Callable[[], str]] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)  # old key -> its key now
    entry_groups: bool = False  # offers `task=` / `model=`: a registered name needs no YAML

    @property
    def schema_name(self) -> str:
        return f"{self.config_name}_schema"

    @property
    def schema(self) -> type:
        """The schema dataclass; built when asked, after plugins registered their entries."""
        factory = self.schema_factory
        return factory if dataclasses.is_dataclass(factory) else factory()

    def hint(self, key: str) -> str:
        hint = self.hints.get(key, "")
        return hint() if callable(hint) else hint


def fail(message: str) -> None:
    """The error path of every app: one line on stderr, exit code 2."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    sys.exit(2)


def compose(config_name: str, schema: type, overrides: Sequence[str] = (),
            return_hydra_config: bool = False) -> Any:
    """conf/<config_name>.yaml composed with `overrides`, as the app's Hydra main would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schema(f"{config_name}_schema", schema)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name, list(overrides), return_hydra_config=return_hydra_config)


def compose_train(overrides: Sequence[str] = ()) -> TrainConfig:
    """The checked training config for `overrides` (e.g. `preset=quickstart`); any bad
    input, Hydra's and OmegaConf's errors included, is a ConfigError with the app's one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    import icl_regression.data.families  # noqa: F401 - the checks ask its registry (traits)

    try:
        cfg = compose("train", TrainConfig, overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(error_line(err, TrainConfig, overrides)) from None
    return validate(to_dataclass(cfg))


def compose_train_or_fail(overrides: Sequence[str] = ()) -> TrainConfig:
    """`compose_train` for scripts that take training overrides (benchmarks): bad input is one
    line and exit 2, as in every app."""
    with one_line_errors(TrainConfig, overrides):
        return compose_train(overrides)


def checked(app: App, cfg: Any) -> Any:
    """Composed config -> the app's checked dataclass (checks wrapped in `config.once` run
    once per process: in the preflight, not again in Hydra's main)."""
    try:
        built = to_dataclass(cfg, app.schema)
    except MissingValueError as err:
        raise MissingValueError(err.key, app.hint(err.key)) from None
    return app.check(built)


def error_line(err: BaseException, schema: type, overrides: Sequence[str]) -> str:
    """`KEY=VALUE is not allowed; <what is allowed>` for anything Hydra or OmegaConf raise."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    given = dict(_split(o) for o in overrides if "=" in o)
    if isinstance(err, ConfigError):
        return str(err)
    if isinstance(err, MissingConfigException):
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        options = [o for o in err.options or () if not o.endswith("_schema")]  # model keys
        if options:
            return f"{group}={name!r} is not allowed; choose from {', '.join(options)}"
        for key, value in given.items():  # e.g. a launcher whose plugin is not installed
            if f"{key}/{value}" in str(err):
                return f"{key}={value!r} is not allowed; {str(err).splitlines()[0]}"
    if isinstance(err, OverrideParseException):
        bad = next((o for o in overrides if not _parses(o)), " ".join(overrides))
        return f"{bad!r} is not allowed; overrides are KEY=VALUE (Hydra's override grammar)"
    cause = err if isinstance(err, OmegaConfBaseException) else err.__cause__
    if isinstance(cause, OmegaConfBaseException):
        return omegaconf_message(cause, schema, given)
    quoted = re.search(r"'([^'=\s]+)=([^']*)'", str(err))
    if quoted and "Ambiguous" in str(err):
        return (f"{quoted[1]}={quoted[2]!r} is not allowed; a sweep needs -m (--multirun), a "
                f"list is {quoted[1]}=[{quoted[2]}]")
    if quoted:
        return f"{quoted[1]}={quoted[2]!r} is not allowed; {str(err).splitlines()[0]}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _parses(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        OverridesParser.create().parse_overrides([override])
        return True
    except OverrideParseException:
        return False


@contextlib.contextmanager
def one_line_errors(schema: type, overrides: Sequence[str]) -> Iterator[None]:
    """Any configuration error raised inside -> `fail` with its one line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from icl_regression.storage import RunDirLocked

    try:
        yield
    except (ConfigError, HydraException, OmegaConfBaseException) as err:
        fail(error_line(err, schema, overrides))
    except (RunDirLocked, FileNotFoundError) as err:  # a run dir in use, or not (yet) a run
        fail(str(err))
    except OSError as err:  # a write refused: read-only storage, permissions, a full disk
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT):
            raise
        fail(f"writing {err.filename} failed ({err.strerror}); set out_dir=DIR, or fix it")


def preflight(app: App, overrides: Sequence[str], multirun: bool, precheck: bool = True) -> None:
    """Compose and check every job of the command line; the precheck on a single run's dir
    (not for `--cfg`: printing the config writes nothing, so it takes no run directory)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    plain = [o.input_line for o in OverridesParser.create().parse_overrides(list(overrides))
             if not o.is_sweep_override()]
    base = compose(app.config_name, app.schema, plain, return_hydra_config=True)
    multirun = multirun or base.hydra.mode == RunMode.MULTIRUN
    jobs = job_overrides(base, overrides, multirun)
    for job in jobs:
        job_cfg = base if job == list(overrides) else compose(
            app.config_name, app.schema, job, return_hydra_config=True)
        cfg = checked(app, job_cfg)
        if precheck and app.precheck is not None and not multirun:
            app.precheck(cfg, Path(str(job_cfg.hydra.run.dir)))


def with_aliases(argv: Sequence[str], aliases: Mapping[str, str] = ALIASES) -> list[str]:
    """`experiment=NAME` -> `preset=NAME` (and the other old spellings), with a note."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        bare = key.lstrip("+~")
        if eq and bare in aliases:
            new = key[:len(key) - len(bare)] + aliases[bare]
            print(f"note: {bare}= is now {aliases[bare]}= (the old spelling still works for now)",
                  file=sys.stderr)
            arg = f"{new}={value}"
        out.append(arg)
    return out


def check_command_line(app: App, argv: Sequence[str]) -> list[str]:
    """Everything an app does before Hydra's main: aliases, plugins, and every job of the
    command line composed and checked (bad input: one line, exit 2). Returns the argv for
    Hydra. Nothing is computed or written, so a documented command can be checked this way."""
    from icl_regression.plugins import load_plugins, named_in, register_entry_configs

    argv = with_aliases(argv, {**ALIASES, **app.aliases})
    args = hydra_arguments(argv)
    overrides = list(args.overrides or ())
    with one_line_errors(dict, overrides):  # before the schema: plugins may extend it
        load_plugins(named_in(overrides))
        if app.entry_groups:
            register_entry_configs(CONF_DIR)
    custom_conf = args.config_path or args.config_dir or args.config_name
    print_only = args.help or args.hydra_help or args.version or args.info or (
        args.shell_completion)
    if not custom_conf and not print_only:  # --cfg too: a config that is printed is checked
        with one_line_errors(app.schema, overrides):
            preflight(app, overrides, args.multirun, precheck=not args.cfg)
    return argv


def run_app(app: App, argv: Sequence[str] | None = None) -> None:
    """Check the command line (one line + exit 2 on bad input), then run Hydra's main."""
    import hydra
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    argv = check_command_line(app, sys.argv[1:] if argv is None else argv)
    overrides = list(hydra_arguments(argv).overrides or ())
    GlobalHydra.instance().clear()
    register_schema(app.schema_name, app.schema)

    @hydra.main(config_path=CONF_DIR, config_name=app.config_name, version_base="1.3")
    def _main(cfg: Any) -> None:
        for noisy in ("jax", "absl", "orbax"):  # Hydra sets the root logger to INFO
            logging.getLogger(noisy).setLevel(logging.WARNING)
        with one_line_errors(app.schema, overrides):
            app.work(checked(app, cfg), Path(HydraConfig.get().runtime.output_dir))

    sys.argv = [sys.argv[0], *argv]
    _main()
