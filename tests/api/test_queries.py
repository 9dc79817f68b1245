"""The query API through HTTP and the typed client, on both backends.

Rooms are real signed events (:class:`~roomserver.matrix.builder.RoomBuilder`) sent through
``inputRoomEvents``; every answer is compared with what the builder knows the room to be.
History visibility has its own file (test_history_visibility.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI

from roomserver.api import models as m
from roomserver.client import RoomserverClient, RoomserverError
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.hashing import reference_sha256
from roomserver.matrix.room_versions import room_version
from roomserver.storage.tables.state import StateTables

ALICE, BOB, CAROL = "@alice:a.test", "@bob:b.test", "@carol:c.test"
UNKNOWN_ROOM = "!nowhere:a.test"
UNKNOWN_EVENT = "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def public_room(version: str = "10") -> RoomBuilder:
    v = room_version(version)
    room = RoomBuilder(v, ALICE)
    room.join(ALICE)
    users = {} if v.privileged_creators else {ALICE: 100}
    room.send("m.room.power_levels", ALICE, {"users": users}, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.join(BOB)
    return room


async def send(client: RoomserverClient, *events: Event) -> list[str]:
    request = m.InputRoomEventsRequest(
        input_room_events=[m.InputRoomEvent(kind=2, event=e.headered()) for e in events]
    )
    return [r.outcome for r in (await client.input_room_events(request)).results]


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


async def error_of(call: Any) -> RoomserverError:
    with pytest.raises(RoomserverError) as caught:
        await call
    return caught.value


# -- state -----------------------------------------------------------------------------------


async def test_state_after_events_whole_and_by_tuples_in_both_forms(
    client: RoomserverClient,
) -> None:
    room = public_room()
    topic = room.send("m.room.topic", ALICE, {"topic": "t"}, "")
    msg = room.send("m.room.message", BOB, {"body": "hi"})
    assert set(await send(client, *room.events)) == {"accepted"}

    whole = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=room.room_id, prev_event_ids=[msg.event_id])
    )
    assert whole.room_exists and whole.prev_events_exist and whole.room_version == "10"
    assert sorted(ids(whole.state_events)) == sorted(e.event_id for e in room.state.values())
    assert all(e["_room_version"] == "10" for e in whole.state_events)
    assert whole.room_id == room.room_id and whole.prev_event_ids == [msg.event_id]

    tuples: list[Any] = [
        {"EventType": "m.room.member", "StateKey": BOB},
        {"type": "m.room.topic", "state_key": ""},
        {"type": "m.room.name", "state_key": ""},  # not in the state: left out
    ]
    some = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest.model_validate(
            {"room_id": room.room_id, "prev_event_ids": [msg.event_id], "state_to_fetch": tuples}
        )
    )
    assert sorted(ids(some.state_events)) == sorted(
        [room.state[("m.room.member", BOB)].event_id, topic.event_id]
    )
    assert some.state_to_fetch is not None
    assert [t.as_tuple() for t in some.state_to_fetch][1] == ("m.room.topic", "")

    before_topic = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(
            room_id=room.room_id,
            prev_event_ids=[topic.prev_event_ids[0]],
            state_to_fetch=[m.StateKeyTuple(EventType="m.room.topic", StateKey="")],
        )
    )
    assert before_topic.prev_events_exist and before_topic.state_events == []
    after_topic = await client.query_state_after_events(  # a state event's own entry counts
        m.QueryStateAfterEventsRequest(
            room_id=room.room_id,
            prev_event_ids=[topic.event_id],
            state_to_fetch=[m.StateKeyTuple(EventType="m.room.topic", StateKey="")],
        )
    )
    assert ids(after_topic.state_events) == [topic.event_id]
    whole_after_topic = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=room.room_id, prev_event_ids=[topic.event_id])
    )
    assert sorted(ids(whole_after_topic.state_events)) == sorted(ids(whole.state_events))


async def test_state_after_a_fork_is_resolved(client: RoomserverClient) -> None:
    room = public_room()
    base = room.latest
    left = room.event("m.room.topic", ALICE, {"topic": "left"}, "", prev=base)
    right = room.event("m.room.message", BOB, {"body": "meanwhile"}, prev=base)
    await send(client, *room.events, left, right)
    answer = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(
            room_id=room.room_id,
            prev_event_ids=[left.event_id, right.event_id],
            state_to_fetch=[m.StateKeyTuple(EventType="m.room.topic", StateKey="")],
        )
    )
    assert ids(answer.state_events) == [left.event_id]


async def test_state_after_events_unknown_room_event_or_none(client: RoomserverClient) -> None:
    room = public_room()
    await send(client, *room.events)
    unknown_room = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=UNKNOWN_ROOM, prev_event_ids=[UNKNOWN_EVENT])
    )
    assert not unknown_room.room_exists and unknown_room.state_events == []
    unknown_prev = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(
            room_id=room.room_id, prev_event_ids=[room.latest[0].event_id, UNKNOWN_EVENT]
        )
    )
    assert unknown_prev.room_exists and not unknown_prev.prev_events_exist
    assert unknown_prev.room_version == "10" and unknown_prev.state_events == []
    no_prevs = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=room.room_id, prev_event_ids=[])
    )
    assert no_prevs.prev_events_exist and no_prevs.state_events == []  # the empty state


async def test_prev_event_of_another_room_does_not_exist_here(client: RoomserverClient) -> None:
    one, two = public_room(), public_room()
    await send(client, *one.events)
    await send(client, *two.events)
    answer = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=one.room_id, prev_event_ids=[two.latest[0].event_id])
    )
    assert answer.room_exists and not answer.prev_events_exist


async def test_latest_events_and_state(client: RoomserverClient) -> None:
    room = public_room()
    base = room.latest
    a = room.event("m.room.message", ALICE, {"body": "a"}, prev=base)
    b = room.event("m.room.message", BOB, {"body": "b"}, prev=base)
    await send(client, *room.events, a, b)
    whole = await client.query_latest_events_and_state(
        m.QueryLatestEventsAndStateRequest(room_id=room.room_id)
    )
    assert whole.room_exists and whole.room_version == "10"
    assert sorted(r[0] for r in whole.latest_events) == sorted([a.event_id, b.event_id])
    for event_id, hashes in whole.latest_events:
        event = a if event_id == a.event_id else b
        assert hashes == {"sha256": reference_sha256(event.pdu, event.room_version)}
    assert whole.depth == max(a.depth, b.depth) + 1
    assert sorted(ids(whole.state_events)) == sorted(e.event_id for e in room.state.values())

    auth_only = await client.query_latest_events_and_state(
        m.QueryLatestEventsAndStateRequest.model_validate(
            {
                "room_id": room.room_id,
                "state_to_fetch": [
                    {"EventType": "m.room.create", "StateKey": ""},
                    {"type": "m.room.member", "state_key": ALICE},
                ],
            }
        )
    )
    assert sorted(ids(auth_only.state_events)) == sorted(
        [room.create.event_id, room.state[("m.room.member", ALICE)].event_id]
    )
    assert auth_only.room_id == room.room_id and auth_only.state_to_fetch is not None

    missing = await client.query_latest_events_and_state(
        m.QueryLatestEventsAndStateRequest(room_id=UNKNOWN_ROOM)
    )
    assert not missing.room_exists and missing.latest_events == [] and missing.depth == 0


async def test_repeated_state_queries_read_the_state_tables_less(
    app: FastAPI, client: RoomserverClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's input and query share one StateCache: state rows read (or written) once
    are not read again."""
    assert app.state.query.state_cache is app.state.input.state_cache
    reads: list[str] = []

    def counting(name: str) -> Any:
        method = getattr(StateTables, name)

        async def counted(self: StateTables, nids: Any) -> Any:
            reads.append(name)  # one statement each
            return await method(self, nids)

        return counted

    monkeypatch.setattr(StateTables, "snapshots", counting("snapshots"))
    monkeypatch.setattr(StateTables, "blocks", counting("blocks"))

    room = public_room()
    for i in range(30):  # more state changes than a delta holds: the state has blocks
        room.join(f"@user{i}:b.test")
    msg = room.send("m.room.message", BOB, {"body": "hi"})
    await send(client, *room.events)
    app.state.query.state_cache.clear()  # start cold: the input shared what it wrote

    async def queried() -> list[str]:
        before = len(reads)
        after = await client.query_state_after_events(
            m.QueryStateAfterEventsRequest(room_id=room.room_id, prev_event_ids=[msg.event_id])
        )
        latest = await client.query_latest_events_and_state(
            m.QueryLatestEventsAndStateRequest(room_id=room.room_id)
        )
        expected = sorted(e.event_id for e in room.state.values())
        assert sorted(ids(after.state_events)) == expected
        assert sorted(ids(latest.state_events)) == expected
        return reads[before:]

    first, second = await queried(), await queried()
    assert set(first) == {"snapshots", "blocks"} and second == [], (first, second)
    # Input publishes what it commits, so the next query finds the new state cached.
    topic = room.send("m.room.topic", ALICE, {"topic": "t"}, "")
    after_topic = room.send("m.room.message", BOB, {"body": "again"})
    before = len(reads)
    assert await send(client, topic, after_topic) == ["accepted", "accepted"]
    sent = len(reads)
    answer = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=room.room_id, prev_event_ids=[after_topic.event_id])
    )
    assert topic.event_id in ids(answer.state_events)
    assert len(reads) == sent, reads[before:]


