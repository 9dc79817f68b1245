"""Room state at events, read and written through one transaction: :class:`StateSession`.

A session is the unit of work of one input batch. It loads snapshots and blocks once (any
number in one query), answers "which event holds these keys in this state" from memory,
derives the states after state events in memory, and writes everything it derived in a few
statements when the batch asks (:meth:`StateSession.flush`). Nothing is written for states
that are not flushed.

Use one session per transaction: its caches hold rows read (and NIDs made) inside it. Sessions
of a process share committed rows through a :class:`~roomserver.state.cache.StateCache` (what
is safe to share, and why, is explained there): a session reads its own maps first, then the
shared cache, then the database, and adds what it read or wrote to the cache when told its
transaction committed (:meth:`StateSession.publish`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, ParamSpec, TypeVar

from roomserver.storage.tables import NewSnapshot, SnapshotRow, Tables
from roomserver.types import (
    EventNID,
    RoomNID,
    StateBlockNID,
    StateKeyTuple,
    StateMap,
    StateSnapshotNID,
)

from .cache import CachedSnapshot, Columns, StateCache
from .packing import (
    DEFAULT_PACKING,
    Packing,
    add_digest,
    bucket_of,
    entry_digest,
    hash_bytes,
    sub_digest,
)

P = ParamSpec("P")
R = TypeVar("R")

_NO_ENTRIES: tuple[list[int], list[int], list[int]] = ([], [], [])


def _keyed(types: Iterable[int], keys: Iterable[int], events: Iterable[EventNID]) -> StateMap:
    """Columns -> a state map. The keys are made by ``tuple.__new__`` in C: calling the
    NamedTuple's own constructor 10,000 times is a third of a whole-state load."""
    made = map(tuple.__new__, repeat(StateKeyTuple), zip(types, keys, strict=True))
    return dict(zip(made, events, strict=True))


class PendingBlock:
    """A block made in this session, not yet written."""

    __slots__ = ("entries", "nid")

    def __init__(self, entries: dict[StateKeyTuple, EventNID]) -> None:
        self.entries = entries
        self.nid: StateBlockNID | None = None

    def columns(self) -> tuple[list[int], list[int], list[int]]:
        items = sorted(self.entries.items())
        return [k[0] for k, _ in items], [k[1] for k, _ in items], [e for _, e in items]


BlockRef = StateBlockNID | PendingBlock
"""A bucket's block: a stored block NID (0 for an empty bucket) or a pending block."""


class Base:
    """The bucketed blocks of a base snapshot, shared by every snapshot built on it."""

    __slots__ = ("blocks", "checked", "nid", "owner")

    def __init__(
        self,
        nid: StateSnapshotNID | None,
        blocks: list[BlockRef],
        owner: Snapshot | None,
        *,
        checked: bool = True,
    ) -> None:
        self.nid = nid
        self.blocks = blocks
        self.owner = owner
        """The (pending) base snapshot to write before snapshots that build on it."""
        self.checked = checked
        """Read from the database (or made) in this session's transaction, so new states
        may build on it; False for a block list from the shared cache."""


class Snapshot:
    """A room state: a base plus a delta (event NID 0 in the delta: key absent)."""

    __slots__ = ("base", "delta", "entry_count", "is_base", "nid", "room_nid", "state_hash")

    def __init__(
        self,
        room_nid: RoomNID,
        state_hash: int,
        entry_count: int,
        base: Base,
        delta: dict[StateKeyTuple, EventNID],
        *,
        is_base: bool,
        nid: StateSnapshotNID | None = None,
    ) -> None:
        self.room_nid = room_nid
        self.state_hash = state_hash
        self.entry_count = entry_count
        self.base = base
        self.delta = delta
        self.is_base = is_base
        self.nid = nid

    def __repr__(self) -> str:
        kind = "base" if self.is_base else f"base {self.base.nid} + {len(self.delta)}"
        return f"<Snapshot {self.nid} room {self.room_nid}: {self.entry_count} entries, {kind}>"


