"""The output stream over HTTP: a long-poll page API and server-sent events.

Both read the durable output log from a position the caller keeps, so a consumer resumes
after its own restart or the roomserver's by passing the last position it processed. Neither
holds a database connection while it waits: :class:`~roomserver.output.stream.OutputStream`
wakes them when the input pipeline commits (and polls for other replicas' commits).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from roomserver.api.models import HeaderedEvent, TransactionID
from roomserver.errors import bad_request
from roomserver.output.nats import NatsPublisher
from roomserver.output.stream import OutputStream, event_json
from roomserver.storage import OutputRow, Storage

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/roomserver", tags=["output"])

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_TIMEOUT_MS = 60_000
MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS, DEFAULT_HEARTBEAT_MS = 100, 300_000, 15_000
SSE_BATCH = 500
SSE_RETRY_MS = 2_000


# -- lifecycle -------------------------------------------------------------------------------


async def start_output_stream(app: FastAPI, storage: Storage) -> Callable[[], Awaitable[None]]:
    """Start the output stream (and the NATS publisher when ``nats_url`` is set), as
    ``app.state.output``; returns the coroutine function that stops them."""
    settings = app.state.settings
    stream = OutputStream(storage, poll_interval=settings.output_poll_ms / 1000)
    await stream.start()
    app.state.output = stream
    publisher: NatsPublisher | None = None
    if settings.nats_url:
        publisher = NatsPublisher(
            stream,
            settings.nats_url,
            stream_name=settings.nats_stream,
            subject=settings.nats_subject,
        )
        await publisher.start()
    app.state.nats_publisher = publisher

    async def stop() -> None:
        if publisher is not None:
            await publisher.close()
        await stream.close()

    return stop


def _stream(request: Request) -> OutputStream:
    stream: OutputStream = request.app.state.output
    return stream


# -- wire models (documentation of the JSON this module writes by hand) ----------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class OutputNewRoomEvent(_Model):
    """A new event of the room, with the state deltas that keep a consumer's view of the
    room current without asking the roomserver."""

    event: HeaderedEvent = Field(description="The event, headered (`_room_version`).")
    latest_event_ids: list[str] = Field(
        description="The room's forward extremities after this event."
    )
    adds_state_event_ids: list[str] = Field(
        description="State events that entered the current state with this event."
    )
    removes_state_event_ids: list[str] = Field(
        description="State events that left the current state with this event."
    )
    last_sent_event_id: str = Field(
        description='The room\'s previous event on this stream (`""` for its first): if it '
        "is not the last one the consumer applied, the deltas do not apply to its view; "
        "fetch the current state (queryLatestEventsAndState) instead."
    )
    state_before_adds_event_ids: list[str] = Field(
        description="The state before the event = the current state (after this event's "
        "deltas) plus these ..."
    )
    state_before_removes_event_ids: list[str] = Field(description="... minus these.")
    send_as_server: str = Field(
        description='The server that sends the event over federation (`""`: nobody).'
    )
    transaction_id: TransactionID | None = Field(
        description="The client transaction of a local user's send, if it had one."
    )
    historical: bool = Field(
        default=False,
        description="Only present (true) for backfilled events: they change neither the "
        "latest events nor the current state (all delta lists are empty).",
    )


class OutputNewInviteEvent(_Model):
    """An invite became active for a local user (possibly to a room this server is not in)."""

    room_version: str
    event: HeaderedEvent = Field(
        description="The `m.room.member` invite, headered; `unsigned.invite_room_state` "
        "holds the stripped state the inviting server gave, if any."
    )


class OutputRetireInviteEvent(_Model):
    """An invite stopped being active: the user joined, left, or was banned. Field names
    are capitalised as in Dendrite's wire format."""

    EventID: str = Field(description="The invite event.")
    TargetUserID: str
    RetiredByEventID: str = Field(description="The event that replaced the invite.")
    Membership: str = Field(description="The user's membership now.")


class OutputEvent(_Model):
    """One row of the output log: its position and Dendrite's `OutputEvent` JSON; exactly
    one of the three bodies is present, named by `type`."""

    position: int = Field(ge=1, description="Its position in the output log.")
    type: Literal["new_room_event", "new_invite_event", "retire_invite_event"]
    new_room_event: OutputNewRoomEvent | None = None
    new_invite_event: OutputNewInviteEvent | None = None
    retire_invite_event: OutputRetireInviteEvent | None = None


class OutputPage(BaseModel):
    events: list[OutputEvent] = Field(description="Rows after `from`, in position order.")
    next: int = Field(
        description="Pass as `from` next time: the last position returned, or `from` "
        "itself when nothing was."
    )


_EXAMPLE_PAGE: dict[str, Any] = {
    "events": [
        {
            "position": 42,
            "type": "new_room_event",
            "new_room_event": {
                "event": {
                    "_room_version": "10",
                    "event_id": "$Vxk3iXeIMJ0eHwVsO6Pj5u1lA9Z1aKqJ8bq8nWnQyXs",
                    "type": "m.room.member",
                    "state_key": "@bob:example.org",
                    "room_id": "!room:example.org",
                    "sender": "@bob:example.org",
                    "content": {"membership": "join"},
                    "depth": 6,
                    "origin_server_ts": 1700000000000,
                    "prev_events": ["$prev"],
                    "auth_events": ["$create", "$power", "$join_rules"],
                    "hashes": {"sha256": "…"},
                    "signatures": {"example.org": {"ed25519:a1": "…"}},
                },
                "latest_event_ids": ["$Vxk3iXeIMJ0eHwVsO6Pj5u1lA9Z1aKqJ8bq8nWnQyXs"],
                "adds_state_event_ids": ["$Vxk3iXeIMJ0eHwVsO6Pj5u1lA9Z1aKqJ8bq8nWnQyXs"],
                "removes_state_event_ids": ["$invite"],
                "last_sent_event_id": "$prev",
                "state_before_adds_event_ids": ["$invite"],
                "state_before_removes_event_ids": ["$Vxk3iXeIMJ0eHwVsO6Pj5u1lA9Z1aKqJ8bq8nWnQyXs"],
                "send_as_server": "example.org",
                "transaction_id": None,
            },
        },
        {
            "position": 43,
            "type": "retire_invite_event",
            "retire_invite_event": {
                "EventID": "$invite",
                "TargetUserID": "@bob:example.org",
                "RetiredByEventID": "$Vxk3iXeIMJ0eHwVsO6Pj5u1lA9Z1aKqJ8bq8nWnQyXs",
                "Membership": "join",
            },
        },
    ],
    "next": 43,
}

_SSE_EXAMPLE = (
    "retry: 2000\n\n"
    'id: 42\ndata: {"position":42,"type":"new_room_event","new_room_event":{…}}\n\n'
    'id: 43\ndata: {"position":43,"type":"retire_invite_event","retire_invite_event":{…}}\n\n'
    ": keepalive\n\n"
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "`M_INVALID_PARAM`: a parameter is not an integer or out of range."},
    409: {
        "description": "`M_INVALID_PARAM`: `from` is beyond the head of the log (`head` "
        "gives the head): the position was issued by another database."
    },
    410: {
        "description": "`M_OUTPUT_TRUNCATED`: rows after `from` were deleted from the log; "
        "`first_position` is the oldest one left."
    },
}


def _param(name: str, description: str, minimum: int, maximum: int | None, default: int | None,
           location: str = "query") -> dict[str, Any]:  # fmt: skip
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return {
        "name": name,
        "in": location,
        "required": False,
        "description": description,
        "schema": schema,
    }


_FROM = _param(
    "from",
    "The last position the consumer has processed (0: from the beginning); rows after "
    "it are returned.",
    0,
    None,
    0,
)


# -- parameters ------------------------------------------------------------------------------