async def test_state_and_auth_chain(client: RoomserverClient) -> None:
    room = public_room()
    msg = room.send("m.room.message", BOB, {"body": "hi"})
    state_at_msg = sorted(e.event_id for e in room.state.values())
    extra = room.send("m.room.name", ALICE, {"name": "n"}, "")
    await send(client, *room.events)
    answer = await client.query_state_and_auth_chain(
        m.QueryStateAndAuthChainRequest(
            room_id=room.room_id,
            prev_event_ids=[msg.event_id],
            auth_event_ids=[extra.event_id, UNKNOWN_EVENT],
            resolve_state=True,
        )
    )
    assert answer.room_exists and answer.prev_events_exist and answer.resolve_state
    state_ids = sorted(ids(answer.state_events))
    assert state_ids == state_at_msg  # after msg, before the name event
    by_id = {e.event_id: e for e in room.events}
    expected: set[str] = {extra.event_id}
    todo = [*by_id[extra.event_id].auth_event_ids] + [
        a for sid in state_ids for a in by_id[sid].auth_event_ids
    ]
    while todo:
        event_id = todo.pop()
        if event_id not in expected:
            expected.add(event_id)
            todo.extend(by_id[event_id].auth_event_ids)
    chain = ids(answer.auth_chain_events)
    assert sorted(chain) == sorted(expected)
    assert chain[0] == room.create.event_id  # every event after those that authorise it
    position = {event_id: n for n, event_id in enumerate(chain)}
    for event_id in chain:
        assert all(position[a] < position[event_id] for a in by_id[event_id].auth_event_ids)

    unknown = await client.query_state_and_auth_chain(
        m.QueryStateAndAuthChainRequest(room_id=UNKNOWN_ROOM, prev_event_ids=[msg.event_id])
    )
    assert not unknown.room_exists and unknown.auth_chain_events == []
    no_prev = await client.query_state_and_auth_chain(
        m.QueryStateAndAuthChainRequest(room_id=room.room_id, prev_event_ids=[UNKNOWN_EVENT])
    )
    assert no_prev.room_exists and not no_prev.prev_events_exist


