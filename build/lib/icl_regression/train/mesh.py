"""Data parallelism over every visible device: a 1-D `Mesh` with a `data` axis, the batch
sharded along it, parameters and optimizer state replicated. The same code runs on 1 CPU,
N fake CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=N`), one GPU or many
hosts (`mesh.multi_host=true` calls `jax.distributed.initialize`).

Multi-host: every process runs the same program on the global mesh; the batch is sampled
inside the jitted step from `(seed, step)`, so there is no per-host input pipeline to keep in
step. Process 0 alone writes logs and figures; every process takes part in checkpointing
(Orbax's save is collective and writes replicated arrays from process 0 only).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from icl_regression.config import ConfigError, MeshConfig


def distributed_kwargs(cfg: MeshConfig) -> dict:
    """Arguments for `jax.distributed.initialize`: the `mesh.*` keys that are set. The rest is
    left to JAX's cluster detection: under SLURM it reads SLURM_STEP_NODELIST (coordinator =
    first host, port from SLURM_JOB_ID), SLURM_NTASKS, SLURM_PROCID and SLURM_LOCALID (one
    process per GPU: task i of a node takes GPU i); on TPU pods, Open MPI and Kubernetes it
    reads theirs; JAX_COORDINATOR_ADDRESS overrides the coordinator anywhere."""
    kwargs = {}
    if cfg.coordinator_address:
        kwargs["coordinator_address"] = cfg.coordinator_address
    if cfg.num_processes > 0:
        kwargs["num_processes"] = cfg.num_processes
    if cfg.process_id >= 0:
        kwargs["process_id"] = cfg.process_id
    if cfg.num_processes > 0 and cfg.process_id >= cfg.num_processes:
        raise ConfigError(f"mesh.process_id={cfg.process_id} is not allowed; must be in "
                          f"0..mesh.num_processes-1={cfg.num_processes - 1}")
    return kwargs


def initialize_distributed(cfg: MeshConfig) -> None:
    """Multi-host start-up, only when the config asks for it."""
    if not cfg.multi_host or jax.distributed.is_initialized():
        return
    try:
        jax.distributed.initialize(**distributed_kwargs(cfg))
    except ValueError as err:  # neither the config nor the environment names the group
        raise ConfigError(
            f"mesh.multi_host=true but {str(err).rstrip('.')}: set mesh.coordinator_address, "
            "mesh.num_processes and mesh.process_id, or start every process with srun "
            "(SLURM) or on a TPU pod, where they are read from the environment") from err


def shutdown_distributed() -> None:
    """Leave the multi-host group cleanly (an implicit shutdown at interpreter exit can abort
    the process that exits last)."""
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()


def host_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_device_count(cfg: MeshConfig, batch_size: int, available: int | None = None) -> int:
    """Data-parallel CPU devices for `mesh.cpu_devices`: the asked number (0: one per core),
    at most the `available` devices where the host is already split, lowered to the largest
    count that divides the batch."""
    n = cfg.cpu_devices or host_cores()
    n = min(n, available) if available else n
    return max(count for count in range(1, n + 1) if batch_size % count == 0)


def split_host_cpu(cfg: MeshConfig, batch_size: int) -> None:
    """Before JAX starts its backends: make the CPU host `cpu_device_count` devices. XLA's
    CPU backend runs one program on a shared thread pool and most ops at this project's
    sizes are too small to split over threads; n devices run n batch shards side by side.
    A no-op once the backends are up, under multi-host, or where XLA_FLAGS already sets
    the count (both win); accelerators are untouched (this is the CPU backend's count)."""
    from jax._src import xla_bridge  # the only way to ask whether the backends are up

    forced = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if cfg.multi_host or forced or xla_bridge.backends_are_initialized():
        return
    jax.config.update("jax_num_cpu_devices", cpu_device_count(cfg, batch_size))


@dataclass(frozen=True)
class DataParallel:
    mesh: Mesh

    @classmethod
    def create(cls, cfg: MeshConfig | None = None,
               devices: Sequence[jax.Device] | None = None,
               batch_size: int | None = None) -> DataParallel:
        """A mesh over `devices` (default: every device of every process; on a single CPU
        host with `batch_size` given, the `cpu_device_count` first ones)."""
        if cfg is not None:
            initialize_distributed(cfg)
        devices = list(jax.devices() if devices is None else devices)
        if cfg is not None and batch_size and _split_cpu_host(cfg, devices):
            devices = devices[:cpu_device_count(cfg, batch_size, len(devices))]
        # Auto axes: GSPMD propagates the batch sharding from one constraint per step.
        return cls(jax.make_mesh((len(devices),), ("data",),
                                 axis_types=(jax.sharding.AxisType.Auto,), devices=devices))

    @property
    def n_devices(self) -> int:
        return self.mesh.size

    @property
    def batch_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec("data"))

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def shard_batch(self, array: jax.Array) -> jax.Array:
        """Inside jit: split the leading (batch) axis over the `data` axis."""
        return jax.lax.with_sharding_constraint(array, self.batch_sharding)

    def replicate(self, tree):
        return jax.device_put(tree, self.replicated)


def _split_cpu_host(cfg: MeshConfig, devices: list) -> bool:
    return not cfg.multi_host and all(device.platform == "cpu" for device in devices)
