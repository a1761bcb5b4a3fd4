"""What the fault-injection tests share: a finished tiny run, one compilation for all."""

import glob
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, tiny_config

from icl_regression import load_run
from icl_regression.train.loop import train_run

CFG = tiny_config(steps=20, log_every=5, ckpt_every=5, keep_checkpoints=4)
CLI_TINY = ["model.n_layer=2", "model.d_model=16", "task.d=3", "task.n_points=6",
            "batch_size=16", "progress=false"]
TRAIN = [sys.executable, "-m", "icl_regression.train"]


def params_of(run_dir):
    return jax.tree.leaves(jax.device_get(load_run(run_dir).model))


def assert_same_params(run_dir, expected):
    for a, b in zip(params_of(run_dir), expected, strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise on CPU


CACHE_KEYS = {"jax_compilation_cache_dir": "JAX_COMPILATION_CACHE_DIR",
              "jax_persistent_cache_min_compile_time_secs":
                  "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}


@pytest.fixture(scope="module", autouse=True)
def compile_once(tmp_path_factory):
    """Most trainings here run the same tiny program: JAX's persistent compilation cache
    compiles it once for this module and its subprocesses (the environment it yields);
    a compilation is most of a tiny run's time on a shared CPU."""
    from jax.experimental.compilation_cache import compilation_cache

    values = {"jax_compilation_cache_dir": str(tmp_path_factory.mktemp("jax_cache")),
              "jax_persistent_cache_min_compile_time_secs": 0}
    before = {key: getattr(jax.config, key) for key in values}
    for key, value in values.items():
        jax.config.update(key, value)
    compilation_cache.reset_cache()
    yield {**os.environ, **{CACHE_KEYS[key]: str(value) for key, value in values.items()}}
    for key, value in before.items():
        jax.config.update(key, value)
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, compile_once):
    """A finished run (checkpoints at 5, 10, 15, 20) and its final parameters."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train_run(CFG, run_dir)
    return run_dir, params_of(run_dir)


@pytest.fixture
def finished(uninterrupted, tmp_path):
    """A copy of the finished run to damage."""
    shutil.copytree(uninterrupted[0], tmp_path / "run")
    return tmp_path / "run"


def snapshot(run_dir):
    return {p: (os.path.getsize(p), os.path.getmtime(p))
            for p in glob.glob(f"{run_dir}/**", recursive=True, include_hidden=True)}


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "HYDRA_FULL_ERROR" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def hold_in_subprocess(run_dir):
    """Another process holding the run directory's lock, as a running training would."""
    code = ("import sys, time; from icl_regression.storage import hold_run_lock; "
            "hold_run_lock(sys.argv[1]); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc
