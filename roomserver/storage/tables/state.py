"""``state_snapshots`` and ``state_blocks``: the rows behind room state at events.

This module stores and fetches rows; how state is packed into them (hash buckets, deltas)
is :mod:`roomserver.state`'s business. Both tables are content-addressed: inserting a row
whose hash exists returns the existing NID.

Writers and the garbage collector exclude each other: a transaction that inserts (or, by its
hash, reuses) a snapshot or block first takes a shared lock, and the collector sweeps under the
exclusive one, so it never deletes a row that a transaction still in flight is about to
reference. (On SQLite every writer holds the database's write lock anyway.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from roomserver.types import RoomNID, StateBlockNID, StateSnapshotNID

from ..codec import EntryColumns, content_hash, pack_entries, pack_nids, unpack_entries, unpack_nids
from ..database import LockKey
from ._base import Table, chunks, unique


@dataclass(frozen=True, slots=True)
class NewSnapshot:
    room_nid: RoomNID
    state_hash: bytes
    entry_count: int
    base_snapshot_nid: StateSnapshotNID
    """0 for a base snapshot (its state is in ``block_nids``)."""
    block_nids: Sequence[StateBlockNID]
    """A base's blocks, one per hash bucket (0: empty bucket); empty for other snapshots."""
    delta: EntryColumns
    """A non-base snapshot's entries over its base (event NID 0: key removed)."""


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    state_snapshot_nid: StateSnapshotNID
    room_nid: RoomNID
    state_hash: bytes
    entry_count: int
    base_snapshot_nid: StateSnapshotNID
    """0 if this snapshot is itself a base."""
    block_nids: tuple[StateBlockNID, ...]
    """The blocks of the base (its own if it is one), one per bucket."""
    delta: EntryColumns


