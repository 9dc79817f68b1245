"""The input pipeline's two storage steps (``tx.input.prepare`` / ``tx.input.write``), on
both backends: what they read and write, that prepare reads after taking the locks, and
that the write refuses (writing nothing) when what the request read has changed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from test_storage_tables import event, new_room

from roomserver.storage import Storage
from roomserver.storage.tables import (
    InputConflict,
    InputWrite,
    MembershipInfo,
    NewSnapshot,
    RoomInfo,
    RoomUpdate,
)
from roomserver.types import Membership


async def test_prepare_reads_rooms_events_and_late_arrivals(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        await tx.events.insert([event("$one", room)])
        await tx.previous_events.add(
            room, [((await tx.events.nids(["$one"]))["$one"], "$late", None)]
        )
    for lock_rooms in (True, False):
        async with storage.transaction() as tx:
            got = await tx.input.prepare(
                ["!a:x", "!unknown:x"],
                ["$one", "$missing"],
                ["$late", "$new", "$newer"],
                lock_rooms=lock_rooms,
            )
        assert list(got.rooms) == ["!a:x"] and got.rooms["!a:x"].room_nid == room
        assert list(got.known) == ["$one"] and got.known["$one"].room_nid == room
        assert got.late == {"$late"}


async def test_reserved_event_nids_are_fresh_and_distinct(storage: Storage) -> None:
    first = await storage.reserve_event_nids(3)
    second = await storage.reserve_event_nids(300)  # more than a block
    assert len(set(first + second)) == 303 and 0 not in first
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        await tx.events.insert([event("$one", room)])  # an assigned NID does not clash
        assigned = (await tx.events.nids(["$one"]))["$one"]
    assert assigned not in first + second
    with pytest.raises(RuntimeError):
        async with storage.transaction():
            await storage.reserve_event_nids(1)


async def test_reserved_snapshot_nids_are_fresh_on_a_new_database(storage: Storage) -> None:
    reserved = await storage.reserve_snapshot_nids(3)  # before any snapshot is stored
    assert len(set(reserved)) == 3 and 0 not in reserved
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        (block,) = await tx.state.insert_blocks([([1], [1], [5])])
        (stored,) = await tx.state.insert_snapshots(
            [NewSnapshot(room, b"base", 1, 0, [block], ([], [], []))]
        )
    assert stored not in reserved


async def _read(storage: Storage, room_id: str) -> RoomInfo:
    async with storage.read() as r:
        room = await r.rooms.get(room_id)
    assert room is not None
    return room


async def test_write_stores_events_edges_room_transactions_and_output(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        await tx.events.insert([event("$one", room)])
        one = (await tx.events.nids(["$one"]))["$one"]
        await tx.previous_events.add(room, [(one, "$two", None)])  # $one cites $two, missing
    two, three = await storage.reserve_event_nids(2)
    async with storage.transaction() as tx:
        prepared = await tx.input.prepare(["!a:x"], ["$one"], ["$two", "$three"])
        assert prepared.late == {"$two"}
        write = InputWrite(
            rooms=[RoomUpdate(prepared.rooms["!a:x"], [three], three, None)],
            late=1,
            events=[event("$two", room, event_nid=two), event("$three", room, event_nid=three)],
            edges=[(room, three, "$two", two), (room, three, "$gone", None)],
            transactions=[(7, "@u:x", "txn1", "$three")],
            output=[b'{"n":1}', b'{"n":2}'],
        )
        positions = await tx.input.write(write)
    assert positions == [1, 2]
    assert (await _read(storage, "!a:x")).latest_event_nids == (three,)
    async with storage.read() as r:
        assert await r.previous_events.children([one, two]) == {two: [one, three]}
        assert await r.previous_events.backward_extremities(room) == {"$gone": [three]}
        assert [row.payload for row in await r.output.read(0)] == [b'{"n":1}', b'{"n":2}']
        assert set(await r.events.json([two, three])) == {two, three}
        assert await r.transactions.event_ids([(7, "@u:x", "txn1"), (7, "@u:x", "no")]) == {
            (7, "@u:x", "txn1"): "$three"
        }


async def _conflicts(storage: Storage, write: InputWrite) -> None:
    """``write``, outside any transaction (the optimistic way), is refused whole."""
    ids = [e.event_id for e in write.events]
    async with storage.read() as r:
        before = (await r.output.read(0), await r.rooms.get("!a:x"), await r.events.nids(ids))
    with pytest.raises(InputConflict):
        if storage.backend.value == "postgres":
            async with storage.read() as r:
                await r.input.write(write)
        else:
            async with storage.transaction() as tx:
                await tx.input.write(write)
    async with storage.read() as r:
        assert (await r.output.read(0), await r.rooms.get("!a:x"), await r.events.nids(ids)) == (
            before
        )


async def test_write_refuses_when_what_it_was_decided_on_changed(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        await tx.events.insert([event("$one", room)])
        one = (await tx.events.nids(["$one"]))["$one"]
        await tx.transactions.insert(7, "@u:x", "seen", "$one")
    read = await _read(storage, "!a:x")
    (nid,) = await storage.reserve_event_nids(1)
    new = event("$new", room, event_nid=nid)
    ok = InputWrite(rooms=[RoomUpdate(read, [nid], nid, None)], events=[new], output=[b"{}"])

    moved = RoomUpdate(read, [one], one, None)  # another writer moved the latest events
    async with storage.transaction() as tx:
        await tx.input.write(InputWrite(rooms=[moved]))
    await _conflicts(storage, ok)
    read = await _read(storage, "!a:x")
    ok.rooms = [RoomUpdate(read, [nid], nid, None)]

    stored = InputWrite(rooms=ok.rooms, events=[event("$one", room, event_nid=nid)])
    await _conflicts(storage, stored)  # the event was stored meanwhile
    txn = InputWrite(rooms=ok.rooms, events=[new], transactions=[(7, "@u:x", "seen", "$new")])
    await _conflicts(storage, txn)  # so was the client transaction
    async with storage.transaction() as tx:  # a stored event began citing the new one
        await tx.previous_events.add(room, [(one, "$new", None)])
    await _conflicts(storage, ok)

    ok.late = 1
    async with storage.read() as r:
        positions = await r.input.write(ok) if storage.backend.value == "postgres" else None
    if positions is None:
        async with storage.transaction() as tx:
            positions = await tx.input.write(ok)
    assert len(positions) == 1
    assert (await _read(storage, "!a:x")).latest_event_nids == (nid,)


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
        (nid,) = await first.reserve_event_nids(1)

        async def first_writer() -> None:
            async with first.transaction() as tx:
                await tx.input.prepare(["!a:x"], ["$one"], ["$one"])
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


async def test_write_stores_new_states_under_reserved_nids_and_memberships(
    storage: Storage,
) -> None:
    """The optimistic way's states: deltas over a stored base, named by reserved NIDs that
    the same write's events and room row use; refused whole when a base is gone (collected
    since the service cached it) or the state is stored already."""
    async with storage.transaction() as tx:
        room = await new_room(tx, "!a:x")
        (block,) = await tx.state.insert_blocks([([1], [1], [5])])
        (base,) = await tx.state.insert_snapshots(
            [NewSnapshot(room, b"base", 1, 0, [block], ([], [], []))]
        )
    read = await _read(storage, "!a:x")
    (nid,) = await storage.reserve_event_nids(1)
    first, second = await storage.reserve_snapshot_nids(2)
    assert base not in (first, second)
    after = NewSnapshot(room, b"after", 2, base, [], ([1], [2], [nid]))
    gone = NewSnapshot(room, b"other", 2, 999_999, [], ([1], [2], [nid]))
    joined = MembershipInfo(room, 2, 2, Membership.JOIN, nid)
    write = InputWrite(
        rooms=[RoomUpdate(read, [nid], nid, first)],
        events=[event("$member", room, event_nid=nid, state_snapshot_nid=base)],
        snapshots=[(first, gone)],
        memberships=[replace(joined, membership=Membership.INVITE), joined],  # the last wins
    )
    await _conflicts(storage, write)
    write.snapshots = [(first, after)]
    async with storage.transaction() as tx:
        await tx.input.write(write)
    async with storage.read() as r:
        row = (await r.state.snapshots([first]))[first]
        assert (row.base_snapshot_nid, row.block_nids, row.delta) == (base, (block,), after.delta)
        assert await r.memberships.members(room) == [joined]
        assert (await r.rooms.get("!a:x")).state_snapshot_nid == first  # type: ignore[union-attr]
    read = await _read(storage, "!a:x")
    (again,) = await storage.reserve_event_nids(1)
    same_state = InputWrite(
        rooms=[RoomUpdate(read, [again], again, second)],
        events=[event("$again", room, event_nid=again, state_snapshot_nid=first)],
        snapshots=[(second, after)],
    )
    await _conflicts(storage, same_state)
    async with storage.read() as r:
        assert await r.state.snapshots([second]) == {}
