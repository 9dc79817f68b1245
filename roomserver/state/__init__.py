"""Room state at events: load it, compute it after events, store it as reusable blocks.

- :class:`StateSession`: the state reads and writes of one transaction (load snapshots,
  look up keys, whole states, differences, derive new states in memory, flush them);
- :func:`state_after_events`: the state before a new event, resolved when its prev events
  disagree (the resolver is injectable);
- :func:`collect_garbage`: remove snapshots and blocks nothing references;
- :class:`StateCache`: committed snapshots and blocks shared by a process's sessions;
- :mod:`.packing`: how states are cut into buckets and deltas (docs/storage.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from roomserver.storage.tables import Tables
from roomserver.types import StateKeyTuple, StateMap, StateSnapshotNID

from .cache import StateCache
from .gc import GarbageReport, collect_garbage
from .packing import DEFAULT_PACKING, Packing
from .resolution import PendingEvents, Resolver, default_resolver, state_after_events
from .session import (
    MissingStateError,
    NewBaseRefused,
    Snapshot,
    StaleStateError,
    StateSession,
    retry_stale,
)

__all__ = [
    "DEFAULT_PACKING",
    "GarbageReport",
    "MissingStateError",
    "NewBaseRefused",
    "Packing",
    "PendingEvents",
    "Resolver",
    "Snapshot",
    "StaleStateError",
    "StateCache",
    "StateSession",
    "collect_garbage",
    "default_resolver",
    "load_state",
    "retry_stale",
    "state_after_events",
]


async def load_state(
    tables: Tables,
    snapshot_nid: StateSnapshotNID,
    keys: Iterable[StateKeyTuple] | None = None,
    *,
    cache: StateCache | None = None,
) -> StateMap:
    """The state at a snapshot: all of it (two queries), or only ``keys`` (reading only the
    blocks that hold them); through ``cache`` if given (shared at once outside a
    transaction only)."""
    session = StateSession(tables, cache=cache)
    snapshot = await session.snapshot(snapshot_nid)
    if keys is None:
        return await session.full(snapshot)
    return await session.lookup(snapshot, keys)