async def test_state_and_auth_chain_in_room_version_12(client: RoomserverClient) -> None:
    room = public_room("12")
    msg = room.send("m.room.message", BOB, {"body": "hi"})
    await send(client, *room.events)
    answer = await client.query_state_and_auth_chain(
        m.QueryStateAndAuthChainRequest(room_id=room.room_id, prev_event_ids=[msg.event_id])
    )
    # v12 events never cite the create event, yet it authorises them all: it is in the chain.
    assert room.create.event_id in ids(answer.auth_chain_events)
    assert answer.room_version == "12"


# -- events and rooms ------------------------------------------------------------------------


async def test_events_by_id_in_order_across_rooms_and_versions(client: RoomserverClient) -> None:
    old, new = public_room("1"), public_room("10")
    await send(client, *old.events)
    await send(client, *new.events)
    wanted = [new.events[2].event_id, UNKNOWN_EVENT, old.events[1].event_id, new.events[2].event_id]
    answer = await client.query_events_by_id(m.QueryEventsByIDRequest(event_ids=wanted))
    assert ids(answer.events) == [new.events[2].event_id, old.events[1].event_id]
    assert [e["_room_version"] for e in answer.events] == ["10", "1"]
    assert answer.events[0] == new.events[2].headered()
    assert answer.event_ids == wanted
    empty = await client.query_events_by_id(m.QueryEventsByIDRequest(event_ids=None))
    assert empty.events == []


async def test_room_versions(client: RoomserverClient) -> None:
    room = public_room("7")
    await send(client, *room.events)
    answer = await client.query_room_version_for_room(
        m.QueryRoomVersionForRoomRequest(room_id=room.room_id)
    )
    assert answer.room_version == "7"
    error = await error_of(
        client.query_room_version_for_room(m.QueryRoomVersionForRoomRequest(room_id=UNKNOWN_ROOM))
    )
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    caps = await client.query_room_version_capabilities()
    assert caps.default == "10" and set(caps.available) == {str(v) for v in range(1, 13)}


