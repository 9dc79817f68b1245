"""The storage entry point: a connected database, its NID caches, and transactions.

Usage::

    storage = await Storage.open("postgresql://…")        # migrates first by default
    types = await storage.assign_event_type_nids(["m.room.member"])  # before the transaction
    async with storage.transaction() as tx:                  # tx: Tables
        room = await tx.rooms.lock(room_nid)
        ...
    async with storage.read() as r:
        info = await r.events.lookup([event_id])
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from roomserver.types import EventNID, StateSnapshotNID

from .database import Backend, Database, open_database, reserve_ids
from .migrate import apply_migrations
from .tables import NIDCache, Tables

NID_BLOCK = 1024
"""NIDs reserved per statement by :meth:`Storage.reserve_event_nids` and
:meth:`Storage.reserve_snapshot_nids`."""


class _Reserved:
    """NIDs of one table's sequence, reserved a block at a time, handed out in order."""

    def __init__(self, table: str, column: str) -> None:
        self.table = table
        self.column = column
        self.nids: deque[int] = deque()
        self.lock = asyncio.Lock()

    async def take(self, db: Database, count: int) -> list[int]:
        async with self.lock:
            if len(self.nids) < count:
                wanted = max(count - len(self.nids), NID_BLOCK)
                # A sequence needs no transaction; SQLite's counter is a row to update.
                postgres = db.dialect.backend is Backend.POSTGRES
                async with db.connection() if postgres else db.transaction() as conn:
                    self.nids.extend(await reserve_ids(conn, self.table, self.column, wanted))
            return [self.nids.popleft() for _ in range(count)]


class Storage:
    """One database and the in-memory caches of its immutable mappings."""

    def __init__(self, db: Database, *, state_key_cache_size: int = 200_000) -> None:
        self.db = db
        self.event_type_cache = NIDCache(max_size=50_000)
        self.state_key_cache = NIDCache(max_size=state_key_cache_size)
        self._current: ContextVar[Tables | None] = ContextVar(
            f"storage_tx_{id(self)}", default=None
        )
        self._event_nids = _Reserved("events", "event_nid")
        self._snapshot_nids = _Reserved("state_snapshots", "state_snapshot_nid")

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, **options: Any) -> Storage:
        """Connect to ``url`` (``postgresql://…`` or ``sqlite:///path``) and, unless told
        not to, apply pending migrations (refusing a schema newer than this code)."""
        db = await open_database(url, **options)
        try:
            if migrate:
                await apply_migrations(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    @property
    def backend(self) -> Backend:
        return self.db.dialect.backend

    async def close(self) -> None:
        await self.db.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tables]:
        """All tables on one connection inside one write transaction.

        The transaction commits when the block exits normally and rolls back on an
        exception. Do not open a second transaction from the task holding one (on SQLite
        it would wait for itself); tasks started inside the block must not use ``tx``.
        """
        if self._current.get() is not None:
            raise RuntimeError("this task already holds a storage transaction")
        async with self.db.transaction() as conn:
            tables = self._tables(conn, in_transaction=True)
            token = self._current.set(tables)
            try:
                yield tables
            finally:
                self._current.reset(token)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tables]:
        """All tables on a connection outside any transaction: each statement reads the
        latest committed data (not the caller's own uncommitted writes)."""
        async with self.db.connection() as conn:
            yield self._tables(conn, in_transaction=False)

    def _tables(self, conn: Any, *, in_transaction: bool) -> Tables:
        return Tables(
            conn,
            in_transaction=in_transaction,
            event_type_cache=self.event_type_cache,
            state_key_cache=self.state_key_cache,
        )

    async def reserve_event_nids(self, count: int) -> list[EventNID]:
        """``count`` fresh event NIDs for events about to be stored (``NewEvent.event_nid``).

        The input pipeline names its events by NID while deciding them, before it writes
        them; reserving NIDs ahead, a block at a time, spares its requests a statement. Call
        it before opening a transaction (a block is reserved, and committed, on its own).
        NIDs reserved and never stored are gaps, as a rolled-back insert leaves.
        """
        if self._current.get() is not None:
            raise RuntimeError("reserve event NIDs before opening the transaction")
        return await self._event_nids.take(self.db, count)

    async def reserve_snapshot_nids(self, count: int) -> list[StateSnapshotNID]:
        """``count`` fresh state snapshot NIDs, as :meth:`reserve_event_nids` (the input
        pipeline's optimistic way writes the states of its state events with them)."""
        if self._current.get() is not None:
            raise RuntimeError("reserve snapshot NIDs before opening the transaction")
        return await self._snapshot_nids.take(self.db, count)

    async def assign_event_type_nids(self, event_types: Sequence[str]) -> dict[str, int]:
        """NIDs for event types, new ones assigned and committed at once (cached).

        Call it before opening the transaction that uses the NIDs: the assignment then
        commits on its own and never holds a room transaction up. Called from inside a
        transaction, it assigns within it (uncommitted, not cached).
        """
        current = self._current.get()
        if current is not None:
            return await current.event_types.assign(event_types)
        cached = {t: n for t in event_types if (n := self.event_type_cache.nid(t)) is not None}
        if len(cached) == len(set(event_types)):
            return cached
        async with self.db.transaction() as conn:
            assigned = await self._tables(conn, in_transaction=True).event_types.assign(event_types)
        self.event_type_cache.add(assigned.items())
        return assigned

    async def assign_state_key_nids(self, state_keys: Sequence[str]) -> dict[str, int]:
        """NIDs for state keys; see :meth:`assign_event_type_nids`."""
        current = self._current.get()
        if current is not None:
            return await current.event_state_keys.assign(state_keys)
        cached = {k: n for k in state_keys if (n := self.state_key_cache.nid(k)) is not None}
        if len(cached) == len(set(state_keys)):
            return cached
        async with self.db.transaction() as conn:
            assigned = await self._tables(conn, in_transaction=True).event_state_keys.assign(
                state_keys
            )
        self.state_key_cache.add(assigned.items())
        return assigned
