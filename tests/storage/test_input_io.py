"""The input pipeline's two storage steps (``tx.input.prepare`` / ``tx.input.write``), on
both backends: what they read and write, and that prepare reads after taking the locks."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from test_storage_tables import event, new_room

from roomserver.storage import Storage
from roomserver.storage.tables import InputWrite, RoomUpdate


async def test_prepare_reads_rooms_events_late_arrivals_and_fresh_nids(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        await tx.events.insert([event("$one", room)])
        await tx.previous_events.add(
            room, [((await tx.events.nids(["$one"]))["$one"], "$late", None)]
        )
    async with storage.transaction() as tx:
        got = await tx.input.prepare(
            ["!a:x", "!unknown:x"], ["$one", "$missing"], ["$late", "$new", "$newer"]
        )
    assert list(got.rooms) == ["!a:x"] and got.rooms["!a:x"].room_nid == room
    assert list(got.known) == ["$one"] and got.known["$one"].room_nid == room
    assert got.late == {"$late"}
    assert len(set(got.nids)) == 3 and 0 not in got.nids


async def test_write_stores_events_edges_room_and_output(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        await tx.events.insert([event("$one", room)])
        one = (await tx.events.nids(["$one"]))["$one"]
        await tx.previous_events.add(room, [(one, "$two", None)])  # $one cites $two, missing
    async with storage.transaction() as tx:
        prepared = await tx.input.prepare(["!a:x"], ["$one"], ["$two", "$three"])
        two, three = prepared.nids
        write = InputWrite(
            events=[event("$two", room, event_nid=two), event("$three", room, event_nid=three)],
            edges=[(room, three, "$two", two), (room, three, "$gone", None)],
            cited_before=True,
            rooms=[RoomUpdate(room, [three], three, None)],
            output=[b'{"n":1}', b'{"n":2}'],
        )
        positions = await tx.input.write(write)
    assert positions == [1, 2]
    async with storage.read() as r:
        assert (await r.rooms.get("!a:x")).latest_event_nids == (three,)  # type: ignore[union-attr]
        assert await r.previous_events.children([one, two]) == {two: [one, three]}
        assert await r.previous_events.backward_extremities(room) == {"$gone": [three]}
        assert [row.payload for row in await r.output.read(0)] == [b'{"n":1}', b'{"n":2}']
        assert set(await r.events.json([two, three])) == {two, three}


async def test_write_refuses_an_event_that_is_already_stored(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        await tx.events.insert([event("$one", room)])
    with pytest.raises((ValueError, asyncpg.UniqueViolationError)):
        async with storage.transaction() as tx:
            (nid,) = (await tx.input.prepare(["!a:x"], [], ["$one"])).nids
            await tx.input.write(InputWrite(events=[event("$one", room, event_nid=nid)]))


async def test_prepare_waits_for_the_room_lock_then_sees_what_was_committed(
    database_url: str,
) -> None:
    """The lookups run after the lock is granted: the second writer of a room sees the
    event the first one stored while it waited (two Storage objects: two processes)."""
    first, second = (await Storage.open(database_url), await Storage.open(database_url))
    try:
        async with first.transaction() as tx:
            room = await new_room(tx, "!a:x")
        locked = asyncio.Event()

        async def first_writer() -> None:
            async with first.transaction() as tx:
                (nid,) = (await tx.input.prepare(["!a:x"], ["$one"], ["$one"])).nids
                locked.set()
                await asyncio.sleep(0.3)  # the second writer is waiting meanwhile
                await tx.input.write(InputWrite(events=[event("$one", room, event_nid=nid)]))

        async def second_writer() -> dict[str, object]:
            await locked.wait()
            async with second.transaction() as tx:
                return dict((await tx.input.prepare(["!a:x"], ["$one"], ["$two"])).known)

        _, known = await asyncio.gather(first_writer(), second_writer())
        assert list(known) == ["$one"]
    finally:
        await first.close()
        await second.close()