# -- memberships -----------------------------------------------------------------------------


async def test_membership_for_user(client: RoomserverClient) -> None:
    room = public_room()
    invite = room.send("m.room.member", ALICE, {"membership": "invite"}, CAROL)
    bob_leave = room.send("m.room.member", BOB, {"membership": "leave"}, BOB)
    await send(client, *room.events)

    async def ask(user: str) -> m.QueryMembershipForUserResponse:
        return await client.query_membership_for_user(
            m.QueryMembershipForUserRequest(room_id=room.room_id, user_id=user)
        )

    alice = await ask(ALICE)
    assert alice.is_in_room and alice.has_been_in_room and alice.membership == "join"
    assert alice.event_id == room.state[("m.room.member", ALICE)].event_id
    bob = await ask(BOB)
    assert (bob.is_in_room, bob.has_been_in_room, bob.membership) == (False, True, "leave")
    assert bob.event_id == bob_leave.event_id
    carol = await ask(CAROL)
    assert (carol.is_in_room, carol.has_been_in_room, carol.membership) == (False, False, "invite")
    assert carol.event_id == invite.event_id
    dave = await ask("@dave:d.test")
    assert (dave.is_in_room, dave.has_been_in_room, dave.membership, dave.event_id) == (
        False,
        False,
        None,
        "",
    )
    error = await error_of(
        client.query_membership_for_user(
            m.QueryMembershipForUserRequest(room_id=UNKNOWN_ROOM, user_id=ALICE)
        )
    )
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    error = await error_of(
        client.query_membership_for_user(
            m.QueryMembershipForUserRequest(room_id=room.room_id, user_id="alice")
        )
    )
    assert (error.status, error.errcode) == (400, "M_INVALID_PARAM")


async def test_memberships_for_room(client: RoomserverClient) -> None:
    room = public_room()
    invite = room.send("m.room.member", ALICE, {"membership": "invite"}, CAROL)
    bob_leave = room.send("m.room.member", BOB, {"membership": "leave"}, BOB)
    dave_join = room.join("@dave:d.test")  # after Bob left: Bob does not see him
    await send(client, *room.events)

    async def ask(sender: str, joined_only: bool) -> m.QueryMembershipsForRoomResponse:
        return await client.query_memberships_for_room(
            m.QueryMembershipsForRoomRequest(
                room_id=room.room_id, sender=sender, joined_only=joined_only
            )
        )

    alice_join = room.state[("m.room.member", ALICE)]
    joined = await ask(ALICE, True)
    assert joined.has_been_in_room and joined.join_events is not None
    assert sorted(e.event_id for e in joined.join_events) == sorted(
        [alice_join.event_id, dave_join.event_id]
    )
    sample = next(e for e in joined.join_events if e.event_id == alice_join.event_id)
    assert sample.model_dump(exclude_none=True) == {
        "content": {"membership": "join"},
        "event_id": alice_join.event_id,
        "origin_server_ts": alice_join.origin_server_ts,
        "room_id": room.room_id,
        "sender": ALICE,
        "state_key": ALICE,
        "type": "m.room.member",
    }
    everyone = await ask(ALICE, False)
    assert everyone.join_events is not None
    assert sorted(e.event_id for e in everyone.join_events) == sorted(
        [alice_join.event_id, dave_join.event_id, invite.event_id, bob_leave.event_id]
    )

    bob_view = await ask(BOB, False)  # left: the state after his leave, without Dave
    assert bob_view.has_been_in_room and bob_view.join_events is not None
    assert sorted(e.event_id for e in bob_view.join_events) == sorted(
        [alice_join.event_id, invite.event_id, bob_leave.event_id]
    )
    bob_joined_view = await ask(BOB, True)
    assert [e.event_id for e in bob_joined_view.join_events or []] == [alice_join.event_id]

    for outsider in (CAROL, "@erin:e.test"):  # invited only / never
        answer = await ask(outsider, False)
        assert not answer.has_been_in_room and answer.join_events is None

    raw = await client.http.post(
        "/api/roomserver/queryMembershipsForRoom",
        json={"room_id": room.room_id, "sender": CAROL},
    )
    assert raw.json() == {"join_events": None, "has_been_in_room": False}
    error = await error_of(
        client.query_memberships_for_room(
            m.QueryMembershipsForRoomRequest(room_id=UNKNOWN_ROOM, sender=ALICE)
        )
    )
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")


