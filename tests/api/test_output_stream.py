"""The output stream over HTTP: long-poll pages and server-sent events, on both backends.

Events are real signed events built with :class:`~roomserver.matrix.builder.RoomBuilder`
and sent through ``inputRoomEvents``; what a consumer reads back is compared with what
was sent. The event-stream tests run the app under a real uvicorn server on loopback
(httpx's ASGI transport buffers whole responses, so it cannot stream).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from roomserver.api.app import create_app
from roomserver.config import Settings
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version
from roomserver.output.stream import OutputStream, event_json
from roomserver.storage import OutputRow

ALICE = "@alice:test.local"
OUTPUT = "/api/roomserver/output"
SSE = "/api/roomserver/output/sse"


# -- helpers -------------------------------------------------------------------------------


def new_room(version: str = "10") -> RoomBuilder:
    """A room with its creator joined (2 events, not yet sent)."""
    room = RoomBuilder(room_version(version), ALICE)
    room.join(ALICE)
    return room


def messages(room: RoomBuilder, n: int) -> list[Event]:
    start = len(room.events)
    return [
        room.send("m.room.message", ALICE, {"msgtype": "m.text", "body": f"message {start + i}"})
        for i in range(n)
    ]


async def send(http: httpx.AsyncClient, events: list[Event]) -> None:
    """Input ``events`` as new events; each must be accepted (one output row each)."""
    body = {"input_room_events": [{"kind": 2, "event": e.headered()} for e in events]}
    resp = await http.post("/api/roomserver/inputRoomEvents", json=body)
    assert resp.status_code == 200, resp.text
    outcomes = [r["outcome"] for r in resp.json()["results"]]
    assert outcomes == ["accepted"] * len(events), resp.text


def event_ids(page_events: list[dict[str, Any]]) -> list[str]:
    return [e["new_room_event"]["event"]["event_id"] for e in page_events]


@asynccontextmanager
async def running(database_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app on ``database_url`` (lifespan run) and an HTTP client of it."""
    app = create_app(Settings(database_url=database_url, server_name="test.local", **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rs") as http:
            yield http


def stream_of(http: httpx.AsyncClient) -> OutputStream:
    transport = http._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, FastAPI)
    stream: OutputStream = app.state.output
    return stream


async def read_all(http: httpx.AsyncClient, after: int, limit: int) -> tuple[list[Any], int]:
    """Pages of ``limit`` from ``after`` until one comes back empty."""
    seen: list[Any] = []
    while True:
        resp = await http.get(OUTPUT, params={"from": after, "limit": limit})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert len(page["events"]) <= limit
        if not page["events"]:
            assert page["next"] == after
            return seen, after
        assert page["next"] == page["events"][-1]["position"]
        seen.extend(page["events"])
        after = page["next"]


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- long-poll -----------------------------------------------------------------------------


async def test_consumer_resumes_across_restarts_and_sees_every_event_once(
    database_url: str,
) -> None:
    room = new_room()
    sent = list(room.events)
    seen: list[Any] = []
    async with running(database_url) as http:
        await send(http, room.events)
        for _ in range(3):
            batch = messages(room, 4)
            sent += batch
            await send(http, batch)
        # The consumer reads two pages of 3, then disconnects (its cursor: ``after``).
        after = 0
        for _ in range(2):
            page = (await http.get(OUTPUT, params={"from": after, "limit": 3})).json()
            seen += page["events"]
            after = page["next"]
        assert after == 6
    # The roomserver restarts; more events arrive before the consumer comes back.
    async with running(database_url) as http:
        batch = messages(room, 5)
        sent += batch
        await send(http, batch)
        rest, after = await read_all(http, after, limit=4)
        seen += rest
        # Nothing more; a consumer starting over from 0 reads the very same rows.
        again, _ = await read_all(http, 0, limit=1000)
    positions = [e["position"] for e in seen]
    assert positions == list(range(1, len(sent) + 1))
    assert after == len(sent)
    assert {e["type"] for e in seen} == {"new_room_event"}
    assert event_ids(seen) == [e.event_id for e in sent]
    assert again == seen
    # The deltas of a linear room: each event is the only latest event and follows the last.
    for previous, current in itertools.pairwise(seen):
        body = current["new_room_event"]
        assert body["last_sent_event_id"] == previous["new_room_event"]["event"]["event_id"]
        assert body["latest_event_ids"] == [body["event"]["event_id"]]


async def test_long_poll_returns_as_soon_as_an_event_is_committed(database_url: str) -> None:
    room = new_room()
    async with running(database_url) as http:
        await send(http, room.events)
        stream = stream_of(http)
        began = time.monotonic()
        poll = asyncio.create_task(http.get(OUTPUT, params={"from": 2, "timeout": 10_000}))
        await wait_until(lambda: stream.waiting == 1)
        (message,) = messages(room, 1)
        committed = time.monotonic()
        await send(http, [message])
        resp = await poll
        answered = time.monotonic()
    assert resp.status_code == 200
    page = resp.json()
    assert [e["position"] for e in page["events"]] == [3]
    assert event_ids(page["events"]) == [message.event_id]
    assert page["next"] == 3
    assert answered - committed < 1.0, "the long-poll waited for its timeout"
    assert answered - began < 5.0


async def test_long_poll_times_out_with_no_events(database_url: str) -> None:
    room = new_room()
    async with running(database_url) as http:
        await send(http, room.events)
        began = time.monotonic()
        resp = await http.get(OUTPUT, params={"from": 2, "timeout": 300})
        waited = time.monotonic() - began
        assert stream_of(http).waiting == 0
    assert resp.status_code == 200
    assert resp.json() == {"events": [], "next": 2}
    assert 0.3 <= waited < 3.0


async def test_long_poll_sees_rows_committed_by_another_process(database_url: str) -> None:
    """A second app on the same database stands for a second replica: its commits reach
    the first one's waiters through the database poll, not through a callback."""
    room = new_room()
    async with (
        running(database_url, output_poll_ms=50) as reader,
        running(database_url) as writer,
    ):
        await send(writer, room.events)
        poll = asyncio.create_task(reader.get(OUTPUT, params={"from": 2, "timeout": 10_000}))
        await wait_until(lambda: stream_of(reader).waiting == 1)
        (message,) = messages(room, 1)
        committed = time.monotonic()
        await send(writer, [message])
        resp = await poll
        answered = time.monotonic()
    assert event_ids(resp.json()["events"]) == [message.event_id]
    assert answered - committed < 2.0


async def test_bad_parameters_are_refused_with_invalid_param(database_url: str) -> None:
    room = new_room()
    async with running(database_url) as http:
        await send(http, room.events)  # head: position 2
        bad: list[tuple[str, dict[str, Any], dict[str, str]]] = [
            (OUTPUT, {"from": -1}, {}),
            (OUTPUT, {"from": "abc"}, {}),
            (OUTPUT, {"from": "1.5"}, {}),
            (OUTPUT, {"from": "9" * 30}, {}),
            (OUTPUT, {"limit": 0}, {}),
            (OUTPUT, {"limit": 1001}, {}),
            (OUTPUT, {"timeout": -5}, {}),
            (OUTPUT, {"timeout": 60_001}, {}),
            (OUTPUT, {"timeout": "soon"}, {}),
            (OUTPUT, {"from": ""}, {}),
            (SSE, {"heartbeat": 5}, {}),
            (SSE, {}, {"Last-Event-ID": "not-a-number"}),
            (OUTPUT, {}, {"Accept": "text/event-stream", "Last-Event-ID": "-3"}),
        ]
        for path, params, headers in bad:
            resp = await http.get(path, params=params, headers=headers)
            assert resp.status_code == 400, (path, params, headers, resp.text)
            assert resp.json()["errcode"] == "M_INVALID_PARAM", (path, params, resp.text)
        # A position beyond the head: well-formed, but not from this log.
        for path in (OUTPUT, SSE):
            beyond = await http.get(path, params={"from": 3})
            assert beyond.status_code == 409, beyond.text
            assert beyond.json()["errcode"] == "M_INVALID_PARAM"
            assert beyond.json()["head"] == 2
        # The bounds themselves are fine.
        for params in ({"from": 2, "limit": 1000}, {"limit": 1, "timeout": 0}):
            assert (await http.get(OUTPUT, params=params)).status_code == 200


async def test_truncated_positions_are_reported_not_skipped(database_url: str) -> None:
    room = new_room()
    messages(room, 3)
    async with running(database_url) as http:
        await send(http, room.events)  # positions 1..5
        transport = http._transport
        assert isinstance(transport, httpx.ASGITransport)
        storage = transport.app.state.storage  # type: ignore[attr-defined]
        async with storage.transaction() as tx:
            assert await tx.output.truncate(3) == 2
        gone = await http.get(OUTPUT, params={"from": 1})
        assert gone.status_code == 410
        assert gone.json()["errcode"] == "M_OUTPUT_TRUNCATED"
        assert gone.json()["first_position"] == 3
        ok = await http.get(OUTPUT, params={"from": 2})
        assert [e["position"] for e in ok.json()["events"]] == [3, 4, 5]


# -- server-sent events --------------------------------------------------------------------


@asynccontextmanager
async def served(database_url: str) -> AsyncIterator[tuple[FastAPI, str]]:
    """The app under uvicorn on a loopback port: (the app, its base URL)."""
    app = create_app(Settings(database_url=database_url, server_name="test.local"))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout=15)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class EventStreamReader:
    """Parses a ``text/event-stream`` response into (id, data) events and comments."""

    def __init__(self, resp: httpx.Response) -> None:
        self.lines = resp.aiter_lines()
        self.comments: list[str] = []
        self.retry: int | None = None

    async def events(self, count: int, timeout: float = 10.0) -> list[tuple[int, Any]]:
        found: list[tuple[int, Any]] = []
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if line == "":
                    if "data" in fields:
                        found.append((int(fields["id"]), json.loads(fields["data"])))
                        if len(found) == count:
                            return found
                    fields = {}
                elif line.startswith(":"):
                    self.comments.append(line)
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    if name == "retry":
                        self.retry = int(fields[name])
        raise AssertionError(f"the stream ended after {len(found)} of {count} events")

    async def comment(self, timeout: float) -> str:
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if line.startswith(":"):
                    return line
                assert not line.startswith(("id", "data")), f"unexpected event line {line!r}"
        raise AssertionError("the stream ended")


