"""Committed state snapshots and blocks shared by every session of a process: :class:`StateCache`.

Why: each input request and query opens its own :class:`~roomserver.state.StateSession`, so
without this every one re-reads the room's current snapshot row and the blocks its lookups
need (on PostgreSQL about one statement, ~250 µs, a request), although those rows hardly ever
change. Sessions look here before they query, and add what they read or wrote once it is
committed.

What may be cached, and why it stays right:

- **Only committed rows.** A session adds its rows after its transaction committed
  (:meth:`StateSession.publish`), or at once when it reads outside any transaction
  (:meth:`Storage.read` sees committed rows only). A rolled-back transaction adds nothing:
  on SQLite its NIDs are handed out again, committed NIDs never are (``AUTOINCREMENT``; on
  PostgreSQL identity columns never reuse any), so a cached NID names the same row forever
  or, once collected, nothing.
- **Blocks** are immutable and content-addressed: a cached block is always right.
- **Snapshots** always hold the same state (a row is keyed by its state hash), but not always
  in the same form: a delta row becomes a base when a base of the same state is written
  (promotion), and a flush that finds its state already stored takes the stored row's NID
  while keeping its own form. A cached snapshot may thus name a base (a block list) that is
  no longer the row's. The state it describes is still right.
- **Garbage collection** (:mod:`.gc`) deletes unreferenced snapshots, bases that no live
  snapshot builds on, and blocks that no live base lists. A cached snapshot that was
  collected is harmless: sessions look snapshots up by the NIDs that rows they have just read
  name (an event's state before it, or the locked room's current state), and a row naming a
  snapshot keeps it live. (A caller holding an older room row gets the right old state
  where the database would raise :class:`MissingStateError`.) A derived state is matched by
  hash only against snapshots its own session looked up, so a new event never gets the NID
  of a collected row either. The one hazard is a cached
  base that was collected after its snapshot changed form (above):

  - *Reading* through it is right for blocks still cached; a block that is neither cached
    nor stored raises :class:`MissingStateError`, and the session clears the cache so the
    next attempt reads fresh rows.
  - *Writing* must never name a collected base or block, so a session in a transaction
    re-reads a snapshot's row (one statement, as it would have without the cache) before it
    derives a new state from a snapshot whose base came from the cache. New states therefore
    build only on bases read or written in their own transaction, as before.

  ``collect_garbage(storage, cache=...)`` also drops what it deleted from this process's cache.

The cache holds plain immutable values (frozen records, tuples, ints), never a session's
:class:`Snapshot`, :class:`Base` or :class:`PendingBlock` objects: a session builds its own
from them, and may change those (``flush`` sets their NIDs and swaps block lists in place)
without any other session seeing it.

The cache is bounded by *entries*: each item costs one plus the NIDs it holds (a block's
state entries, a snapshot's delta entries, a base's block NIDs); the least recently used go
first. A state entry takes roughly 100 bytes here, so the default 200,000 is about 20 MB.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from roomserver.types import (
    EventNID,
    RoomNID,
    StateBlockNID,
    StateKeyTuple,
    StateSnapshotNID,
)

Columns = tuple[Sequence[int], Sequence[int], Sequence[int]]
"""A block's entries as three parallel columns (type NIDs, state key NIDs, event NIDs)."""

_SNAPSHOT, _BASE, _BLOCK = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CachedSnapshot:
    """A snapshot as sessions share it: everything but its base's block list."""

    room_nid: RoomNID
    state_hash: int
    entry_count: int
    base_nid: StateSnapshotNID
    """The base it builds on (its own NID if it is a base): the block list is cached apart,
    once for all the snapshots on that base."""
    delta: tuple[tuple[StateKeyTuple, EventNID], ...]


