"""The probe-kind registry: `@register_probe_kind(name, stream_id=...)` on a function that fits
one kind of probe for every (target, layer, position) at once and returns its held-out
predictions. The stream id keys the kind's random draws (initialisation, batches), so adding or
reordering kinds never changes another kind's numbers. A new kind is one new module in this
package, or in a plugin.

    predict(acts (L, N, T, D), positions (P,), targets (G, N, P, d), split, options: FitOptions,
            key, progress) -> test predictions (G, L, P, N_test, d)
"""

from __future__ import annotations

from collections.abc import Callable

from icl_regression.registry import Registry, import_submodules

# Modules of this package that hold no probe kind.
NOT_KINDS = ("app", "options", "probing", "registry", "study", "summary", "targets")

PROBE_KINDS: Registry[Callable] = Registry("probe kind")


def register_probe_kind(name: str, *, stream_id: int):
    """Decorator on the kind's `predict` function; never reuse or renumber a stream id."""
    return PROBE_KINDS.register(name, stream_id=stream_id)


def probe_kind_names() -> tuple[str, ...]:
    """Every registered probe kind (built-in and plugins), in stream-id order."""
    import_submodules(__package__, skip=NOT_KINDS)
    return tuple(sorted(PROBE_KINDS.names(), key=PROBE_KINDS.stream_id))
