"""A refused request writes nothing, even when it spans several rooms.

docs/input.md: "Refusals of the whole request (nothing of it is written): … events citing
… prev events … the server does not have (400 ``M_MISSING_EVENTS``)". A request with a
valid event of room A and an event of room B citing an unknown prev event must leave room
A untouched. Both backends.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from roomserver.api.app import create_app
from roomserver.config import Settings
from roomserver.matrix.builder import EventBuilder
from roomserver.matrix.room_versions import room_version

from .consistency import check_database
from .streams import ALICE, StreamRoom

INPUT = "/api/roomserver/inputRoomEvents"
BY_ID = "/api/roomserver/queryEventsByID"


@pytest.fixture
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=database_url, server_name="test.local"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rs") as client:
            yield client


async def test_missing_prev_in_one_room_writes_nothing_in_another(
    http: httpx.AsyncClient, database_url: str
) -> None:
    rng = random.Random(3)
    room_a = StreamRoom("10", rng, forked=False)
    room_b = StreamRoom("10", rng, forked=False)
    setup = [e.headered for e in (*room_a.out, *room_b.out)]
    resp = await http.post(
        INPUT, json={"input_room_events": [{"kind": 2, "event": e} for e in setup]}
    )
    assert resp.status_code == 200
    assert {r["outcome"] for r in resp.json()["results"]} == {"accepted"}

    valid_a = room_a.step()[-1].event
    unknown = EventBuilder("b.test").build(
        room_version("10"),
        type="m.room.message",
        sender=ALICE,
        content={"body": "never sent"},
        room_id=room_b.room_id,
    )
    orphan_b = room_b.rb.event(
        "m.room.message", ALICE, {"body": "after a gap"}, prev=[unknown], state=room_b.state
    )
    resp = await http.post(
        INPUT,
        json={
            "input_room_events": [
                {"kind": 2, "event": valid_a.headered()},
                {"kind": 2, "event": orphan_b.headered()},
            ]
        },
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] == "M_MISSING_EVENTS"
    await asyncio.sleep(0.5)  # room A's transaction, if it went on, has committed by now
    found = await http.post(BY_ID, json={"event_ids": [valid_a.event_id]})
    assert found.json()["events"] == [], "a refused request stored an event of another room"
    assert await check_database(database_url) == []
