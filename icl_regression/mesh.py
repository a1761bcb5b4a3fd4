"""Data parallelism over every visible device: a 1-D `Mesh` with a `data` axis, the batch
sharded along it, parameters and optimizer state replicated. The same code runs on 1 CPU,
N fake CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=N`), one GPU or many
hosts (`mesh.multi_host=true` calls `jax.distributed.initialize`)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from icl_regression.config import MeshConfig


def initialize_distributed(cfg: MeshConfig) -> None:
    """Multi-host start-up, only when the config asks for it. Empty/negative fields are left
    to JAX's auto-detection (SLURM, TPU pods, ...)."""
    if not cfg.multi_host or jax.distributed.is_initialized():
        return
    kwargs = {}
    if cfg.coordinator_address:
        kwargs["coordinator_address"] = cfg.coordinator_address
    if cfg.num_processes > 0:
        kwargs["num_processes"] = cfg.num_processes
    if cfg.process_id >= 0:
        kwargs["process_id"] = cfg.process_id
    jax.distributed.initialize(**kwargs)


@dataclass(frozen=True)
class DataParallel:
    mesh: Mesh

    @classmethod
    def create(cls, cfg: MeshConfig | None = None) -> DataParallel:
        if cfg is not None:
            initialize_distributed(cfg)
        # Auto axes: GSPMD propagates the batch sharding from one constraint per step.
        return cls(jax.make_mesh((jax.device_count(),), ("data",),
                                 axis_types=(jax.sharding.AxisType.Auto,)))

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