async def test_event_stream_resumes_with_last_event_id(database_url: str) -> None:
    room = new_room()
    first = [*room.events, *messages(room, 3)]
    async with served(database_url) as (app, base), httpx.AsyncClient(base_url=base) as http:
        await send(http, first)  # positions 1..5
        async with http.stream("GET", SSE, params={"from": 0}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            reader = EventStreamReader(resp)
            got = await reader.events(3)
            assert reader.retry is not None
        # Disconnected after position 3: the server's stream ends and stops waiting.
        await wait_until(lambda: app.state.output.waiting == 0)
        more = messages(room, 2)
        await send(http, more)  # positions 6..7
        # An EventSource reconnects with the same URL and the last ID it saw.
        headers = {"Last-Event-ID": str(got[-1][0])}
        async with http.stream("GET", SSE, params={"from": 0}, headers=headers) as resp:
            got += await EventStreamReader(resp).events(4)
        # ``Accept: text/event-stream`` on the page path is the same stream; it then
        # waits for what comes next and delivers it.
        accept = {"Accept": "text/event-stream"}
        async with http.stream("GET", OUTPUT, params={"from": 7}, headers=accept) as resp:
            reader = EventStreamReader(resp)
            later = messages(room, 1)
            await send(http, later)
            got += await reader.events(1)
    sent = [*first, *more, *later]
    assert [position for position, _ in got] == list(range(1, 9))
    assert [data["position"] for _, data in got] == list(range(1, 9))
    assert event_ids([data for _, data in got]) == [e.event_id for e in sent]


async def test_event_stream_sends_heartbeats_while_idle(database_url: str) -> None:
    async with (
        served(database_url) as (_, base),
        httpx.AsyncClient(base_url=base) as http,
        http.stream("GET", SSE, params={"heartbeat": 100}) as resp,
    ):
        reader = EventStreamReader(resp)
        began = time.monotonic()
        beats = [await reader.comment(timeout=3.0) for _ in range(3)]
        elapsed = time.monotonic() - began
    assert beats == [": keepalive"] * 3
    assert elapsed < 2.0


# -- pieces without a database ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"type":"retire_invite_event","retire_invite_event":{"EventID":"$e"}}',
         {"position": 7, "type": "retire_invite_event", "retire_invite_event": {"EventID": "$e"}}),
        (b"{}", {"position": 7}),
        (b' { "type" : "x" } \n', {"position": 7, "type": "x"}),
    ],
)  # fmt: skip
def test_event_json_puts_the_position_first(payload: bytes, expected: dict[str, Any]) -> None:
    data = event_json(OutputRow(7, payload))
    assert data.startswith(b'{"position":7')
    assert json.loads(data) == expected


def test_event_json_refuses_a_payload_that_is_not_an_object() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        event_json(OutputRow(1, b"[1, 2]"))


def test_openapi_documents_the_output_stream() -> None:
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    schema = app.openapi()
    page = schema["paths"][OUTPUT]["get"]
    params = {p["name"]: p for p in page["parameters"]}
    assert set(params) == {"from", "limit", "timeout"}
    assert params["limit"]["schema"] == {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": 100
    }  # fmt: skip
    ok = page["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/OutputPage")
    assert ok["application/json"]["example"]["events"][0]["position"] == 42
    assert "text/event-stream" in ok
    assert {"400", "409", "410"} <= set(page["responses"])
    sse = schema["paths"][SSE]["get"]
    assert {p["name"] for p in sse["parameters"]} == {"from", "heartbeat", "Last-Event-ID"}
    assert "text/event-stream" in sse["responses"]["200"]["content"]
    assert "OutputEvent" in schema["components"]["schemas"]
