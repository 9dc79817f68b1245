"""History visibility for other servers through HTTP, on both backends.

One room per ``history_visibility`` value. Around one message ``E`` of it, each asking
server has a user in a different relation to the room:

- ``joined.test``: joined before E, still joined;
- ``invited.test``: invited before E, still only invited;
- ``later.test``: joins after E;
- ``never.test``: never in the room;
- ``left.test``: joined and left before E;
- ``gone.test``: joined before E, left after it (not in the room now).

The expected answers are the spec's rules applied by hand; then the same rules must hold for
what ``queryBackfill`` and ``queryMissingEvents`` hand out.
"""

from __future__ import annotations

from typing import Any

import pytest

from roomserver.api import models as m
from roomserver.client import RoomserverClient, RoomserverError
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version

ALICE = "@alice:a.test"
SERVERS = ["joined.test", "invited.test", "later.test", "never.test", "left.test", "gone.test"]

EXPECTED = {  # visibility -> servers that may see E
    "world_readable": set(SERVERS),
    "shared": {"joined.test", "later.test", "gone.test"},
    "invited": {"joined.test", "invited.test", "gone.test"},
    "joined": {"joined.test", "gone.test"},
}


def user(server: str) -> str:
    return f"@u:{server}"


async def send(client: RoomserverClient, *events: Event) -> None:
    request = m.InputRoomEventsRequest(
        input_room_events=[m.InputRoomEvent(kind=2, event=e.headered()) for e in events]
    )
    outcomes = [r.outcome for r in (await client.input_room_events(request)).results]
    assert set(outcomes) == {"accepted"}, outcomes


class VisibilityRoom:
    """The room of the module docstring, with the events worth asking about."""

    def __init__(self, visibility: str, version: str = "10") -> None:
        v = room_version(version)
        room = self.room = RoomBuilder(v, ALICE)
        room.join(ALICE)
        users = {} if v.privileged_creators else {ALICE: 100}
        room.send("m.room.power_levels", ALICE, {"users": users}, "")
        room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        self.visibility_event = room.send(
            "m.room.history_visibility", ALICE, {"history_visibility": visibility}, ""
        )
        self.early = room.send("m.room.message", ALICE, {"body": "before anyone came"})
        room.join(user("left.test"))
        self.leave = room.send(
            "m.room.member", user("left.test"), {"membership": "leave"}, user("left.test")
        )
        self.join = room.join(user("joined.test"))
        room.join(user("gone.test"))
        room.send("m.room.member", ALICE, {"membership": "invite"}, user("invited.test"))
        self.event = room.send("m.room.message", ALICE, {"body": "E"})
        self.later_join = room.join(user("later.test"))
        room.send("m.room.member", user("gone.test"), {"membership": "leave"}, user("gone.test"))
        self.last = room.send("m.room.message", ALICE, {"body": "after"})


async def can_see(client: RoomserverClient, event: Event, server: str) -> bool:
    answer = await client.query_server_allowed_to_see_event(
        m.QueryServerAllowedToSeeEventRequest(event_id=event.event_id, server_name=server)
    )
    return answer.can_see_event


@pytest.mark.parametrize("visibility", sorted(EXPECTED))
async def test_each_visibility_against_each_membership(
    client: RoomserverClient, visibility: str
) -> None:
    vr = VisibilityRoom(visibility)
    await send(client, *vr.room.events)
    allowed = {s for s in SERVERS if await can_see(client, vr.event, s)}
    assert allowed == EXPECTED[visibility]
    assert await can_see(client, vr.event, "a.test")  # the room's own server


@pytest.mark.parametrize("visibility", ["joined", "invited"])
async def test_a_server_sees_its_own_users_join_and_leave(
    client: RoomserverClient, visibility: str
) -> None:
    vr = VisibilityRoom(visibility)
    await send(client, *vr.room.events)
    assert await can_see(client, vr.later_join, "later.test")  # joined after it
    assert not await can_see(client, vr.event, "later.test")
    assert await can_see(client, vr.leave, "left.test")  # joined before it
    assert not await can_see(client, vr.later_join, "left.test")


async def test_a_visibility_change_is_seen_from_either_side(client: RoomserverClient) -> None:
    room = RoomBuilder(room_version("10"), ALICE)
    room.join(ALICE)
    room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    to_joined = room.send("m.room.history_visibility", ALICE, {"history_visibility": "joined"}, "")
    to_world = room.send(
        "m.room.history_visibility", ALICE, {"history_visibility": "world_readable"}, ""
    )
    after = room.send("m.room.message", ALICE, {"body": "public now"})
    to_joined_again = room.send(
        "m.room.history_visibility", ALICE, {"history_visibility": "joined"}, ""
    )
    await send(client, *room.events)
    outsider = "else.test"
    assert not await can_see(client, to_joined, outsider)  # shared before, joined after
    assert await can_see(client, to_world, outsider)  # world readable after it
    assert await can_see(client, after, outsider)
    assert await can_see(client, to_joined_again, outsider)  # world readable before it
    assert await can_see(client, room.events[2], outsider) is False  # shared, not in room


async def test_rejected_and_unknown_events(client: RoomserverClient) -> None:
    vr = VisibilityRoom("world_readable")
    intruder = vr.room.event("m.room.message", "@x:never.test", {"body": "not a member"})
    await send(client, *vr.room.events)
    request = m.InputRoomEventsRequest(
        input_room_events=[m.InputRoomEvent(kind=2, event=intruder.headered())]
    )
    (result,) = (await client.input_room_events(request)).results
    assert result.outcome == "rejected"
    assert not await can_see(client, intruder, "a.test")  # not part of the room at all
    with pytest.raises(RoomserverError) as caught:
        await client.query_server_allowed_to_see_event(
            m.QueryServerAllowedToSeeEventRequest(
                event_id="$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", server_name="a.test"
            )
        )
    assert (caught.value.status, caught.value.errcode) == (404, "M_NOT_FOUND")
    with pytest.raises(RoomserverError) as caught:
        await client.query_server_allowed_to_see_event(
            m.QueryServerAllowedToSeeEventRequest(event_id=vr.event.event_id, server_name="a b")
        )
    assert (caught.value.status, caught.value.errcode) == (400, "M_INVALID_PARAM")


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


@pytest.mark.parametrize("visibility", sorted(EXPECTED))
async def test_walks_hand_out_only_what_the_server_may_see(
    client: RoomserverClient, visibility: str
) -> None:
    vr = VisibilityRoom(visibility)
    events = vr.room.events
    await send(client, *events)
    for server in SERVERS:
        visible = [e for e in events if await can_see(client, e, server)]
        backfill = await client.query_backfill(
            m.QueryBackfillRequest(
                room_id=vr.room.room_id,
                earliest_event_ids=[vr.last.event_id],
                limit=100,
                server_name=server,
            )
        )
        got = _ids(backfill.events)
        # newest first, and the walk stops at the first event the server may not see
        expected: list[str] = []
        for event in reversed(events):
            if event not in visible:
                break
            expected.append(event.event_id)
        assert got == expected, (visibility, server)
        missing = await client.query_missing_events(
            m.QueryMissingEventsRequest(
                earliest_events=[vr.early.event_id],
                latest_events=[vr.last.event_id],
                limit=100,
                server_name=server,
            )
        )
        between = events[events.index(vr.early) + 1 : events.index(vr.last)]
        tail: list[str] = []
        for event in reversed(between):
            if event not in visible:
                break
            tail.append(event.event_id)
        assert _ids(missing.events) == list(reversed(tail)), (visibility, server)
