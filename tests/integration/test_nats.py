"""Publication of the output stream to NATS JetStream, checked by a real subscriber.

Against the NATS server on 127.0.0.1:4222 (``ROOMSERVER_TEST_NATS_URL`` overrides it), with
JetStream enabled. When it does not answer these tests are skipped, except with
``CI=true``, where they fail. Each test uses its own stream and subject, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import pytest
from fastapi import FastAPI
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from roomserver.api.app import create_app
from roomserver.config import Settings
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version
from roomserver.output.nats import NatsPublisher

NATS_URL = os.environ.get("ROOMSERVER_TEST_NATS_URL", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() == "true"
ALICE = "@alice:test.local"


@dataclass(frozen=True)
class Target:
    js: JetStreamContext
    stream: str
    subject: str

    def settings(self) -> dict[str, str]:
        return {"nats_url": NATS_URL, "nats_stream": self.stream, "nats_subject": self.subject}

    async def stored(self) -> int:
        return int((await self.js.stream_info(self.stream)).state.messages)


async def _quiet(_: Exception) -> None:
    """nats-py logs a traceback per failed attempt by default; the fixture reports once."""


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """A JetStream connection and a fresh stream name and subject (the stream is created by
    the publisher under test, and deleted afterwards)."""
    try:
        async with asyncio.timeout(10):
            nc = await nats.connect(
                NATS_URL,
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=1,  # 0 would mean "forever" to nats-py
                reconnect_time_wait=0.1,
                error_cb=_quiet,
            )
            js = nc.jetstream(timeout=5)
            await js.account_info()
    except Exception as e:
        message = f"NATS with JetStream is not reachable at {NATS_URL}: {e!r}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the NATS tests must run)", pytrace=False)
        pytest.skip(message)
    tag = uuid.uuid4().hex[:12]
    found = Target(js, f"RS_TEST_{tag}", f"rs-test.{tag}.output")
    try:
        yield found
    finally:
        with suppress(NotFoundError):
            await js.delete_stream(found.stream)
        await nc.close()


def new_room() -> RoomBuilder:
    room = RoomBuilder(room_version("10"), ALICE)
    room.join(ALICE)
    return room


def messages(room: RoomBuilder, n: int) -> list[Event]:
    return [room.send("m.room.message", ALICE, {"body": f"m{i}"}) for i in range(n)]


async def send(http: httpx.AsyncClient, events: list[Event]) -> None:
    body = {"input_room_events": [{"kind": 2, "event": e.headered()} for e in events]}
    resp = await http.post("/api/roomserver/inputRoomEvents", json=body)
    assert resp.status_code == 200, resp.text
    assert [r["outcome"] for r in resp.json()["results"]] == ["accepted"] * len(events)


@asynccontextmanager
async def running(database_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=database_url, server_name="test.local", **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rs") as http:
            yield http


def publisher_of(http: httpx.AsyncClient) -> NatsPublisher:
    transport = http._transport
    assert isinstance(transport, httpx.ASGITransport)
    assert isinstance(transport.app, FastAPI)
    publisher = transport.app.state.nats_publisher
    assert isinstance(publisher, NatsPublisher)
    return publisher


async def wait_for(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def stored_count(target: Target, n: int) -> None:
    async def enough() -> bool:
        try:
            return await target.stored() >= n
        except NotFoundError:
            return False

    await wait_for(enough, f"{n} messages on {target.stream}")


async def subscribe_all(target: Target, n: int) -> list[Any]:
    """Every message on the subject from the first, as a fresh subscriber sees them."""
    sub = await target.js.subscribe(target.subject, stream=target.stream, ordered_consumer=True)
    try:
        return [await sub.next_msg(timeout=10) for _ in range(n)]
    finally:
        await sub.unsubscribe()


async def test_each_position_is_published_once_in_order_across_restarts(
    database_url: str, target: Target
) -> None:
    room = new_room()
    sent = [*room.events, *messages(room, 4)]
    async with running(database_url, **target.settings()) as http:
        await send(http, sent)  # positions 1..6
        await stored_count(target, 6)
        assert publisher_of(http).position == 6
        page = (await http.get("/api/roomserver/output", params={"limit": 1000})).json()
    # Down for NATS: events keep coming in, the log keeps them.
    async with running(database_url) as http:
        backlog = messages(room, 3)
        await send(http, backlog)  # positions 7..9
        sent += backlog
    # Restarted with NATS: the cursor comes from the stream; the backlog follows it.
    async with running(database_url, **target.settings()) as http:
        more = messages(room, 2)
        await send(http, more)  # positions 10..11
        sent += more
        await stored_count(target, 11)
        page2 = (await http.get("/api/roomserver/output", params={"from": 6})).json()
        await asyncio.sleep(0.3)  # a duplicate, if any, would land now
        assert publisher_of(http).position == 11
    assert await target.stored() == 11

    received = await subscribe_all(target, 11)
    positions = [int(m.headers["Roomserver-Position"]) for m in received]
    assert positions == list(range(1, 12))
    assert [m.headers["Nats-Msg-Id"] for m in received] == [str(p) for p in positions]
    assert {m.headers["Roomserver-Type"] for m in received} == {"new_room_event"}
    assert {m.headers["Roomserver-Room-ID"] for m in received} == {room.room_id}
    bodies = [json.loads(m.data) for m in received]
    assert bodies == page["events"] + page2["events"]
    assert [b["new_room_event"]["event"]["event_id"] for b in bodies] == [e.event_id for e in sent]

    # What makes a restart after a lost acknowledgement safe: a repeated Msg-Id is dropped.
    again = await target.js.publish(target.subject, received[2].data, headers={"Nats-Msg-Id": "3"})
    assert again.duplicate
    assert await target.stored() == 11


async def test_two_replicas_publish_each_position_once(database_url: str, target: Target) -> None:
    """Two roomservers on one database both run a publisher to the same stream: the log's
    positions still land once each, in order."""
    room = new_room()
    async with (
        running(database_url, output_poll_ms=20, **target.settings()) as one,
        running(database_url, output_poll_ms=20, **target.settings()) as two,
    ):
        await send(one, room.events)
        for i in range(6):
            await send(one if i % 2 else two, messages(room, 5))
        await stored_count(target, 32)
        await wait_for(
            lambda: _both_at(publisher_of(one), publisher_of(two), 32), "both publishers"
        )
    assert await target.stored() == 32
    received = await subscribe_all(target, 32)
    assert [int(m.headers["Roomserver-Position"]) for m in received] == list(range(1, 33))


async def _both_at(a: NatsPublisher, b: NatsPublisher, position: int) -> bool:
    return a.position == position and b.position == position


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_nats_never_stops_the_roomserver(database_url: str) -> None:
    """NATS down: the app starts, takes events and serves the HTTP stream; publication
    waits (and stopping the app does not hang on it)."""
    room = new_room()
    url = f"nats://127.0.0.1:{_closed_port()}"
    began = time.monotonic()
    async with running(database_url, nats_url=url) as http:
        await send(http, room.events)
        page = (await http.get("/api/roomserver/output")).json()
        assert [e["position"] for e in page["events"]] == [1, 2]
        assert publisher_of(http).position == 0
    assert time.monotonic() - began < 10


async def test_a_stale_publisher_is_refused_beyond_the_duplicate_window(
    database_url: str, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """Deduplication by Msg-Id only lasts the stream's duplicate window; after it, the
    expected-sequence header is what keeps a publisher with an old cursor (a replica that
    fell behind) from storing positions a second time."""
    await target.js.add_stream(name=target.stream, subjects=[target.subject], duplicate_window=0.2)
    room = new_room()
    async with running(database_url) as http:
        await send(http, [*room.events, *messages(room, 3)])  # positions 1..5
        transport = http._transport
        assert isinstance(transport, httpx.ASGITransport)
        stream = transport.app.state.output  # type: ignore[attr-defined]
        publisher = NatsPublisher(
            stream, NATS_URL, stream_name=target.stream, subject=target.subject
        )
        try:
            js = await publisher._jetstream()
            await publisher._resume(js)
            rows = await stream.read(0, 100)
            assert await publisher._publish(js, rows)
            assert publisher.position == 5
            await asyncio.sleep(1.5)  # the Msg-Ids are forgotten
            publisher.position, publisher._last_seq = 2, 2  # as if it had stopped at 2
            with caplog.at_level("INFO", logger="roomserver.output.nats"):
                assert not await publisher._publish(js, rows[2:])
            assert "NATS refused output position 3" in caplog.text
            assert await target.stored() == 5
            await publisher._resume(js)
            assert publisher.position == 5
        finally:
            await publisher.close()
