"""Concurrent writers: NID assignment, the output log, the per-room lock.

Several :class:`Storage` instances on one database stand for several service processes
(separate connections and pools; on SQLite separate writer connections to one file).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from roomserver.storage import Storage


@pytest.fixture
async def storages(database_url: str) -> AsyncIterator[list[Storage]]:
    opened = [await Storage.open(database_url, migrate=False) for _ in range(4)]
    try:
        yield opened
    finally:
        for s in opened:
            await s.close()


async def test_many_tasks_asking_for_one_new_state_key_get_one_nid(
    storages: list[Storage],
) -> None:
    async def ask(i: int) -> dict[str, int]:
        storage = storages[i % len(storages)]
        return await storage.assign_state_key_nids(["@new:x", f"@user{i}:x", "@other:x"])

    results = await asyncio.gather(*(ask(i) for i in range(40)))
    assert len({r["@new:x"] for r in results}) == 1
    assert len({r["@other:x"] for r in results}) == 1
    own = [r[f"@user{i}:x"] for i, r in enumerate(results)]
    assert len(set(own)) == 40
    assert 0 not in own and results[0]["@new:x"] not in own
    async with storages[0].read() as r:
        rows = await r.conn.fetch(
            "SELECT COUNT(*) FROM event_state_keys WHERE event_state_key = '@new:x'"
        )
        assert rows[0][0] == 1


async def test_many_tasks_asking_for_one_new_event_type_get_one_nid(
    storages: list[Storage],
) -> None:
    results = await asyncio.gather(
        *(storages[i % 4].assign_event_type_nids(["com.example.new"]) for i in range(30))
    )
    assert len({r["com.example.new"] for r in results}) == 1


async def test_assignment_inside_concurrent_transactions(storages: list[Storage]) -> None:
    async def in_transaction(i: int) -> int:
        storage = storages[i % len(storages)]
        async with storage.transaction() as tx:
            nids = await tx.event_state_keys.assign(["@shared:x", f"@mine{i}:x"])
            await asyncio.sleep(0.01)  # hold the transaction open while others ask
            return nids["@shared:x"]

    assert len(set(await asyncio.gather(*(in_transaction(i) for i in range(12))))) == 1


async def test_output_log_positions_are_gap_free_and_in_commit_order(
    storages: list[Storage],
) -> None:
    async def append(i: int) -> list[int]:
        storage = storages[i % len(storages)]
        async with storage.transaction() as tx:
            await asyncio.sleep(0.001 * (i % 3))
            return await tx.output.append([b'{"writer":%d,"n":%d}' % (i, n) for n in range(3)])

    results = await asyncio.gather(*(append(i) for i in range(24)))
    assert sorted(p for positions in results for p in positions) == list(range(1, 73))
    for positions in results:  # each transaction's rows are contiguous
        assert positions == list(range(positions[0], positions[0] + 3))
    async with storages[0].read() as r:
        rows = await r.output.read(0, limit=1000)
    assert [row.position for row in rows] == list(range(1, 73))


async def test_room_lock_serialises_writers_of_one_room(storages: list[Storage]) -> None:
    async with storages[0].transaction() as tx:
        room = await tx.rooms.get_or_create("!busy:x", "10")
    order: list[str] = []

    async def writer(name: str, storage: Storage, delay: float) -> None:
        await asyncio.sleep(delay)
        async with storage.transaction() as tx:
            info = await tx.rooms.lock(room.room_nid)
            order.append(f"{name} saw {list(info.latest_event_nids)}")
            await asyncio.sleep(0.1)  # work while holding the room
            await tx.rooms.update_latest(
                room.room_nid, [*info.latest_event_nids, len(order)], None, None
            )

    await asyncio.gather(writer("a", storages[0], 0), writer("b", storages[1], 0.02))
    # b waited for a to commit, so it saw a's update
    assert order == ["a saw []", "b saw [1]"]


async def test_a_cancelled_transaction_leaves_nothing_and_blocks_no_one(storage: Storage) -> None:
    """A task cancelled inside a transaction, or while its BEGIN or COMMIT is under way (on
    SQLite they run on the writer's own thread and finish there), leaves the connection
    usable: the next transaction starts cleanly, and nothing uncommitted stays."""
    inside = asyncio.Event()

    async def stays_inside() -> None:
        async with storage.transaction() as tx:
            await tx.rooms.get_or_create("!cancelled:x", "10")
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(stays_inside())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def short(room_id: str) -> None:
        async with storage.transaction() as tx:
            await tx.rooms.get_or_create(room_id, "10")

    for n in range(12):  # cancelled at the first, second, ... switch of the event loop
        task = asyncio.create_task(short(f"!maybe{n}:x"))
        for _ in range(n):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.wait_for(short(f"!after{n}:x"), 10)
    async with storage.read() as r:
        assert await r.rooms.get("!cancelled:x") is None
        for n in range(12):
            assert await r.rooms.get(f"!after{n}:x") is not None
