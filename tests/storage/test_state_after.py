"""The state after events, with real signed events, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest
from roomgraph import RoomBuilder, store_batch, store_events

from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import RoomVersion
from roomserver.matrix.stateres import resolve_state
from roomserver.state import MissingStateError, StateSession, load_state, state_after_events
from roomserver.storage import Storage

StringState = dict[tuple[str, str], str]


async def string_state(storage: Storage, snapshot_nid: int) -> StringState:
    """A stored state in strings, for comparing with what the events say."""
    async with storage.read() as r:
        state = await load_state(r, snapshot_nid)
        types = await r.event_types.strings([k[0] for k in state])
        keys = await r.event_state_keys.strings([k[1] for k in state])
        ids = await r.events.event_ids(list(state.values()))
    return {(types[k[0]], keys[k[1]]): ids[e] for k, e in state.items()}


def never(*args: object, **kwargs: object) -> dict[tuple[str, str], str]:
    raise AssertionError("no resolution expected")


async def test_linear_room_state_before_every_event(storage: Storage) -> None:
    room = RoomBuilder()
    room.create_room()
    expected: list[StringState] = []
    linear: StringState = {}
    for event in room.events:
        expected.append(dict(linear))
        linear[event.state_tuple] = event.event_id
    for i in range(5):
        room.join(f"@user{i}:example.org")
        expected.append(dict(linear))
        linear[room.events[-1].state_tuple] = room.events[-1].event_id
        room.add("m.room.message", f"@user{i}:example.org", {"body": "hi", "msgtype": "m.text"})
        expected.append(dict(linear))
    nids = await store_events(storage, room.events, resolver=never)
    async with storage.read() as r:
        infos = await r.events.by_nid(list(nids.values()))
    for event, want in zip(room.events, expected, strict=True):
        snapshot = infos[nids[event.event_id]].state_snapshot_nid
        assert snapshot is not None
        assert await string_state(storage, snapshot) == want
    # a message does not change the state: the event after it shares its snapshot
    last_join, message = room.events[-2], room.events[-1]
    assert (
        infos[nids[message.event_id]].state_snapshot_nid
        != infos[nids[last_join.event_id]].state_snapshot_nid
    )


async def test_prev_events_that_agree_need_no_resolution(storage: Storage) -> None:
    room = RoomBuilder()
    room.create_room()
    fork_point = room.events[-1]
    a = room.add("m.room.message", "@alice:example.org", {"body": "a"}, prev=[fork_point])
    b = room.add("m.room.message", "@alice:example.org", {"body": "b"}, prev=[fork_point])
    nids = await store_events(storage, room.events, resolver=never)
    async with storage.transaction() as tx:
        infos = await tx.events.lookup([a.event_id, b.event_id, fork_point.event_id])
        session = StateSession(tx)
        after = await state_after_events(
            session, room.version, [infos[a.event_id], infos[b.event_id]], resolver=never
        )
        (after_nid,) = await session.flush([after])
    assert infos[a.event_id].state_snapshot_nid == infos[b.event_id].state_snapshot_nid == after_nid
    assert len(nids) == 6


async def test_forked_state_is_resolved_with_the_real_resolver(storage: Storage) -> None:
    room = RoomBuilder()
    bob, carol = "@bob:example.org", "@carol:example.org"
    room.create_room(moderators=[bob, carol])
    room.join(bob)
    room.join(carol)
    fork_point = room.events[-1]
    branch_state = dict(room.state)
    topic_a = room.add(
        "m.room.topic",
        bob,
        {"topic": "from bob"},
        state_key="",
        prev=[fork_point],
        state=branch_state,
    )
    topic_b = room.add(
        "m.room.topic",
        carol,
        {"topic": "from carol"},
        state_key="",
        prev=[fork_point],
        state=branch_state,
    )
    merge = room.add("m.room.message", bob, {"body": "merged"}, prev=[topic_a, topic_b])
    calls: list[int] = []

    def recording(
        version: RoomVersion,
        state_sets: Sequence[Mapping[tuple[str, str], str]],
        events: Mapping[str, Event],
        *,
        is_rejected: Callable[[str], bool] | None = None,
    ) -> dict[tuple[str, str], str]:
        calls.append(len(state_sets))
        return resolve_state(version, state_sets, events, is_rejected=is_rejected)

    nids = await store_events(storage, room.events, resolver=recording)
    assert calls == [2]
    async with storage.read() as r:
        merged = (await r.events.by_nid([nids[merge.event_id]]))[nids[merge.event_id]]
    assert merged.state_snapshot_nid is not None
    got = await string_state(storage, merged.state_snapshot_nid)
    base = {k: e.event_id for k, e in branch_state.items()}
    sets = [
        {**base, ("m.room.topic", ""): topic_a.event_id},
        {**base, ("m.room.topic", ""): topic_b.event_id},
    ]
    everything = {e.event_id: e for e in room.events}
    assert got == resolve_state(room.version, sets, everything)
    assert got[("m.room.topic", "")] in (topic_a.event_id, topic_b.event_id)


async def test_an_injected_resolver_decides(storage: Storage) -> None:
    room = RoomBuilder()
    room.create_room()
    fork_point = room.events[-1]
    branch_state = dict(room.state)
    name_a = room.add(
        "m.room.name",
        "@alice:example.org",
        {"name": "A"},
        state_key="",
        prev=[fork_point],
        state=branch_state,
    )
    name_b = room.add(
        "m.room.name",
        "@alice:example.org",
        {"name": "B"},
        state_key="",
        prev=[fork_point],
        state=branch_state,
    )
    room.add("m.room.message", "@alice:example.org", {"body": "x"}, prev=[name_a, name_b])

    def drop_the_name(
        version: RoomVersion,
        state_sets: Sequence[Mapping[tuple[str, str], str]],
        events: Mapping[str, Event],
        *,
        is_rejected: Callable[[str], bool] | None = None,
    ) -> dict[tuple[str, str], str]:
        assert {s[("m.room.name", "")] for s in state_sets} == {name_a.event_id, name_b.event_id}
        assert name_a.event_id in events and room.events[0].event_id in events  # with auth chains
        return {k: v for k, v in state_sets[0].items() if k != ("m.room.name", "")}

    nids = await store_events(storage, room.events, resolver=drop_the_name)
    async with storage.read() as r:
        last = (await r.events.by_nid([nids[room.events[-1].event_id]])).popitem()[1]
    assert last.state_snapshot_nid is not None
    got = await string_state(storage, last.state_snapshot_nid)
    assert ("m.room.name", "") not in got and ("m.room.create", "") in got


async def test_outliers_have_no_state(storage: Storage) -> None:
    room = RoomBuilder()
    room.create_room()
    await store_events(storage, room.events)
    async with storage.transaction() as tx:
        infos = await tx.events.lookup([room.events[-1].event_id])
        info = infos[room.events[-1].event_id]
        await tx.conn.execute(
            "UPDATE events SET state_snapshot_nid = 0, is_outlier = TRUE WHERE event_nid = $1",
            info.event_nid,
        )
        outlier = (await tx.events.by_nid([info.event_nid]))[info.event_nid]
        with pytest.raises(MissingStateError):
            await state_after_events(StateSession(tx), room.version, [outlier])
        with pytest.raises(ValueError):
            await state_after_events(StateSession(tx), room.version, [])


async def test_a_fork_inside_one_batch(storage: Storage) -> None:
    """The pipeline's way: the whole fork and its merge in one transaction, nothing stored
    until the end; resolution reads the batch's own events from memory."""
    room = RoomBuilder()
    bob = "@bob:example.org"
    room.create_room(moderators=[bob])
    room.join(bob)
    await store_events(storage, room.events)  # an earlier batch
    fork_point = room.events[-1]
    branch_state = dict(room.state)
    first = len(room.events)
    a = room.add(
        "m.room.topic", bob, {"topic": "a"}, state_key="", prev=[fork_point], state=branch_state
    )
    b = room.add(
        "m.room.name", bob, {"name": "b"}, state_key="", prev=[fork_point], state=branch_state
    )
    c = room.add(
        "m.room.topic",
        "@alice:example.org",
        {"topic": "c"},
        state_key="",
        prev=[b],
        state=branch_state,
    )
    merge = room.add("m.room.message", bob, {"body": "m"}, prev=[a, c])
    after = room.add("m.room.message", bob, {"body": "n"}, prev=[merge])
    nids = await store_batch(storage, room.events[first:], resolver=resolve_state)
    async with storage.read() as r:
        infos = await r.events.by_nid(list(nids.values()))
    states = {
        e: await string_state(storage, infos[n].state_snapshot_nid or 0) for e, n in nids.items()
    }
    base = {k: e.event_id for k, e in branch_state.items()}
    assert states[a.event_id] == states[b.event_id] == base
    assert states[c.event_id] == {**base, ("m.room.name", ""): b.event_id}
    sets = [
        {**base, ("m.room.topic", ""): a.event_id},
        {**base, ("m.room.name", ""): b.event_id, ("m.room.topic", ""): c.event_id},
    ]
    expected = resolve_state(room.version, sets, {e.event_id: e for e in room.events})
    assert states[merge.event_id] == expected == states[after.event_id]
    assert expected[("m.room.name", "")] == b.event_id
