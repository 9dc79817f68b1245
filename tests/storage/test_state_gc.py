"""Garbage collection of unreferenced snapshots and blocks, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random

import pytest
from roomgraph import RoomBuilder, store_events

from roomserver.state import MissingStateError, StateSession, collect_garbage, load_state
from roomserver.storage import Storage
from roomserver.types import StateKeyTuple, StateMap


async def states_of_events(storage: Storage) -> dict[int, StateMap]:
    async with storage.read() as r:
        rows = await r.conn.fetch("SELECT event_nid, state_snapshot_nid FROM events")
        return {event_nid: await load_state(r, snapshot) for event_nid, snapshot in rows}


def big_state(seed: int, n: int = 300) -> StateMap:
    rng = random.Random(seed)
    return {StateKeyTuple(5, rng.randrange(2, 10**6)): 10_000 + i for i in range(n)}


async def test_collects_only_unreferenced_snapshots_and_blocks(storage: Storage) -> None:
    room = RoomBuilder()
    room.create_room()
    for i in range(30):
        room.join(f"@user{i}:example.org")
    await store_events(storage, room.events)
    async with storage.transaction() as tx:
        room_nid = (await tx.rooms.get(room.room_id) or pytest.fail("no room")).room_nid
        session = StateSession(tx)
        orphan_base = await session.store(room_nid, big_state(1))  # a base and its blocks
        orphan_delta = await session.derive(orphan_base, {StateKeyTuple(5, 3): 3})
        kept_by_room = await session.store(room_nid, big_state(2))
        kept_child = await session.derive(kept_by_room, {StateKeyTuple(5, 4): 4})
        await session.flush([orphan_base, orphan_delta, kept_by_room, kept_child])
        # the room's current state names the child; its base must stay too
        await tx.rooms.update_latest(room_nid, [], None, kept_child.nid)
    before = await states_of_events(storage)

    dry = await collect_garbage(storage, dry_run=True)
    assert dry.snapshots == 2 and dry.blocks > 0 and not dry.removed
    async with storage.read() as r:
        assert await load_state(r, orphan_delta.nid or 0) == {
            **big_state(1),
            StateKeyTuple(5, 3): 3,
        }

    report = await collect_garbage(storage)
    assert (report.snapshots, report.blocks) == (dry.snapshots, dry.blocks) and report.removed
    assert await states_of_events(storage) == before
    async with storage.read() as r:
        for gone in (orphan_base, orphan_delta):
            with pytest.raises(MissingStateError):
                await load_state(r, gone.nid or 0)
        assert await load_state(r, kept_child.nid or 0) == {**big_state(2), StateKeyTuple(5, 4): 4}
    again = await collect_garbage(storage)
    assert (again.snapshots, again.blocks) == (0, 0)
    assert again.live_snapshots == report.live_snapshots


async def test_a_writer_reusing_garbage_is_never_collected_under_it(database_url: str) -> None:
    """The writer finds an unreferenced snapshot by its hash and references it; the collector
    started meanwhile waits for the writer's transaction, then sees the reference."""
    writer_storage = await Storage.open(database_url, migrate=False)
    gc_storage = await Storage.open(database_url, migrate=False)
    try:
        async with writer_storage.transaction() as tx:
            room_nid = (await tx.rooms.get_or_create("!r:x", "10")).room_nid
            session = StateSession(tx)
            orphan = await session.store(room_nid, big_state(3))
            await session.flush([orphan])
        reused = asyncio.Event()

        async def writer() -> None:
            async with writer_storage.transaction() as tx:
                session = StateSession(tx)
                again = await session.store(room_nid, big_state(3))
                assert (await session.flush([again])) == [orphan.nid]
                reused.set()
                await asyncio.sleep(0.3)
                await tx.rooms.update_latest(room_nid, [], None, again.nid)

        async def collector() -> int:
            await reused.wait()
            return (await collect_garbage(gc_storage)).snapshots

        _, collected = await asyncio.gather(writer(), collector())
        assert collected == 0
        async with gc_storage.read() as r:
            assert await load_state(r, orphan.nid or 0) == big_state(3)
    finally:
        await writer_storage.close()
        await gc_storage.close()