class StateCache:
    """Committed snapshots and blocks by NID, least recently used out first (see the module
    docstring for what may go in)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self.entries = 0
        """What the cached items cost in all (see the module docstring)."""
        self.hits = 0
        self.misses = 0
        self._order: OrderedDict[tuple[int, int], int] = OrderedDict()
        """Every item's (kind, NID) -> its cost, least recently used first."""
        self._snapshots: dict[StateSnapshotNID, CachedSnapshot] = {}
        self._bases: dict[StateSnapshotNID, tuple[StateBlockNID, ...]] = {}
        self._blocks: dict[StateBlockNID, Columns] = {}

    def __len__(self) -> int:
        return len(self._order)

    def snapshot(
        self, nid: StateSnapshotNID
    ) -> tuple[CachedSnapshot, tuple[StateBlockNID, ...]] | None:
        """A snapshot and its base's block list, if both are cached."""
        snap = self._snapshots.get(nid)
        blocks = self._bases.get(snap.base_nid) if snap is not None else None
        if snap is None or blocks is None:
            self.misses += 1
            return None
        self.hits += 1
        self._order.move_to_end((_SNAPSHOT, nid))
        self._order.move_to_end((_BASE, snap.base_nid))
        return snap, blocks

    def block(self, nid: StateBlockNID) -> Columns | None:
        columns = self._blocks.get(nid)
        if columns is None:
            self.misses += 1
            return None
        self.hits += 1
        self._order.move_to_end((_BLOCK, nid))
        return columns

    def add_snapshot(
        self, nid: StateSnapshotNID, snap: CachedSnapshot, blocks: Sequence[StateBlockNID]
    ) -> None:
        """Cache a committed snapshot and its base's block list (replacing what was cached:
        the newest form of a row wins)."""
        if self._fits(_BASE, snap.base_nid, 1 + len(blocks)):
            self._bases[snap.base_nid] = tuple(blocks)
            if self._fits(_SNAPSHOT, nid, 1 + len(snap.delta)):
                self._snapshots[nid] = snap
        else:
            self._drop((_SNAPSHOT, nid))
        self._evict()

    def add_block(self, nid: StateBlockNID, columns: Columns) -> None:
        """Cache a committed block (stored as tuples: sessions share it, nobody may change it)."""
        if (_BLOCK, nid) in self._order:
            self._order.move_to_end((_BLOCK, nid))
        elif self._fits(_BLOCK, nid, 1 + len(columns[0])):
            self._blocks[nid] = (tuple(columns[0]), tuple(columns[1]), tuple(columns[2]))
            self._evict()

    def discard(
        self,
        snapshot_nids: Iterable[StateSnapshotNID] = (),
        block_nids: Iterable[StateBlockNID] = (),
    ) -> None:
        """Forget rows (the garbage collector deleted them)."""
        for nid in snapshot_nids:
            self._drop((_SNAPSHOT, nid))
            self._drop((_BASE, nid))
        for nid in block_nids:
            self._drop((_BLOCK, nid))

    def clear(self) -> None:
        self._order.clear()
        self._snapshots.clear()
        self._bases.clear()
        self._blocks.clear()
        self.entries = 0

    def _fits(self, kind: int, nid: int, cost: int) -> bool:
        """Account for an item about to be (re)placed as the most recent; False (and nothing
        kept) if it alone would be over the bound."""
        self._drop((kind, nid))
        if cost > self.max_entries:
            return False
        self._order[(kind, nid)] = cost
        self.entries += cost
        return True

    def _evict(self) -> None:
        while self.entries > self.max_entries:
            key, cost = self._order.popitem(last=False)
            self.entries -= cost
            self._forget(key)

    def _drop(self, key: tuple[int, int]) -> None:
        cost = self._order.pop(key, None)
        if cost is not None:
            self.entries -= cost
            self._forget(key)

    def _forget(self, key: tuple[int, int]) -> None:
        kind, nid = key
        if kind == _SNAPSHOT:
            del self._snapshots[nid]
        elif kind == _BASE:
            del self._bases[nid]
        else:
            del self._blocks[nid]