async def test_invites_for_user(client: RoomserverClient) -> None:
    room = public_room()
    room.send("m.room.member", BOB, {"membership": "invite"}, CAROL)
    await send(client, *room.events)

    async def senders(user: str, room_id: str = room.room_id) -> list[str]:
        answer = await client.query_invites_for_user(
            m.QueryInvitesForUserRequest(room_id=room_id, target_user_id=user)
        )
        return answer.invite_sender_user_ids

    assert await senders(CAROL) == [BOB]
    assert await senders(ALICE) == []
    assert await senders("@nobody:x.test") == []
    await send(client, room.join(CAROL))  # answering the invite retires it
    assert await senders(CAROL) == []
    error = await error_of(senders(CAROL, UNKNOWN_ROOM))
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")


# -- walks for other servers -----------------------------------------------------------------


def chain_room(length: int) -> tuple[RoomBuilder, list[Event]]:
    """A public room (shared history) followed by ``length`` messages in a line."""
    room = public_room()
    messages = [room.send("m.room.message", BOB, {"body": str(i)}) for i in range(length)]
    return room, messages


async def test_missing_events_walk(client: RoomserverClient) -> None:
    room, msgs = chain_room(8)
    await send(client, *room.events)

    async def missing(
        earliest: list[Event], latest: list[Event], limit: int, **kw: Any
    ) -> list[str]:
        answer = await client.query_missing_events(
            m.QueryMissingEventsRequest(
                earliest_events=[e.event_id for e in earliest],
                latest_events=[e.event_id for e in latest],
                limit=limit,
                server_name="b.test",
                **kw,
            )
        )
        return ids(answer.events)

    # between msgs[1] and msgs[7]: msgs[2..6], oldest first, neither end included
    assert await missing([msgs[1]], [msgs[7]], 100) == [e.event_id for e in msgs[2:7]]
    # the limit keeps the events nearest to latest_events
    assert await missing([msgs[1]], [msgs[7]], 2) == [msgs[5].event_id, msgs[6].event_id]
    assert await missing([msgs[1]], [msgs[7]], 0) == []
    assert await missing([msgs[6]], [msgs[7]], 10) == []
    assert await missing([msgs[1]], [msgs[7]], 10, min_depth=msgs[4].depth) == [
        e.event_id for e in msgs[4:7]
    ]
    # with no earliest event the walk goes to the create event
    everything = await missing([], [msgs[0]], 100)
    assert everything == [e.event_id for e in room.events[: room.events.index(msgs[0])]]
    assert await missing([msgs[1]], [msgs[7]], 100, room_id=room.room_id) == [
        e.event_id for e in msgs[2:7]
    ]

    error = await error_of(missing([], [msgs[7]], 10, room_id=UNKNOWN_ROOM))
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    error = await error_of(
        client.query_missing_events(
            m.QueryMissingEventsRequest(
                earliest_events=[], latest_events=[UNKNOWN_EVENT], server_name="b.test"
            )
        )
    )
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    other = public_room()
    await send(client, *other.events)
    error = await error_of(missing([], [msgs[7], other.latest[0]], 10))
    assert (error.status, error.errcode) == (400, "M_INVALID_PARAM")


async def test_missing_events_through_a_fork_visits_each_event_once(
    client: RoomserverClient,
) -> None:
    room = public_room()
    base = room.latest
    left = [room.event("m.room.message", ALICE, {"body": "l0"}, prev=base)]
    right = [room.event("m.room.message", BOB, {"body": "r0"}, prev=base)]
    left.append(room.event("m.room.message", ALICE, {"body": "l1"}, prev=[left[0]]))
    merge = room.event("m.room.message", BOB, {"body": "merge"}, prev=[left[1], right[0]])
    await send(client, *room.events, left[0], right[0], left[1], merge)
    answer = await client.query_missing_events(
        m.QueryMissingEventsRequest(
            earliest_events=[base[0].event_id],
            latest_events=[merge.event_id],
            limit=10,
            server_name="b.test",
        )
    )
    got = ids(answer.events)
    assert sorted(got) == sorted(e.event_id for e in (*left, *right))
    assert len(got) == len(set(got))
    assert got.index(left[0].event_id) < got.index(left[1].event_id)  # oldest first


