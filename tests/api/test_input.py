"""inputRoomEvents through HTTP: outcomes, idempotency, refusals, output rows. Both backends."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from roomserver.api import models as m
from roomserver.client import RoomserverClient, RoomserverError
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version

ALICE, BOB, CAROL = "@alice:a.test", "@bob:b.test", "@carol:c.test"


def public_room(version: str = "10") -> RoomBuilder:
    v = room_version(version)
    room = RoomBuilder(v, ALICE)
    room.join(ALICE)
    users = {} if v.privileged_creators else {ALICE: 100}  # v12: creators stand above levels
    room.send("m.room.power_levels", ALICE, {"users": users}, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.join(BOB)
    return room


def item(event: Event, kind: int = 2, **extra: Any) -> m.InputRoomEvent:
    return m.InputRoomEvent(kind=kind, event=event.headered(), **extra)


async def send(
    client: RoomserverClient, *events: Event, kind: int = 2, **extra: Any
) -> list[m.InputResult]:
    request = m.InputRoomEventsRequest(input_room_events=[item(e, kind, **extra) for e in events])
    return (await client.input_room_events(request)).results


async def latest_ids(client: RoomserverClient, room_id: str) -> list[str]:
    answer = await client.query_latest_events_and_state(
        m.QueryLatestEventsAndStateRequest(room_id=room_id)
    )
    return sorted(ref[0] for ref in answer.latest_events)


async def output_payloads(app: FastAPI) -> list[dict[str, Any]]:
    async with app.state.storage.read() as r:
        return [orjson.loads(row.payload) for row in await r.output.read(0, 10_000)]


@pytest.mark.parametrize("version", ["1", "3", "10", "12"])
async def test_a_room_is_built_and_its_state_kept(client: RoomserverClient, version: str) -> None:
    room = public_room(version)
    msg = room.send("m.room.message", BOB, {"body": "hi"})
    results = await send(client, *room.events)
    assert [r.outcome for r in results] == ["accepted"] * len(room.events)
    assert await latest_ids(client, room.room_id) == [msg.event_id]
    state = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=room.room_id, prev_event_ids=[msg.event_id])
    )
    got = sorted(e["event_id"] for e in state.state_events)
    assert got == sorted(e.event_id for e in room.state.values())


async def test_rejected_event_is_stored_and_others_go_on(
    client: RoomserverClient, app: FastAPI
) -> None:
    room = public_room()
    await send(client, *room.events)
    intruder = room.event("m.room.message", CAROL, {"body": "let me in"})  # not a member
    ok = room.send("m.room.message", BOB, {"body": "fine"})
    results = await send(client, intruder, ok)
    assert [r.outcome for r in results] == ["rejected", "accepted"]
    assert "against" in (results[0].reason or "")
    async with app.state.storage.read() as r:
        info = (await r.events.lookup([intruder.event_id]))[intruder.event_id]
    assert info.is_rejected and info.rejection_reason
    assert await latest_ids(client, room.room_id) == [ok.event_id]


async def test_resending_is_idempotent(client: RoomserverClient, app: FastAPI) -> None:
    room = public_room()
    await send(client, *room.events)
    before = await output_payloads(app)
    again = await send(client, *room.events)
    assert {r.outcome for r in again} == {"already_known"}
    assert await output_payloads(app) == before


async def test_missing_prev_events_refuse_the_whole_request(
    client: RoomserverClient, http: httpx.AsyncClient
) -> None:
    room = public_room()
    room.send("m.room.message", BOB, {"body": "one"})
    room.send("m.room.message", BOB, {"body": "two"})
    await send(client, *room.events[:3])
    # events 3.. cite event 3 and later, which the server does not have: refuse all of them
    good = room.events[3]
    gap = room.events[5]
    with pytest.raises(RoomserverError) as refused:
        await send(client, good, gap)
    assert refused.value.status == 400
    assert refused.value.errcode == "M_MISSING_EVENTS"
    assert room.events[4].event_id in refused.value.body["missing_event_ids"]
    found = await client.query_events_by_id(m.QueryEventsByIDRequest(event_ids=[good.event_id]))
    assert found.events == []  # nothing half-written


async def test_unknown_room_and_bad_input_are_4xx(
    client: RoomserverClient, http: httpx.AsyncClient
) -> None:
    room = public_room()
    with pytest.raises(RoomserverError) as unknown:
        await send(client, room.events[1])
    assert (unknown.value.status, unknown.value.errcode) == (404, "M_NOT_FOUND")

    url = "/api/roomserver/inputRoomEvents"
    resp = await http.post(url, content=b"{not json")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_NOT_JSON")
    resp = await http.post(url, json={"input_room_events": [{"kind": 9, "event": {}}]})
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_BAD_JSON")
    bad_version = dict(room.create.headered(), _room_version="99")
    resp = await http.post(url, json={"input_room_events": [{"kind": 2, "event": bad_version}]})
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    tampered = room.create.headered()
    tampered["content"] = {**tampered["content"], "extra": 1}
    resp = await http.post(url, json={"input_room_events": [{"kind": 2, "event": tampered}]})
    assert resp.status_code == 400 and "hash" in resp.json()["error"]
    huge = dict(room.create.headered(), content={"x": "y" * 70_000})
    resp = await http.post(url, json={"input_room_events": [{"kind": 2, "event": huge}]})
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_TOO_LARGE")


async def test_wrong_room_version_for_a_known_room(client: RoomserverClient) -> None:
    room = public_room("10")
    await send(client, *room.events)
    other = RoomBuilder(room_version("9"), ALICE, room_id=room.room_id)
    with pytest.raises(RoomserverError) as refused:
        await send(client, other.create)
    assert refused.value.status == 400


async def test_soft_failed_event_is_kept_out_of_the_room(
    client: RoomserverClient, app: FastAPI
) -> None:
    room = public_room()
    await send(client, *room.events)
    fork_point, fork_state = list(room.latest), dict(room.state)
    ban = room.send("m.room.member", ALICE, {"membership": "ban"}, BOB)
    await send(client, ban)
    rows_before = len(await output_payloads(app))
    # Bob's message on the branch before his ban: fine at its place, not in the room now.
    late = room.event(
        "m.room.message", BOB, {"body": "too late"}, prev=fork_point, state=fork_state
    )
    (result,) = await send(client, late)
    assert result.outcome == "soft_failed", result.reason
    assert await latest_ids(client, room.room_id) == [ban.event_id]
    assert len(await output_payloads(app)) == rows_before


async def test_outliers_and_backfilled_events(client: RoomserverClient, app: FastAPI) -> None:
    room = public_room()
    msgs = [room.send("m.room.message", BOB, {"body": str(i)}) for i in range(3)]
    await send(client, *room.events[:-3])
    # The newest message arrives first as an outlier: stored, no state, no output.
    (outlier,) = await send(client, msgs[2], kind=1)
    assert outlier.outcome == "accepted"
    with pytest.raises(RoomserverError) as no_state:  # a prev event without state
        await send(client, room.event("m.room.message", BOB, {"body": "x"}, prev=[msgs[2]]))
    assert no_state.value.errcode == "M_MISSING_EVENTS"
    latest = await latest_ids(client, room.room_id)
    (backfilled,) = await send(client, msgs[0], kind=3)
    assert backfilled.outcome == "accepted"
    assert await latest_ids(client, room.room_id) == latest  # history moves nothing
    last = (await output_payloads(app))[-1]
    assert last["new_room_event"]["event"]["event_id"] == msgs[0].event_id
    assert last["new_room_event"]["historical"] is True


async def stored_row(app: FastAPI, event_id: str) -> Any:
    async with app.state.storage.read() as r:
        return (await r.events.lookup([event_id]))[event_id]


async def test_an_outlier_sent_again_as_new_gets_its_state(
    client: RoomserverClient, app: FastAPI
) -> None:
    """As the seed does: a stored event without a state, input as new, gets its state
    computed and joins the room as any new event would (latest events, output)."""
    room = public_room()
    first = room.send("m.room.message", BOB, {"body": "first"})
    second = room.send("m.room.message", BOB, {"body": "second"})
    await send(client, *room.events[:-2])
    await send(client, first, kind=1)
    rows_before = len(await output_payloads(app))
    (promoted,) = await send(client, first)
    assert promoted.outcome == "accepted", promoted.reason
    row = await stored_row(app, first.event_id)
    assert not row.is_outlier and row.state_snapshot_nid
    assert await latest_ids(client, room.room_id) == [first.event_id]
    (output,) = (await output_payloads(app))[rows_before:]
    assert output["new_room_event"]["event"]["event_id"] == first.event_id
    assert "historical" not in output["new_room_event"]
    assert [r.outcome for r in await send(client, first, second)] == ["already_known", "accepted"]
    assert await latest_ids(client, room.room_id) == [second.event_id]


async def test_an_outlier_backfilled_gets_its_state_and_stays_history(
    client: RoomserverClient, app: FastAPI
) -> None:
    room = public_room()
    fork_point = list(room.latest)
    old = room.send("m.room.message", BOB, {"body": "old"})
    await send(client, *room.events[:-1])
    await send(client, room.event("m.room.message", BOB, {"body": "new"}, prev=fork_point))
    latest = await latest_ids(client, room.room_id)
    await send(client, old, kind=1)
    (backfilled,) = await send(client, old, kind=3)
    assert backfilled.outcome == "accepted", backfilled.reason
    assert not (await stored_row(app, old.event_id)).is_outlier
    assert await latest_ids(client, room.room_id) == latest
    last = (await output_payloads(app))[-1]["new_room_event"]
    assert last["event"]["event_id"] == old.event_id and last["historical"] is True


async def test_an_outlier_and_its_child_in_one_request(client: RoomserverClient) -> None:
    room = public_room()
    first = room.send("m.room.message", BOB, {"body": "first"})
    second = room.send("m.room.message", BOB, {"body": "second"})
    await send(client, *room.events[:-2])
    await send(client, first, kind=1)
    assert [r.outcome for r in await send(client, first, second)] == ["accepted"] * 2
    assert await latest_ids(client, room.room_id) == [second.event_id]
    state = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=room.room_id, prev_event_ids=[first.event_id])
    )
    assert sorted(e["event_id"] for e in state.state_events) == sorted(
        e.event_id for e in room.state.values()
    )


async def test_a_rejected_outlier_keeps_its_verdict(client: RoomserverClient, app: FastAPI) -> None:
    room = public_room()
    await send(client, *room.events)
    intruder = room.event("m.room.message", CAROL, {"body": "let me in"})  # not a member
    (as_outlier,) = await send(client, intruder, kind=1)
    assert as_outlier.outcome == "rejected"
    (again,) = await send(client, intruder)
    assert again.outcome == "already_known"
    assert (await stored_row(app, intruder.event_id)).is_outlier


async def test_an_outlier_cited_before_it_came_stays_out_of_the_latest_events(
    client: RoomserverClient,
) -> None:
    """A later event given with its state named the outlier while it was missing; once the
    outlier gets its state, it is not a forward extremity: that event follows it."""
    room = public_room()
    first = room.send("m.room.message", BOB, {"body": "first"})
    later = room.send("m.room.message", BOB, {"body": "later"})
    await send(client, *room.events[:-2])
    state_ids = [e.event_id for e in room.state.values()]
    (with_state,) = await send(client, later, has_state=True, state_event_ids=state_ids)
    assert with_state.outcome == "accepted", with_state.reason
    await send(client, first, kind=1)
    (promoted,) = await send(client, first)
    assert promoted.outcome == "accepted", promoted.reason
    assert await latest_ids(client, room.room_id) == [later.event_id]


async def test_output_rows_carry_state_deltas(client: RoomserverClient, app: FastAPI) -> None:
    room = public_room()
    topic = room.send("m.room.topic", ALICE, {"topic": "t"}, "")
    await send(client, *room.events)
    rows = [p["new_room_event"] for p in await output_payloads(app)]
    assert [r["event"]["event_id"] for r in rows] == [e.event_id for e in room.events]
    assert rows[0]["adds_state_event_ids"] == [room.create.event_id]
    assert rows[-1]["adds_state_event_ids"] == [topic.event_id]
    assert rows[-1]["removes_state_event_ids"] == []
    assert rows[-1]["last_sent_event_id"] == room.events[-2].event_id
    assert rows[-1]["latest_event_ids"] == [topic.event_id]
    # the state before the topic event lacks the topic: the delta says so
    assert rows[-1]["state_before_removes_event_ids"] == [topic.event_id]


async def test_invites_are_announced_and_retired(client: RoomserverClient, app: FastAPI) -> None:
    room = public_room()
    invite = room.send("m.room.member", ALICE, {"membership": "invite"}, CAROL)
    join = room.join(CAROL)
    await send(client, *room.events)
    payloads = await output_payloads(app)
    kinds = [p["type"] for p in payloads]
    assert kinds.count("new_invite_event") == 1
    retired = [p["retire_invite_event"] for p in payloads if p["type"] == "retire_invite_event"]
    assert retired == [
        {
            "EventID": invite.event_id,
            "TargetUserID": CAROL,
            "RetiredByEventID": join.event_id,
            "Membership": "join",
        }
    ]


async def test_a_client_transaction_maps_to_its_first_event(client: RoomserverClient) -> None:
    room = public_room()
    await send(client, *room.events)
    first = room.send("m.room.message", BOB, {"body": "once"})
    retry = room.send("m.room.message", BOB, {"body": "once"})  # same request, new event
    txn = m.TransactionID(session_id=7, id="txn1")
    (r1,) = await send(client, first, transaction_id=txn)
    (r2,) = await send(client, retry, transaction_id=txn)
    assert r1.outcome == "accepted"
    assert (r2.outcome, r2.event_id) == ("already_known", first.event_id)


async def test_a_batch_of_a_hundred_events(client: RoomserverClient) -> None:
    room = public_room()
    msgs = [room.send("m.room.message", BOB, {"body": str(i)}) for i in range(100)]
    results = await send(client, *room.events)
    assert {r.outcome for r in results} == {"accepted"}
    assert await latest_ids(client, room.room_id) == [msgs[-1].event_id]


async def test_a_fork_is_resolved_and_merged(client: RoomserverClient) -> None:
    room = public_room()
    await send(client, *room.events)
    base = list(room.latest)
    left = room.send("m.room.topic", ALICE, {"topic": "left"}, "", prev=base)
    right = room.event("m.room.name", ALICE, {"name": "right"}, "", prev=base)
    room.apply(right)
    await send(client, left, right)
    assert await latest_ids(client, room.room_id) == sorted([left.event_id, right.event_id])
    merge = room.send("m.room.message", BOB, {"body": "merge"})
    await send(client, merge)
    assert await latest_ids(client, room.room_id) == [merge.event_id]
    state = await client.query_latest_events_and_state(
        m.QueryLatestEventsAndStateRequest(room_id=room.room_id)
    )
    ids = {e["event_id"] for e in state.state_events}
    assert {left.event_id, right.event_id} <= ids


async def test_a_fork_and_its_merge_in_one_batch(client: RoomserverClient) -> None:
    room = public_room()
    base = list(room.latest)
    left = room.send("m.room.topic", ALICE, {"topic": "left"}, "", prev=base)
    right = room.apply(room.event("m.room.name", ALICE, {"name": "right"}, "", prev=base))
    merge = room.send("m.room.message", BOB, {"body": "merge"})
    results = await send(client, *room.events)
    assert {r.outcome for r in results} == {"accepted"}
    assert await latest_ids(client, room.room_id) == [merge.event_id]
    state = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=room.room_id, prev_event_ids=[merge.event_id])
    )
    assert {left.event_id, right.event_id} <= {e["event_id"] for e in state.state_events}


async def test_the_typed_client_follows_the_output_stream(client: RoomserverClient) -> None:
    room = public_room()
    await send(client, *room.events)
    first = await client.output(0, limit=2)
    rest = await client.output(first.next, limit=100)
    seen = [e.new_room_event.event["event_id"] for e in (*first.events, *rest.events)
            if e.new_room_event is not None]  # fmt: skip
    assert seen == [e.event_id for e in room.events]
    assert (await client.output(rest.next, timeout_ms=10)).events == []


async def test_an_invite_over_federation_to_an_unknown_room(
    client: RoomserverClient, app: FastAPI
) -> None:
    remote = public_room()  # a room on other servers; this roomserver has none of it
    invite = remote.send("m.room.member", ALICE, {"membership": "invite"}, CAROL)
    stripped = {"type": "m.room.name", "state_key": "", "sender": ALICE, "content": {"name": "r"}}
    request = m.InputRoomEventsRequest(
        input_invite_events=[
            m.InputInviteEvent(
                room_version="10", event=invite.headered(), invite_room_state=[stripped]
            )
        ]
    )
    answer = await client.input_room_events(request)
    assert [(r.event_id, r.outcome) for r in answer.results] == [(invite.event_id, "accepted")]
    again = await client.input_room_events(request)
    assert again.results[0].outcome == "already_known"
    (row,) = await output_payloads(app)
    assert row["type"] == "new_invite_event"
    sent = row["new_invite_event"]["event"]
    assert sent["event_id"] == invite.event_id
    assert sent["unsigned"]["invite_room_state"][0]["content"] == {"name": "r"}
    invites = await client.query_invites_for_user(
        m.QueryInvitesForUserRequest(room_id=remote.room_id, target_user_id=CAROL)
    )
    assert invites.invite_sender_user_ids == [ALICE]
