"""One asyncio lock per room, so a process handles a room's events one batch at a time.

The database row lock on the room (taken inside the write transaction) keeps replicas apart;
this lock keeps the tasks of one process from queueing on the database for the same row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager


class RoomLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, room_id: str) -> AsyncIterator[None]:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        self._users[room_id] = self._users.get(room_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            # Forget idle rooms so the table does not grow with every room ever seen.
            self._users[room_id] -= 1
            if self._users[room_id] == 0:
                del self._users[room_id]
                del self._locks[room_id]

    @asynccontextmanager
    async def hold_many(self, room_ids: Iterable[str]) -> AsyncIterator[None]:
        """Every room's lock, taken in sorted order so that overlapping requests never
        wait for each other in a cycle."""
        async with AsyncExitStack() as stack:
            for room_id in sorted(set(room_ids)):
                await stack.enter_async_context(self.hold(room_id))
            yield

    def __len__(self) -> int:
        return len(self._locks)