class StateTables(Table):
    __slots__ = ()

    async def _guard(self) -> None:
        lock = self._conn.dialect.xact_lock(LockKey.STATE_GC, shared=True)
        if lock is not None and "state_guard" not in self._conn.flags:
            await self._conn.execute(lock)
            self._conn.flags.add("state_guard")

    async def snapshots(
        self, snapshot_nids: Sequence[StateSnapshotNID]
    ) -> dict[StateSnapshotNID, SnapshotRow]:
        """Snapshot rows, each with its base's block list: one query for any number."""
        d = self._conn.dialect
        rows = await self._conn.fetch(
            "SELECT s.state_snapshot_nid, s.room_nid, s.state_hash, s.entry_count,"
            " s.base_snapshot_nid, COALESCE(b.block_nids, s.block_nids), s.delta"
            " FROM state_snapshots AS s"
            " LEFT JOIN state_snapshots AS b ON b.state_snapshot_nid = s.base_snapshot_nid"
            f" WHERE s.state_snapshot_nid {d.any(1, 'bigint')}",
            unique(snapshot_nids),
        )
        return {
            row[0]: SnapshotRow(
                state_snapshot_nid=row[0],
                room_nid=row[1],
                state_hash=bytes(row[2]),
                entry_count=row[3],
                base_snapshot_nid=row[4],
                block_nids=tuple(unpack_nids(row[5])),
                delta=unpack_entries(row[6]),
            )
            for row in rows
        }

    async def insert_snapshots(self, snapshots: Sequence[NewSnapshot]) -> list[StateSnapshotNID]:
        """NIDs of the snapshots, in order; an existing ``(room, state hash)`` keeps its NID.

        A base given for a state already stored as a delta snapshot turns that row into the
        base (same state, other representation), so that snapshots built on the base find
        its blocks; an existing row is otherwise left as it is.
        """
        if not snapshots:
            return []
        await self._guard()
        d = self._conn.dialect
        rows = {
            (s.room_nid, s.state_hash): (
                s.room_nid,
                s.state_hash,
                s.entry_count,
                s.base_snapshot_nid,
                pack_nids(s.block_nids) if s.block_nids else b"",
                pack_entries(*s.delta) if s.delta[0] else b"",
            )
            for s in snapshots
        }
        types = ["integer", "bytea", "integer", "bigint", "bytea", "bytea"]
        nids: dict[tuple[RoomNID, bytes], StateSnapshotNID] = {}
        for part in chunks(list(rows.values()), d.chunk_rows(6)):
            returned = await self._conn.fetch(
                "INSERT INTO state_snapshots (room_nid, state_hash, entry_count,"
                f" base_snapshot_nid, block_nids, delta) {d.rows(types, len(part))}"
                " ON CONFLICT (room_nid, state_hash) DO UPDATE SET base_snapshot_nid = 0,"
                " block_nids = excluded.block_nids, delta = excluded.delta"
                " WHERE excluded.base_snapshot_nid = 0 AND state_snapshots.base_snapshot_nid <> 0"
                " RETURNING room_nid, state_hash, state_snapshot_nid",
                *d.row_args(part, 6),
            )
            nids.update(((room, bytes(h)), nid) for room, h, nid in returned)
        existing = [key for key in rows if key not in nids]
        for keys in chunks(existing, d.chunk_rows(2)):
            returned = await self._conn.fetch(
                f"WITH k(room_nid, state_hash) AS ({d.rows(['integer', 'bytea'], len(keys))})"
                " SELECT s.room_nid, s.state_hash, s.state_snapshot_nid FROM state_snapshots AS s"
                " JOIN k ON s.room_nid = k.room_nid AND s.state_hash = k.state_hash",
                *d.row_args(keys, 2),
            )
            nids.update(((room, bytes(h)), nid) for room, h, nid in returned)
        return [nids[(s.room_nid, s.state_hash)] for s in snapshots]

    async def insert_reserved(
        self, snapshots: Sequence[tuple[StateSnapshotNID, NewSnapshot]]
    ) -> bool:
        """Store delta snapshots under NIDs reserved for them
        (``Storage.reserve_snapshot_nids``), as the PostgreSQL input function does. False if
        a base is not stored (any more) or a state is stored already under its hash: some
        rows may then be written, and the caller's transaction must roll back."""
        if not snapshots:
            return True
        await self._guard()
        d = self._conn.dialect
        bases = unique([s.base_snapshot_nid for _, s in snapshots])
        stored = await self._conn.fetchval(
            "SELECT count(*) FROM state_snapshots"
            f" WHERE base_snapshot_nid = 0 AND state_snapshot_nid {d.any(1, 'bigint')}",
            bases,
        )
        if stored != len(bases):
            return False
        rows = [
            (nid, s.room_nid, s.state_hash, s.entry_count, s.base_snapshot_nid, b"",
             pack_entries(*s.delta))
            for nid, s in snapshots
        ]  # fmt: skip
        types = ["bigint", "integer", "bytea", "integer", "bigint", "bytea", "bytea"]
        overriding = " OVERRIDING SYSTEM VALUE" if d.is_postgres else ""  # an identity column
        inserted = 0
        for part in chunks(rows, d.chunk_rows(7)):
            returned = await self._conn.fetch(
                "INSERT INTO state_snapshots (state_snapshot_nid, room_nid, state_hash,"
                f" entry_count, base_snapshot_nid, block_nids, delta){overriding}"
                f" {d.rows(types, len(part))}"
                " ON CONFLICT (room_nid, state_hash) DO NOTHING RETURNING state_snapshot_nid",
                *d.row_args(part, 7),
            )
            inserted += len(returned)
        return inserted == len(rows)

    async def blocks(
        self, block_nids: Sequence[StateBlockNID]
    ) -> dict[StateBlockNID, EntryColumns]:
        """Blocks' entries as columns, by NID: one query for any number."""
        d = self._conn.dialect
        rows = await self._conn.fetch(
            "SELECT state_block_nid, entries FROM state_blocks"
            f" WHERE state_block_nid {d.any(1, 'bigint')}",
            unique(block_nids),
        )
        return {nid: unpack_entries(entries) for nid, entries in rows}

    async def insert_blocks(self, blocks: Sequence[EntryColumns]) -> list[StateBlockNID]:
        """NIDs of the blocks (entries sorted by the caller), in order; identical content
        is stored once."""
        if not blocks:
            return []
        await self._guard()
        d = self._conn.dialect
        packed = [pack_entries(*columns) for columns in blocks]
        hashes = [content_hash(data) for data in packed]
        rows = list({h: (h, data) for h, data in zip(hashes, packed, strict=True)}.values())
        nids: dict[bytes, StateBlockNID] = {}
        for part in chunks(rows, d.chunk_rows(2)):
            returned = await self._conn.fetch(
                f"INSERT INTO state_blocks (block_hash, entries) {d.rows(['bytea', 'bytea'], len(part))}"
                " ON CONFLICT (block_hash) DO NOTHING RETURNING block_hash, state_block_nid",
                *d.row_args(part, 2),
            )
            nids.update((bytes(h), nid) for h, nid in returned)
        existing = [(h,) for h, _ in rows if h not in nids]
        for keys in chunks(existing, d.chunk_rows(1)):
            returned = await self._conn.fetch(
                f"WITH k(block_hash) AS ({d.rows(['bytea'], len(keys))})"
                " SELECT b.block_hash, b.state_block_nid FROM state_blocks AS b"
                " JOIN k ON b.block_hash = k.block_hash",
                *d.row_args(keys, 1),
            )
            nids.update((bytes(h), nid) for h, nid in returned)
        return [nids[h] for h in hashes]

    # -- garbage collection support (roomserver.state.gc) --

    async def lock_for_gc(self) -> None:
        """Wait for every transaction writing state to finish, and keep new ones out until
        this transaction ends."""
        lock = self._conn.dialect.xact_lock(LockKey.STATE_GC)
        if lock is not None:
            await self._conn.execute(lock)

    async def referenced_snapshot_nids(self) -> set[StateSnapshotNID]:
        """Snapshots named by an event (state before it) or a room (current state)."""
        rows = await self._conn.fetch(
            "SELECT DISTINCT state_snapshot_nid FROM events WHERE state_snapshot_nid <> 0"
            " UNION SELECT state_snapshot_nid FROM rooms WHERE state_snapshot_nid <> 0"
        )
        return {nid for (nid,) in rows}

    async def snapshot_links(
        self, after: StateSnapshotNID, limit: int
    ) -> list[tuple[StateSnapshotNID, StateSnapshotNID, list[StateBlockNID]]]:
        """``(snapshot, its base or 0, its own blocks)`` for a page of snapshots by NID."""
        rows = await self._conn.fetch(
            "SELECT state_snapshot_nid, base_snapshot_nid, block_nids FROM state_snapshots"
            " WHERE state_snapshot_nid > $1 ORDER BY state_snapshot_nid LIMIT $2",
            after,
            limit,
        )
        return [(nid, base, unpack_nids(blocks)) for nid, base, blocks in rows]

    async def block_nids_page(self, after: StateBlockNID, limit: int) -> list[StateBlockNID]:
        rows = await self._conn.fetch(
            "SELECT state_block_nid FROM state_blocks WHERE state_block_nid > $1"
            " ORDER BY state_block_nid LIMIT $2",
            after,
            limit,
        )
        return [nid for (nid,) in rows]

    async def delete_snapshots(self, snapshot_nids: Sequence[StateSnapshotNID]) -> int:
        return await self._delete("state_snapshots", "state_snapshot_nid", snapshot_nids)

    async def delete_blocks(self, block_nids: Sequence[StateBlockNID]) -> int:
        return await self._delete("state_blocks", "state_block_nid", block_nids)

    async def _delete(self, table: str, column: str, nids: Sequence[int]) -> int:
        """Delete rows by NID, in chunks; how many were there."""
        d = self._conn.dialect
        deleted = 0
        for part in chunks(unique(nids), 10_000):
            rows = await self._conn.fetch(
                f"DELETE FROM {table} WHERE {column} {d.any(1, 'bigint')} RETURNING {column}",
                list(part),
            )
            deleted += len(rows)
        return deleted
