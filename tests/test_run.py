"""Run: parameters-only restore (no optimizer, no training code), one jitted forward, and a
chunker that never changes the compiled shape."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from conftest import ROOT, tiny_config
from flax import nnx

from icl_regression.checkpoints import Checkpointer
from icl_regression.models import build_model
from icl_regression.run import chunked, load_run


def test_chunker_pads_the_last_chunk_and_keeps_every_row():
    shapes = []

    def fn(xs, ys):
        shapes.append(xs.shape)
        return xs.sum(-1) * ys  # (B, n)

    xs, ys = jnp.arange(7 * 3 * 2.0).reshape(7, 3, 2), jnp.ones((7, 3))
    out = chunked(fn, (xs, ys), 3)
    assert shapes == [(3, 3, 2)] * 3  # 3 + 3 + 1 (padded to 3): one compiled shape
    np.testing.assert_array_equal(out, xs.sum(-1))
    assert chunked(fn, (xs, ys), 100).shape == (7, 3) and shapes[-1] == (7, 3, 2)  # no padding
    host = chunked(lambda a, b: jnp.stack([a.sum(-1), b]), (xs, ys), 4, axis=1, host=True)
    assert isinstance(host, np.ndarray) and host.shape == (2, 7, 3)
    expected = np.stack([np.asarray(xs).sum(-1), np.asarray(ys)])  # (2, 7, 3)
    np.testing.assert_array_equal(host, expected)
    # NumPy inputs are sliced and padded on the host; the rows and their order are the same.
    from_numpy = chunked(lambda a, b: jnp.stack([a.sum(-1), b]), (np.asarray(xs),
                                                                  np.asarray(ys)), 4, axis=1)
    assert isinstance(from_numpy, jax.Array)
    np.testing.assert_array_equal(from_numpy, expected)


def test_load_run_restores_parameters_only(tmp_path):
    cfg = tiny_config(seed=3)
    (tmp_path / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    trained = build_model(cfg.model, cfg.task, seed=11)  # differs from the seed-3 init
    params = nnx.split(trained)[1]
    ckpt = Checkpointer(tmp_path / "checkpoints")
    # An optimizer state no optimizer of this project has: restoring it would fail.
    ckpt.save(7, {"params": params, "opt_state": {"unknown": jnp.zeros((5, 5))}})
    ckpt.close()
    run = load_run(tmp_path)
    assert run.step == 7
    for got, want in zip(jax.tree.leaves(nnx.split(run.model)[1]), jax.tree.leaves(params),
                         strict=True):
        np.testing.assert_array_equal(got, want)
        # restored into shapes alone (no init): still JAX arrays where a built model puts them
        assert isinstance(got, jax.Array) and got.devices() == {jax.devices()[0]}
    xs, ys, _ = run.sample(jax.random.key(0), 5)
    np.testing.assert_allclose(run.predict(xs, ys), trained(xs, ys), rtol=1e-6, atol=1e-6)
    run.predict_batch = 2  # 2 + 2 + 1 (padded): same numbers
    np.testing.assert_allclose(run.predict(xs, ys), trained(xs, ys), rtol=1e-5, atol=1e-6)


def test_run_imports_no_training_code():
    # what load_run imports (checkpoints and models lazily): no training module among them
    code = ("import sys, icl_regression.run, icl_regression.checkpoints, icl_regression.models; "
            "print([m for m in sys.modules if m.startswith('icl_regression.train')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
