"""Scale-out: data parallelism on fake CPU devices, process-0-only writing, multi-host start-up,
cluster launcher configs, local multirun, and bf16 mixed precision."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from conftest import CONF_DIR, ROOT, tiny_config
from flax import nnx
from jax.tree_util import Partial

from icl_regression.config import ConfigError, GPTConfig, MeshConfig, validate_devices
from icl_regression.data import tasks
from icl_regression.models import build_model
from icl_regression.run import Run, _spread, chunked, forward
from icl_regression.storage import read_jsonl as read_metrics
from icl_regression.train import loop
from icl_regression.train.mesh import DataParallel, initialize_distributed

TESTS = Path(__file__).resolve().parent  # this folder: the subprocesses import test_scale
# One layer, width 8: compiles fast; batch 8 splits into 4 + 4 on two devices.
SMALL = tiny_config(model=GPTConfig(n_layer=1, n_head=2, d_model=8), batch_size=8,
                    steps=10, log_every=5, ckpt_every=5)


def compiled_update(cfg, parallel: DataParallel, n_steps: int):
    """(compiled update, replicated params, replicated optimizer state) for `cfg`."""
    graphdef, params = nnx.split(build_model(cfg.model, cfg.task, cfg.seed))
    tx, schedule = loop.make_optimizer(cfg)
    params = parallel.replicate(params)
    opt_state = parallel.replicate(tx.init(params))
    update = loop.make_update(cfg, graphdef, tx, schedule, parallel)
    compiled = update.lower(params, opt_state, 0, n_steps, cfg.task.n_points).compile()
    return compiled, params, opt_state


def run_in_subprocess(function: str, n_devices: int = 2, timeout: int = 300):
    """Run `function` of this module in a fresh Python with `n_devices` fake CPU devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(TESTS)])}
    proc = subprocess.run([sys.executable, "-c", f"import test_scale; test_scale.{function}()"],
                          cwd=TESTS, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# --- data parallelism (runs in a subprocess with two fake devices) ---------------------------

def two_device_checks():
    assert jax.device_count() == 2
    one, two = DataParallel.create(devices=jax.devices()[:1]), DataParallel.create()
    runs = {}
    for parallel in (one, two):
        compiled, params, opt_state = compiled_update(SMALL, parallel, 6)
        params, _, metrics = compiled(params, opt_state, 0)
        runs[parallel.n_devices] = compiled.as_text(), np.asarray(metrics["loss"]), params

    # Same global batch -> same trajectory (reductions differ only in summation order).
    np.testing.assert_allclose(runs[2][1], runs[1][1], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(runs[2][2]), jax.tree.leaves(runs[1][2]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
        assert a.sharding.is_fully_replicated  # parameters stay replicated

    # The batch really is split: each device holds 4 of the 8 prompts ...
    batch = jax.jit(lambda step: loop.sharded_batch(SMALL, step, SMALL.task.d, two,
                                                    SMALL.task.n_points))
    xs, ys = batch(3)
    assert xs.sharding.is_equivalent_to(two.batch_sharding, xs.ndim)
    assert [s.data.shape for s in xs.addressable_shards] == [(4, 6, 3), (4, 6, 3)]
    assert {s.device for s in ys.addressable_shards} == set(jax.devices())
    full_xs, _, _ = jax.device_get(jax.jit(lambda: tasks.train_batch(
        SMALL.seed, 3, SMALL.task, SMALL.batch_size, SMALL.task.d))())
    np.testing.assert_array_equal(np.asarray(xs), full_xs)  # same prompts, just split
    # ... and inside the compiled update every activation is per-device (4, T, D), with the
    # gradients summed over devices by an all-reduce.
    hlo_two, hlo_one = runs[2][0], runs[1][0]
    assert set(re.findall(r"f32\[\d+,6,8\]", hlo_two)) == {"f32[4,6,8]"}
    assert set(re.findall(r"f32\[\d+,6,8\]", hlo_one)) == {"f32[8,6,8]"}
    assert "all-reduce" in hlo_two and "all-reduce" not in hlo_one

    # An indivisible global batch: a split CPU host uses the most devices that divide it
    # (7 prompts -> 1 device, 6 -> 2) ...
    mesh_cfg = SMALL.mesh
    assert DataParallel.create(mesh_cfg, batch_size=7).n_devices == 1
    assert DataParallel.create(mesh_cfg, batch_size=6).n_devices == 2
    assert DataParallel.create(dataclasses.replace(mesh_cfg, cpu_devices=1),
                               batch_size=8).n_devices == 1
    # ... while on devices that are not slices of one host it is a config error naming the key.
    try:
        validate_devices(dataclasses.replace(SMALL, batch_size=7), 2)
    except ConfigError as err:
        assert "batch_size=7" in str(err) and "number of devices (2)" in str(err), err
    else:
        raise AssertionError("batch_size=7 on 2 devices was accepted")


def two_device_inference_checks():
    """The one chunker splits each chunk's prompts over a split CPU host's devices."""
    assert jax.device_count() == 2
    model = build_model(SMALL.model, SMALL.task, SMALL.seed)
    committed = jax.device_put(nnx.state(model), jax.devices()[0])  # as a restored run's are
    nnx.update(model, committed)
    run = Run(Path("unused"), SMALL, model, step=0)
    xs, ys, _ = tasks.sample_prompts(jax.random.key(1), SMALL.task, 10, SMALL.seed)
    spread_fn, sharding, size = _spread(Partial(forward, run.function()), (xs, ys), 4)
    assert sharding is not None and sharding.num_devices == 2 and size == 4
    assert _spread(Partial(forward, run.function()), (xs, ys), 5)[2] == 4  # rounded down
    assert all(a.sharding.is_fully_replicated and len(a.sharding.device_set) == 2
               for a in jax.tree.leaves(spread_fn))  # parameters copied to both devices
    part = jax.device_put(xs[:4], sharding)
    assert [s.data.shape for s in part.addressable_shards] == [(2, 6, 3), (2, 6, 3)]
    # Same predictions as one device computing each prompt alone (chunks of 4, 4, 2 + pad;
    # chunk 5 is rounded down to 4).
    one_by_one = np.concatenate([np.asarray(model(xs[i:i + 1], ys[i:i + 1])) for i in range(10)])
    for chunk in (4, 5):
        spread = chunked(Partial(forward, run.function()), (xs, ys), chunk)
        np.testing.assert_allclose(np.asarray(spread), one_by_one, rtol=1e-5, atol=1e-6)
    # A chunk of one prompt, plain functions and traced inputs stay on one device, and the
    # chunker stays differentiable.
    assert _spread(Partial(forward, run.function()), (xs, ys), 1)[1] is None
    assert _spread(lambda xs, ys: xs, (xs, ys), 4)[1] is None
    grad = jax.grad(lambda xs: chunked(Partial(forward, run.function()), (xs, ys), 4).sum())(xs)
    assert grad.shape == xs.shape and np.isfinite(np.asarray(grad)).all()


def two_device_training_and_inference_checks():  # one subprocess: JAX starts once
    two_device_checks()
    two_device_inference_checks()


def test_two_devices_match_one_device_and_split_training_and_inference():
    run_in_subprocess("two_device_training_and_inference_checks")


# --- only process 0 writes; every process checkpoints ---------------------------------------

class RecordingCheckpointer:
    """Stands in for Orbax: records the calls, writes nothing."""

    calls: list = []

    def __init__(self, directory, *args, **kwargs):
        self.calls.clear()

    def latest_step(self):
        return None

    def restore_newest(self, abstract_state):
        return None  # nothing stored yet: a fresh run

    def save(self, step, state):
        self.calls.append(("save", step))

    def close(self):
        self.calls.append(("close", None))


def test_only_process_zero_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "process_index", lambda *args, **kwargs: 1)
    monkeypatch.setattr(loop, "Checkpointer", RecordingCheckpointer)
    run_dir = tmp_path / "run"
    summary = loop.train_run(SMALL, run_dir)
    assert summary["step"] == SMALL.steps
    assert not run_dir.exists(), "a process other than 0 wrote into the run directory"
    # Orbax's save is collective: process 1 must call it at the same steps as process 0.
    assert RecordingCheckpointer.calls == [("save", 5), ("save", 10), ("close", None)]


@pytest.mark.slow
def test_two_processes_train_one_run(tmp_path):
    """Two real JAX processes (one CPU device each) joined by jax.distributed."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    run_dir = tmp_path / "run"
    common = ["model.n_layer=1", "model.d_model=8", "task.d=3", "task.n_points=6",
              "batch_size=8", "steps=10", "log_every=5", "ckpt_every=5", "progress=false",
              "mesh.multi_host=true", f"mesh.coordinator_address=localhost:{port}",
              "mesh.num_processes=2", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}
    procs = [subprocess.Popen([sys.executable, "-m", "icl_regression.train", *common,
                               f"mesh.process_id={i}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
        assert "devices: 2 x cpu (4 prompts each)" in out
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [5, 10]  # once
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()) == \
        ["10", "5"]


def test_multi_host_start_up(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    initialize_distributed(MeshConfig())  # single host: nothing to join
    assert calls == []
    initialize_distributed(MeshConfig(multi_host=True))  # everything from the environment
    initialize_distributed(MeshConfig(multi_host=True, coordinator_address="node1:1234",
                                      num_processes=4, process_id=3))
    assert calls == [{}, {"coordinator_address": "node1:1234", "num_processes": 4,
                          "process_id": 3}]
    with pytest.raises(ConfigError, match=r"mesh.process_id=4 .* 0..mesh.num_processes-1=3"):
        initialize_distributed(MeshConfig(multi_host=True, num_processes=4, process_id=4))

    def no_cluster(**kwargs):  # what JAX raises when neither config nor environment says
        raise ValueError("coordinator_address should be defined.")

    monkeypatch.setattr(jax.distributed, "initialize", no_cluster)
    with pytest.raises(ConfigError, match="mesh.coordinator_address, mesh.num_processes"):
        initialize_distributed(MeshConfig(multi_host=True))


def test_slurm_environment_is_what_jax_reads(monkeypatch):
    """`mesh.multi_host=true` with no other key relies on JAX reading SLURM's variables."""
    from jax._src.clusters import ClusterEnv

    for key, value in {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "gpu[017-018]",
                       "SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("JAX_COORDINATOR_PORT", raising=False)
    address, n_processes, process_id, local_devices = \
        ClusterEnv.auto_detect_unset_distributed_params(None, None, None, None, None, None)
    assert address == f"gpu017:{4242 % 4096 + 61440}"  # port from the job id
    assert (n_processes, process_id, list(local_devices)) == (8, 5, [1])


# --- cluster launcher configs and local sweeps ----------------------------------------------

SUBMITIT_TARGET = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


@pytest.mark.parametrize("name", ["slurm", "slurm_multinode"])
def test_slurm_launcher_configs(name):
    path = CONF_DIR / "hydra" / "launcher" / f"{name}.yaml"
    spec = yaml.safe_load(path.read_text())
    assert path.read_text().startswith("# @package hydra.launcher")
    assert spec["defaults"][0] == "submitit_slurm"  # extends the plugin's schema
    assert spec["_target_"] == SUBMITIT_TARGET
    assert spec["tasks_per_node"] == spec["gpus_per_node"]  # one process per GPU (see mesh.py)
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        return  # optional extra `slurm` not installed: the YAML checks above are all we can do
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from icl_regression.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={name}", "model.n_layer=2"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == SUBMITIT_TARGET
    assert cfg.hydra.launcher.gpus_per_node == spec["gpus_per_node"]


@pytest.mark.slow  # minutes of subprocess training; CI runs the slow tier too
def test_local_multirun_makes_one_directory_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "icl_regression.train", "-m", "debug=default", "seed=0,1",
           f"hydra.sweep.dir={sweep}"]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_seed-0", "1_seed-1"]  # experiment, debug excluded
    contents = {}
    for seed, job in enumerate(jobs):
        assert json.loads((job / "config.json").read_text())["seed"] == seed
        assert [r["step"] for r in read_metrics(job / "metrics.jsonl")] == [1, 2]
        contents[job] = (job / "metrics.jsonl").read_bytes()
    assert contents[jobs[0]] != contents[jobs[1]]  # different seeds, different runs
    # The same sweep again finds both runs finished and leaves their files as they were.
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {job: (job / "metrics.jsonl").read_bytes() for job in jobs} == contents


# --- mixed precision -------------------------------------------------------------------------

def test_bfloat16_compute_tracks_float32():
    parallel = DataParallel.create(devices=jax.devices()[:1])
    losses = {}
    for dtype in ("float32", "bfloat16"):
        cfg = dataclasses.replace(SMALL, model=dataclasses.replace(SMALL.model, dtype=dtype))
        compiled, params, opt_state = compiled_update(cfg, parallel, 8)
        params, opt_state, metrics = compiled(params, opt_state, 0)
        losses[dtype] = np.asarray(metrics["loss"])
        # Parameters and Adam moments stay float32 whatever the compute dtype.
        assert {leaf.dtype for leaf in jax.tree.leaves((params, opt_state))
                if leaf.ndim} == {np.dtype("float32")}
        assert ("bf16[" in compiled.as_text()) == (dtype == "bfloat16")
    assert not np.array_equal(losses["bfloat16"], losses["float32"])
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.03)


@pytest.mark.parametrize(("asked", "batch", "available", "expected"), [
    (0, 64, None, "cores"), (0, 7, None, 1), (3, 64, None, 2), (4, 64, None, 4),
    (4, 64, 2, 2), (1, 64, 2, 1), (3, 9, 3, 3), (3, 10, 3, 2)])
def test_cpu_device_count_divides_the_batch(asked, batch, available, expected):
    from icl_regression.train.mesh import cpu_device_count, host_cores

    if expected == "cores":  # one per core, the largest count up to it that divides 64
        expected = max(n for n in range(1, host_cores() + 1) if 64 % n == 0)
    assert cpu_device_count(MeshConfig(cpu_devices=asked), batch, available) == expected
