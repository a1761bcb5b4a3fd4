"""Sequence models other than the GPT under the training guarantees: a resumed run equals an
uninterrupted one bit for bit on CPU, and two data-parallel devices follow one device's
trajectory (the helpers of tests/train/test_scale.py). Slow: each compiles several updates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import ROOT, tiny_config

from icl_regression.config import LSTMConfig, MambaConfig, MambaFormerConfig, TaskConfig
from icl_regression.run import load_run
from icl_regression.train.loop import train_run

MODELS = {"lstm": LSTMConfig(n_layer=1, d_model=8),
          "mamba": MambaConfig(n_layer=1, d_model=8, d_state=4),
          "mambaformer": MambaFormerConfig(n_layer=1, d_model=8, d_state=4)}
TASK = TaskConfig(d=2, n_points=5)


def small(name: str, steps: int = 4):
    return tiny_config(model=MODELS[name], task=TASK, steps=steps, batch_size=8, log_every=2,
                       ckpt_every=2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm", "mamba"])
def test_resumed_run_equals_the_uninterrupted_one(name, tmp_path):
    train_run(small(name, steps=2), tmp_path / "resumed")
    train_run(small(name), tmp_path / "resumed")  # restores step 2, trains to 4
    train_run(small(name), tmp_path / "straight")
    leaves = [jax.tree.leaves(jax.device_get(load_run(tmp_path / run).model))
              for run in ("resumed", "straight")]
    for a, b in zip(*leaves, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def two_device_checks():
    """In a process with two CPU devices: one and two devices, same trajectory."""
    from test_scale import compiled_update

    from icl_regression.train.mesh import DataParallel

    assert jax.device_count() == 2
    one, two = DataParallel.create(devices=jax.devices()[:1]), DataParallel.create()
    for name in ("mamba", "mambaformer"):
        cfg = small(name)
        losses = {}
        for parallel in (one, two):
            compiled, params, opt_state = compiled_update(cfg, parallel, 4)
            _, _, metrics = compiled(params, opt_state, 0)
            losses[parallel.n_devices] = np.asarray(metrics["loss"])
        np.testing.assert_allclose(losses[2], losses[1], rtol=1e-4, err_msg=name)


@pytest.mark.slow
def test_two_devices_follow_one_device():
    tests = Path(__file__).resolve().parent.parent
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(tests), str(tests / "train"),
                                          str(tests / "models")])}
    code = "import test_resume_and_devices as t; t.two_device_checks()"
    done = subprocess.run([sys.executable, "-c", code], cwd=tests / "models", env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