def _int_param(
    request: Request, name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    """A query parameter as an integer in range, or 400 ``M_INVALID_PARAM``.

    Parsed here rather than by FastAPI so that a bad value is the Matrix error for bad
    parameters, not a JSON-body validation error.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    return _bounded(name, raw, minimum, maximum)


def _bounded(name: str, raw: str, minimum: int, maximum: int | None) -> int:
    text = raw.strip()
    if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 19:
        raise bad_request(f"{name} must be an integer, not {raw[:40]!r}")
    value = int(text)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise bad_request(f"{name} must be {bounds}, not {value}")
    return value


def _sse_start(request: Request) -> int:
    """Where an event-stream starts: ``Last-Event-ID`` (a reconnecting EventSource) wins
    over ``from`` (the URL it first opened)."""
    last_id = request.headers.get("last-event-id")
    if last_id:
        return _bounded("Last-Event-ID", last_id, 0, None)
    return _int_param(request, "from", 0, 0)


def _wants_event_stream(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/event-stream" in accept and "application/json" not in accept


# -- long-poll -------------------------------------------------------------------------------


@router.get(
    "/output",
    summary="Read the output stream (long-poll)",
    response_model=OutputPage,
    responses={
        200: {
            "content": {
                "application/json": {"example": _EXAMPLE_PAGE},
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": _SSE_EXAMPLE,
                },
            },
            "description": "A page of rows, or (with `Accept: text/event-stream`) the "
            "endless event stream of `/output/sse`.",
        },
        **_ERRORS,
    },
    openapi_extra={
        "parameters": [
            _FROM,
            _param("limit", "At most this many rows.", 1, MAX_LIMIT, DEFAULT_LIMIT),
            _param(
                "timeout",
                "Milliseconds to wait when no row follows `from` yet; the answer comes as "
                "soon as one is committed. 0: answer at once.",
                0,
                MAX_TIMEOUT_MS,
                0,
            ),
        ]
    },
)
async def read_output(request: Request) -> Response:
    """The rows of the output log after position `from`, in order: Dendrite's
    `OutputEvent` JSON (`new_room_event`, `new_invite_event`, `retire_invite_event`), each
    with its `position`.

    If rows follow `from`, up to `limit` of them come back at once. Otherwise the call
    waits up to `timeout` ms and returns as soon as one is committed (by this process at
    once, by another replica on the same database within a second), or with no events
    when the time is up. Process the events, then call again with `from` = `next`.

    The log is durable: after a restart of either side, resume from the last position
    processed; each position is seen once, in order. With `Accept: text/event-stream`
    this path serves the event stream of `/output/sse` instead.
    """
    stream = _stream(request)
    if _wants_event_stream(request):
        return await _event_stream(request, stream)
    after = _int_param(request, "from", 0, 0)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    timeout_ms = _int_param(request, "timeout", 0, 0, MAX_TIMEOUT_MS)
    rows = await stream.read(after, limit)
    await stream.check_resume(after, rows)
    if not rows and timeout_ms:
        rows = await stream.next_rows(after, limit, timeout_ms / 1000)
    return Response(_page(rows, after), media_type="application/json")


def _page(rows: list[OutputRow], after: int) -> bytes:
    events = b",".join(event_json(row) for row in rows)
    following = rows[-1].position if rows else after
    return b'{"events":[%s],"next":%d}' % (events, following)


# -- server-sent events ----------------------------------------------------------------------


@router.get(
    "/output/sse",
    summary="Follow the output stream (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}
            },
            "description": "An endless `text/event-stream`: one event per row, `id` = its "
            "position, `data` = the row's JSON as in `/output`.",
        },
        **_ERRORS,
    },
    openapi_extra={
        "parameters": [
            _FROM,
            _param(
                "heartbeat",
                "Milliseconds of silence after which a comment line (`: keepalive`) is "
                "sent, so proxies keep the connection and a dead peer is noticed.",
                MIN_HEARTBEAT_MS,
                MAX_HEARTBEAT_MS,
                DEFAULT_HEARTBEAT_MS,
            ),
            _param(
                "Last-Event-ID",
                "Sent by a reconnecting EventSource: the last position received. Takes "
                "precedence over `from`.",
                0,
                None,
                None,
                location="header",
            ),
        ]
    },
)
async def follow_output(request: Request) -> Response:
    """Every row of the output log after `from` (or after `Last-Event-ID`), then each new
    one as it is committed, until the client disconnects: a `text/event-stream` with one
    event per row (`id:` its position, `data:` the same JSON as an item of `/output`'s
    `events`), and a comment line as heartbeat when nothing happens.

    An EventSource resumes by itself: on reconnection it sends `Last-Event-ID`, the last
    position it received, and the stream continues right after it.
    """
    return await _event_stream(request, _stream(request))


async def _event_stream(request: Request, stream: OutputStream) -> Response:
    after = _sse_start(request)
    heartbeat_ms = _int_param(
        request, "heartbeat", DEFAULT_HEARTBEAT_MS, MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS
    )
    first = await stream.read(after, SSE_BATCH)
    await stream.check_resume(after, first)  # refusals are plain 4xx, before streaming
    return StreamingResponse(
        _sse_body(stream, after, first, heartbeat_ms / 1000),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse_body(
    stream: OutputStream, after: int, rows: list[OutputRow], heartbeat: float
) -> AsyncIterator[bytes]:
    yield b"retry: %d\n\n" % SSE_RETRY_MS
    started = time.monotonic()
    sent = 0
    try:
        while True:
            if rows:
                yield b"".join(_sse_event(row) for row in rows)
                sent += len(rows)
                after = rows[-1].position
            rows = await stream.next_rows(after, SSE_BATCH, heartbeat)
            if not rows:
                yield b": keepalive\n\n"
    finally:
        log.debug(
            "output event stream closed after %d events in %.1fs, at position %d",
            sent,
            time.monotonic() - started,
            after,
        )


def _sse_event(row: OutputRow) -> bytes:
    data = event_json(row)
    if b"\n" in data or b"\r" in data:  # a line break would end the SSE field: re-encode
        data = orjson.dumps(orjson.loads(data))
    return b"id: %d\ndata: %s\n\n" % (row.position, data)