class MissingStateError(LookupError):
    """A snapshot NID that is not stored (or was collected as garbage)."""


class StaleStateError(MissingStateError):
    """A shared-cache entry named state rows that were collected since (a rare race with
    ``roomserver gc``). The cache has been cleared: the same work, run again, reads fresh
    rows (:func:`retry_stale`)."""


def retry_stale(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run ``method`` once more when a stale cache entry made it fail."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except StaleStateError:
            return await method(*args, **kwargs)

    return run


class NewBaseRefused(Exception):
    """A state needs a new base (and blocks) in a session told to make none: its caller
    writes only delta snapshots (:meth:`StateSession.name_for_caller`)."""


class StateSession:
    """State reads and writes of one transaction (see the module docstring)."""

    def __init__(
        self,
        tables: Tables,
        packing: Packing = DEFAULT_PACKING,
        *,
        cache: StateCache | None = None,
        new_bases: bool = True,
    ) -> None:
        self.tables = tables
        self.packing = packing
        self.cache = cache
        """Committed rows shared by the process's sessions, or None."""
        self.new_bases = new_bases
        """False: a state that needs a new base raises :class:`NewBaseRefused` at once, so
        that a caller who cannot write one stops before deciding the rest."""
        self._snapshots: dict[StateSnapshotNID, Snapshot] = {}
        self._bases: dict[StateSnapshotNID, Base] = {}
        self._columns: dict[StateBlockNID, Columns] = {}
        """Stored blocks as read (cheap to keep; a whole-state load needs nothing more)."""
        self._blocks: dict[StateBlockNID, StateMap] = {}
        """Stored blocks as maps, made on first lookup."""
        self._by_hash: dict[tuple[RoomNID, int], Snapshot] = {}
        self._empty: dict[RoomNID, Snapshot] = {}
        self._unshared_snapshots: set[StateSnapshotNID] = set()
        self._unshared_blocks: set[StateBlockNID] = set()
        """Rows read from the database or written, not yet in the cache."""
        self._named: set[StateSnapshotNID] = set()
        """States named for a caller's write, not known to be written yet."""

    # -- sharing --

    def publish(self) -> None:
        """Add the snapshots and blocks this session read from the database or wrote to the
        shared cache, and those it named for a caller's write (:meth:`name_for_caller`).
        Call it once the transaction (or that write) has COMMITTED, never after a rollback
        (SQLite hands a rolled-back transaction's NIDs out again). A session outside any
        transaction (:meth:`Storage.read`) shares what it reads at once."""
        self._unshared_snapshots |= self._named
        self._named.clear()
        self._share()

    def _share(self) -> None:
        cache = self.cache
        if cache is None:
            return
        for nid in self._unshared_snapshots:
            snap = self._snapshots[nid]
            base = snap.base
            blocks = [ref for ref in base.blocks if isinstance(ref, int)]
            if base.nid is None or len(blocks) != len(base.blocks):
                continue  # not stored (cannot happen for a snapshot with a NID)
            shared = CachedSnapshot(
                snap.room_nid,
                snap.state_hash,
                snap.entry_count,
                base.nid,
                tuple(snap.delta.items()),
            )
            cache.add_snapshot(nid, shared, blocks)
        for block_nid in self._unshared_blocks:
            cache.add_block(block_nid, self._columns[block_nid])
        self._unshared_snapshots.clear()
        self._unshared_blocks.clear()

    def _read_committed(self) -> None:
        """Rows just read from the database: share them now if they can only be committed."""
        if not self.tables.in_transaction:
            self._share()

    # -- reading --

    async def snapshot(self, snapshot_nid: StateSnapshotNID) -> Snapshot:
        return (await self.snapshots([snapshot_nid]))[snapshot_nid]

    async def snapshots(
        self, snapshot_nids: Iterable[StateSnapshotNID]
    ) -> dict[StateSnapshotNID, Snapshot]:
        """Stored snapshots by NID, loaded in one query (those not already in the session
        nor in the shared cache)."""
        wanted = list(dict.fromkeys(snapshot_nids))
        missing = [nid for nid in wanted if nid not in self._snapshots]
        if missing and self.cache is not None:
            missing = [nid for nid in missing if not self._adopt_cached(self.cache, nid)]
        if missing:
            rows = await self.tables.state.snapshots(missing)
            lost = [nid for nid in missing if nid not in rows]
            if lost:
                raise MissingStateError(f"state snapshots not stored: {lost}")
            for row in rows.values():
                self._adopt(row)
            self._read_committed()
        return {nid: self._snapshots[nid] for nid in wanted}

    def _adopt(self, row: SnapshotRow) -> Snapshot:
        """A snapshot row read from the database (in this transaction)."""
        is_base = row.base_snapshot_nid == 0
        if not row.block_nids:  # every base lists at least one bucket: this one is gone
            raise MissingStateError(
                f"state snapshot {row.state_snapshot_nid}: base {row.base_snapshot_nid} not stored"
            )
        base_nid = row.state_snapshot_nid if is_base else row.base_snapshot_nid
        base = self._bases.get(base_nid)
        if base is None or (not base.checked and base.blocks != list(row.block_nids)):
            base = self._bases[base_nid] = Base(base_nid, list(row.block_nids), None)
        base.checked = True
        snap = self._register(
            row.state_snapshot_nid,
            row.room_nid,
            int.from_bytes(row.state_hash, "big"),
            row.entry_count,
            base,
            _keyed(*row.delta),
        )
        self._unshared_snapshots.add(row.state_snapshot_nid)
        return snap

    def _adopt_cached(self, cache: StateCache, nid: StateSnapshotNID) -> bool:
        """Take snapshot ``nid`` from the shared cache, if it is there."""
        found = cache.snapshot(nid)
        if found is None:
            return False
        shared, blocks = found
        base = self._bases.get(shared.base_nid)
        if base is None:  # not checked: read in another transaction
            base = Base(shared.base_nid, list(blocks), None, checked=False)
            self._bases[shared.base_nid] = base
        delta = dict(shared.delta)
        self._register(nid, shared.room_nid, shared.state_hash, shared.entry_count, base, delta)
        return True

    def _register(
        self,
        nid: StateSnapshotNID,
        room_nid: RoomNID,
        state_hash: int,
        entry_count: int,
        base: Base,
        delta: dict[StateKeyTuple, EventNID],
    ) -> Snapshot:
        snap = Snapshot(
            room_nid, state_hash, entry_count, base, delta, is_base=base.nid == nid, nid=nid
        )
        self._snapshots[nid] = snap
        self._by_hash.setdefault((room_nid, state_hash), snap)
        return snap

    def empty(self, room_nid: RoomNID) -> Snapshot:
        """The empty state of a room (the state before its create event)."""
        snap = self._empty.get(room_nid)
        if snap is None:
            snap = self._by_hash.get((room_nid, 0))
        if snap is None:
            base = Base(None, [0], None)
            snap = Snapshot(room_nid, 0, 0, base, {}, is_base=True)
            base.owner = snap
            self._by_hash[(room_nid, 0)] = snap
        self._empty[room_nid] = snap
        return snap

    async def _contents(self, refs: Iterable[BlockRef]) -> None:
        """Make sure the stored blocks among ``refs`` are read: from the shared cache, the
        rest in one query."""
        missing = [
            ref
            for ref in dict.fromkeys(refs)
            if isinstance(ref, int) and ref and ref not in self._columns
        ]
        cache = self.cache
        if missing and cache is not None:
            still: list[StateBlockNID] = []
            for nid in missing:
                columns = cache.block(nid)
                if columns is None:
                    still.append(nid)
                else:
                    self._columns[nid] = columns
            missing = still
        if missing:
            rows = await self.tables.state.blocks(missing)
            lost = [nid for nid in missing if nid not in rows]
            if lost:
                if cache is not None:  # a cached block list may name collected blocks
                    cache.clear()
                    raise StaleStateError(f"state blocks not stored: {lost}")
                raise MissingStateError(f"state blocks not stored: {lost}")
            self._columns.update(rows)
            self._unshared_blocks.update(rows)
            self._read_committed()

    def _block(self, ref: BlockRef) -> Mapping[StateKeyTuple, EventNID]:
        if isinstance(ref, PendingBlock):
            return ref.entries
        if not ref:
            return {}
        block = self._blocks.get(ref)
        if block is None:
            block = self._blocks[ref] = _keyed(*self._columns[ref])
        return block

    async def prefetch(self, snapshot: Snapshot, keys: Iterable[StateKeyTuple]) -> None:
        """Load, in one query, the blocks that lookups of ``keys`` in ``snapshot`` (and in
        states derived from it before the next rebase) will read."""
        blocks = snapshot.base.blocks
        n = len(blocks)
        await self._contents(blocks[bucket_of(k[0], k[1], n)] for k in keys)

    async def lookup(self, snapshot: Snapshot, keys: Iterable[StateKeyTuple]) -> StateMap:
        """The entries of ``keys`` in the state (absent keys left out), reading only the
        buckets that hold them."""
        return (await self.lookup_many([(snapshot, keys)]))[0]

    async def lookup_many(
        self, requests: Sequence[tuple[Snapshot, Iterable[StateKeyTuple]]]
    ) -> list[StateMap]:
        """:meth:`lookup` for several states at once: one query for all their blocks."""
        plans: list[tuple[Snapshot, list[StateKeyTuple]]] = [
            (snap, [k if k.__class__ is StateKeyTuple else StateKeyTuple(*k) for k in keys])
            for snap, keys in requests
        ]  # (making a NamedTuple costs more than the lookup: only plain tuples are made one)
        refs: list[BlockRef] = []
        for snap, keys in plans:
            blocks = snap.base.blocks
            n = len(blocks)
            refs.extend(blocks[bucket_of(k[0], k[1], n)] for k in keys if k not in snap.delta)
        await self._contents(refs)
        results: list[StateMap] = []
        for snap, keys in plans:
            blocks = snap.base.blocks
            n = len(blocks)
            found: StateMap = {}
            for key in keys:
                event_nid = snap.delta.get(key)
                if event_nid is None:
                    event_nid = self._block(blocks[bucket_of(key[0], key[1], n)]).get(key)
                if event_nid:
                    found[key] = event_nid
            results.append(found)
        return results

    async def full(self, snapshot: Snapshot) -> StateMap:
        """The whole state."""
        return (await self.full_many([snapshot]))[0]

    async def full_many(self, snapshots: Sequence[Snapshot]) -> list[StateMap]:
        """Whole states, their blocks loaded in one query."""
        await self._contents(ref for snap in snapshots for ref in snap.base.blocks)
        results: list[StateMap] = []
        for snap in snapshots:
            types: list[int] = []
            keys: list[int] = []
            events: list[EventNID] = []
            pending: list[Mapping[StateKeyTuple, EventNID]] = []
            for ref in snap.base.blocks:
                if isinstance(ref, PendingBlock):
                    pending.append(ref.entries)
                elif ref:
                    t, k, e = self._columns[ref]
                    types += t
                    keys += k
                    events += e
            state = _keyed(types, keys, events)  # buckets are disjoint: one pass builds it
            for entries in pending:
                state.update(entries)
            for key, event_nid in snap.delta.items():
                if event_nid:
                    state[key] = event_nid
                else:
                    state.pop(key, None)
            results.append(state)
        return results

    async def diff(self, old: Snapshot, new: Snapshot) -> tuple[StateMap, StateMap]:
        """``(removed, added)``: entries of ``old`` not in ``new`` and of ``new`` not in
        ``old`` (a changed key is in both). Reads only the buckets that can differ."""
        if old is new or (old.nid is not None and old.nid == new.nid):
            return {}, {}
        keys: set[StateKeyTuple] = set(old.delta) | set(new.delta)
        old_blocks, new_blocks = old.base.blocks, new.base.blocks
        if old.base is not new.base and not (
            old.base.nid is not None and old.base.nid == new.base.nid
        ):
            if len(old_blocks) != len(new_blocks):
                before, after = await self.full_many([old, new])
                return _difference(before, after)
            changed = [(a, b) for a, b in zip(old_blocks, new_blocks, strict=True) if a != b]
            await self._contents(ref for pair in changed for ref in pair)
            for a, b in changed:
                keys.update(self._block(a))
                keys.update(self._block(b))
        before, after = await self.lookup_many([(old, keys), (new, keys)])
        return _difference(before, after)

    # -- deriving --

    async def derive(
        self, parent: Snapshot, changes: Mapping[StateKeyTuple, EventNID | None]
    ) -> Snapshot:
        """The state ``parent`` becomes with ``changes`` (event NID, or None/0 to remove the
        key). Kept in memory until flushed; a state the session already knows (by its
        hash) is returned as is, e.g. ``parent`` itself when nothing changes."""
        if not changes:
            return parent
        wanted = {StateKeyTuple(*k): v or 0 for k, v in changes.items()}
        old = (await self.lookup_many([(parent, wanted)]))[0]
        total, count = parent.state_hash, parent.entry_count
        real: dict[StateKeyTuple, EventNID] = {}
        for key, event_nid in wanted.items():
            previous = old.get(key, 0)
            if event_nid == previous:
                continue
            real[key] = event_nid
            if previous:
                total = sub_digest(total, entry_digest(key[0], key[1], previous))
                count -= 1
            if event_nid:
                total = add_digest(total, entry_digest(key[0], key[1], event_nid))
                count += 1
        if not real:
            return parent
        known = self._by_hash.get((parent.room_nid, total))
        if known is not None:
            return known
        parent = await self._checked(parent)
        delta = {**parent.delta, **real}
        if len(delta) <= self.packing.max_delta:
            snap = Snapshot(parent.room_nid, total, count, parent.base, delta, is_base=False)
        else:
            snap = await self._rebase(parent.room_nid, total, count, parent.base, delta)
        self._by_hash[(snap.room_nid, total)] = snap
        return snap

    async def check(self, snapshot_nids: Iterable[StateSnapshotNID]) -> None:
        """Read these snapshots' rows again, in one query, so that new states may build on
        them without :meth:`_checked` reading each on its own (a request with state events
        in many rooms derives from each room's current state)."""
        if not self.tables.in_transaction:
            return
        wanted = []
        for nid in dict.fromkeys(snapshot_nids):
            known = self._snapshots.get(nid)
            if known is None or not known.base.checked:
                wanted.append(nid)
        if not wanted:
            return
        rows = await self.tables.state.snapshots(wanted)
        for row in rows.values():
            self._adopt(row)

    async def _checked(self, snap: Snapshot) -> Snapshot:
        """``snap`` in a form whose base this transaction read or made, so that new states
        may build on it: a base from the shared cache may have been collected since (see
        :mod:`.cache`), so its row is read again. Sessions outside a transaction never write
        and skip this."""
        if snap.base.checked or not self.tables.in_transaction:
            return snap
        if snap.nid is None:
            raise RuntimeError(f"{snap!r} is pending on an unchecked base")
        current = self._snapshots.get(snap.nid)
        if current is not None and current.base.checked:
            return current
        rows = await self.tables.state.snapshots([snap.nid])
        if snap.nid not in rows:
            raise MissingStateError(f"state snapshot not stored: {snap.nid}")
        return self._adopt(rows[snap.nid])

    async def _rebase(
        self,
        room_nid: RoomNID,
        total: int,
        count: int,
        base: Base,
        delta: dict[StateKeyTuple, EventNID],
    ) -> Snapshot:
        """A new base: the old one with ``delta`` folded into the buckets it touches."""
        if not self.new_bases:
            raise NewBaseRefused(f"room {room_nid}: a state needs a new base")
        n = len(base.blocks)
        if self.packing.needs_resize(n, count):
            await self._contents(base.blocks)
            state: dict[StateKeyTuple, EventNID] = {}
            for ref in base.blocks:
                if ref:
                    state.update(self._block(ref))
            for key, event_nid in delta.items():
                if event_nid:
                    state[key] = event_nid
                else:
                    state.pop(key, None)
            blocks = _bucketize(state, self.packing.buckets_for(count))
        else:
            touched: dict[int, list[StateKeyTuple]] = {}
            for key in delta:
                touched.setdefault(bucket_of(key[0], key[1], n), []).append(key)
            await self._contents(base.blocks[b] for b in touched)
            blocks = list(base.blocks)
            for b, keys in touched.items():
                entries = dict(self._block(base.blocks[b]))
                for key in keys:
                    if delta[key]:
                        entries[key] = delta[key]
                    else:
                        entries.pop(key, None)
                blocks[b] = PendingBlock(entries) if entries else 0
        new_base = Base(None, blocks, None)
        snap = Snapshot(room_nid, total, count, new_base, {}, is_base=True)
        new_base.owner = snap
        return snap

    async def store(
        self,
        room_nid: RoomNID,
        state: Mapping[StateKeyTuple, EventNID],
        *,
        near: Snapshot | None = None,
        near_state: Mapping[StateKeyTuple, EventNID] | None = None,
    ) -> Snapshot:
        """A whole state as a snapshot, derived from ``near`` (a similar state, e.g. one
        that a resolution started from; its whole state as ``near_state`` if at hand)."""
        if near is None:
            near, near_state = self.empty(room_nid), {}
        elif near.room_nid != room_nid:
            raise ValueError("a room's state can only be derived from the same room's state")
        if near_state is None:
            near_state = await self.full(near)
        changes: dict[StateKeyTuple, EventNID | None] = {
            k: v for k, v in state.items() if near_state.get(k) != v
        }
        changes.update((k, None) for k in near_state if k not in state)
        return await self.derive(near, changes)

    # -- writing --

    async def flush(self, snapshots: Iterable[Snapshot]) -> list[StateSnapshotNID]:
        """Write ``snapshots`` (and the bases and blocks they need) and return their NIDs.

        Five statements at most however many snapshots: blocks, base rows, other rows (each
        an insert, plus a select for rows that already existed). Content addressing makes
        it idempotent: a state stored before gets the existing NID.
        """
        wanted = list(snapshots)
        bases: dict[int, Snapshot] = {}
        others: dict[int, Snapshot] = {}
        for snap in wanted:
            if snap.nid is not None:
                continue
            if snap.is_base:
                bases[id(snap)] = snap
            else:
                others[id(snap)] = snap
                owner = snap.base.owner
                if snap.base.nid is None:
                    if owner is None:
                        raise RuntimeError("a pending snapshot's base has no owner")
                    bases[id(owner)] = owner
        if (bases or others) and self.cache is not None and not self.tables.in_transaction:
            raise RuntimeError("a session sharing a cache writes only inside a transaction")
        pending_blocks: dict[int, PendingBlock] = {}
        for snap in bases.values():
            for ref in snap.base.blocks:
                if isinstance(ref, PendingBlock) and ref.nid is None:
                    pending_blocks[id(ref)] = ref
        blocks = list(pending_blocks.values())
        columns = [b.columns() for b in blocks]
        block_nids = await self.tables.state.insert_blocks(columns)
        for block, nid, block_columns in zip(blocks, block_nids, columns, strict=True):
            block.nid = nid
            self._columns.setdefault(nid, block_columns)
            self._blocks.setdefault(nid, block.entries)
            self._unshared_blocks.add(nid)
        for snap in bases.values():
            snap.base.blocks = [
                ref.nid if isinstance(ref, PendingBlock) and ref.nid is not None else ref
                for ref in snap.base.blocks
            ]
        await self._write(list(bases.values()), _base_row)
        for snap in bases.values():
            snap.base.nid = snap.nid
            if snap.nid is not None:
                self._bases.setdefault(snap.nid, snap.base)
        await self._write(list(others.values()), _delta_row)
        nids: list[StateSnapshotNID] = []
        for snap in wanted:
            if snap.nid is None:
                raise RuntimeError(f"{snap!r} was not written")
            nids.append(snap.nid)
        return nids

    def name_for_caller(
        self, snapshots: Iterable[Snapshot], nids: Sequence[StateSnapshotNID]
    ) -> list[tuple[StateSnapshotNID, NewSnapshot]] | None:
        """Give the unwritten states among ``snapshots`` NIDs from ``nids`` (reserved with
        ``Storage.reserve_snapshot_nids``) and return their rows, for a caller that writes
        them itself: the input pipeline's optimistic write, which checks that their bases
        are still stored. None, naming nothing, when a state needs a new base (and blocks)
        or there are more states than NIDs: that takes :meth:`flush` in a transaction."""
        new = {id(s): s for s in snapshots if s.nid is None}
        if len(new) > len(nids) or any(s.is_base or s.base.nid is None for s in new.values()):
            return None
        rows: list[tuple[StateSnapshotNID, NewSnapshot]] = []
        for snap, nid in zip(new.values(), nids, strict=False):  # NIDs to spare are gaps
            snap.nid = nid
            self._snapshots[nid] = snap
            self._named.add(nid)
            rows.append((nid, _delta_row(snap)))
        return rows

    async def _write(self, snaps: list[Snapshot], row: Callable[[Snapshot], NewSnapshot]) -> None:
        if not snaps:
            return
        nids = await self.tables.state.insert_snapshots([row(s) for s in snaps])
        for snap, nid in zip(snaps, nids, strict=True):
            snap.nid = nid
            self._snapshots.setdefault(nid, snap)
            self._unshared_snapshots.add(nid)


def _base_row(snap: Snapshot) -> NewSnapshot:
    blocks = [ref for ref in snap.base.blocks if isinstance(ref, int)]
    if len(blocks) != len(snap.base.blocks):
        raise RuntimeError("blocks not written")
    return NewSnapshot(
        snap.room_nid, hash_bytes(snap.state_hash), snap.entry_count, 0, blocks, _NO_ENTRIES
    )


def _delta_row(snap: Snapshot) -> NewSnapshot:
    if snap.base.nid is None:
        raise RuntimeError("base not written")
    items = sorted(snap.delta.items())
    return NewSnapshot(
        snap.room_nid,
        hash_bytes(snap.state_hash),
        snap.entry_count,
        snap.base.nid,
        [],
        ([k[0] for k, _ in items], [k[1] for k, _ in items], [e for _, e in items]),
    )


def _bucketize(state: Mapping[StateKeyTuple, EventNID], buckets: int) -> list[BlockRef]:
    parts: list[dict[StateKeyTuple, EventNID]] = [{} for _ in range(buckets)]
    for key, event_nid in state.items():
        parts[bucket_of(key[0], key[1], buckets)][key] = event_nid
    return [PendingBlock(part) if part else 0 for part in parts]


def _difference(before: StateMap, after: StateMap) -> tuple[StateMap, StateMap]:
    removed = {k: v for k, v in before.items() if after.get(k) != v}
    added = {k: v for k, v in after.items() if before.get(k) != v}
    return removed, added