async def test_backfill_walk(client: RoomserverClient) -> None:
    room = public_room()
    base = room.latest
    a = [room.event("m.room.message", ALICE, {"body": "a0"}, prev=base)]
    b = [room.event("m.room.message", BOB, {"body": "b0"}, prev=base)]
    a.append(room.event("m.room.message", ALICE, {"body": "a1"}, prev=[a[0]]))
    b.append(room.event("m.room.message", BOB, {"body": "b1"}, prev=[b[0]]))
    await send(client, *room.events, a[0], b[0], a[1], b[1])
    history = list(reversed(room.events))  # newest first, before the fork

    async def backfill(start: list[Event], limit: int, server: str = "b.test") -> list[str]:
        answer = await client.query_backfill(
            m.QueryBackfillRequest(
                room_id=room.room_id,
                earliest_event_ids=[e.event_id for e in start],
                limit=limit,
                server_name=server,
            )
        )
        return ids(answer.events)

    # both tips, then level by level: a0 and b0 once each, then the shared history
    got = await backfill([a[1], b[1]], 100)
    assert sorted(got[:2]) == sorted([a[1].event_id, b[1].event_id])
    assert sorted(got[2:4]) == sorted([a[0].event_id, b[0].event_id])
    assert got[4:] == [e.event_id for e in history]
    assert len(got) == len(set(got))
    assert len(await backfill([a[1], b[1]], 3)) == 3
    assert await backfill([a[1]], 2) == [a[1].event_id, a[0].event_id]
    assert await backfill([a[1]], 0) == []
    # the asking server's own name: no visibility filter, same walk
    assert await backfill([a[1], b[1]], 100, server="test.local") == got

    error = await error_of(
        client.query_backfill(
            m.QueryBackfillRequest(
                room_id=UNKNOWN_ROOM, earliest_event_ids=[a[1].event_id], server_name="c.test"
            )
        )
    )
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    error = await error_of(
        client.query_backfill(
            m.QueryBackfillRequest(
                room_id=room.room_id, earliest_event_ids=[UNKNOWN_EVENT], server_name="c.test"
            )
        )
    )
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")


async def test_walks_leave_out_rejected_events_but_go_through_them(
    client: RoomserverClient,
) -> None:
    room = public_room()
    before = room.send("m.room.message", BOB, {"body": "before"})
    intruder = room.event("m.room.message", CAROL, {"body": "not a member"})
    after = room.event("m.room.message", BOB, {"body": "after"}, prev=[intruder])
    assert await send(client, *room.events, intruder, after) == [
        *(["accepted"] * len(room.events)),
        "rejected",
        "accepted",
    ]
    answer = await client.query_backfill(
        m.QueryBackfillRequest(
            room_id=room.room_id,
            earliest_event_ids=[after.event_id],
            limit=3,
            server_name="b.test",
        )
    )
    assert ids(answer.events) == [after.event_id, before.event_id, room.events[-2].event_id]


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("queryStateAfterEvents", {"room_id": "not a room", "prev_event_ids": []}),
        ("queryStateAfterEvents", {"room_id": "!r:a.test", "prev_event_ids": ["x\u0000"]}),
        (
            "queryLatestEventsAndState",
            {"room_id": "!r:a.test", "state_to_fetch": [{"type": "a\u0000", "state_key": ""}]},
        ),
        ("queryEventsByID", {"event_ids": ["no sigil"]}),
        ("queryMembershipForUser", {"room_id": "!r:a.test", "user_id": "@\ud800:a.test"}),
        ("queryServerAllowedToSeeEvent", {"event_id": UNKNOWN_EVENT, "server_name": "bad name"}),
        ("queryBackfill", {"room_id": "!r:a.test", "server_name": "a.test", "limit": -5}),
        ("queryMissingEvents", {"latest_events": [], "server_name": "a.test", "min_depth": -1}),
    ],
)
async def test_bad_input_is_a_400_with_an_errcode(
    client: RoomserverClient, path: str, body: dict[str, Any]
) -> None:
    raw = json.dumps(body).encode()  # ASCII escapes, so lone surrogates go through
    resp = await client.http.post(
        f"/api/roomserver/{path}", content=raw, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] in ("M_INVALID_PARAM", "M_BAD_JSON")


async def test_wrong_json_types_are_400(client: RoomserverClient) -> None:
    resp = await client.http.post(
        "/api/roomserver/queryStateAfterEvents", json={"room_id": 5, "prev_event_ids": "x"}
    )
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
    resp = await client.http.post("/api/roomserver/queryEventsByID", content=b"[not json")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_NOT_JSON"
