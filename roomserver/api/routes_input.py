"""``inputRoomEvents``: events into the room DAG.

The hot path of the service, so it skips FastAPI's per-request machinery: the app's
middleware :class:`InputFastPath` serves it before the router, with the lean handler of
:class:`_InputRoute`; the endpoint's signature still documents it in ``/openapi.json``.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from roomserver.api.models import (
    InputInviteEvent,
    InputRoomEvent,
    InputRoomEventsRequest,
    InputRoomEventsResponse,
    MatrixErrorBody,
    error_responses,
)
from roomserver.errors import ServiceError
from roomserver.input import Input
from roomserver.input.types import InputEvent, InputKind, InviteInput, TransactionRef
from roomserver.matrix.errors import MatrixError, SignatureError
from roomserver.matrix.events import Event, RejectableEventTooLarge, parse_headered
from roomserver.matrix.room_versions import room_version
from roomserver.matrix.signing import check_signature_presence


class _InputRoute(APIRoute):
    """Documented by FastAPI from the endpoint's signature as any route, but served by a
    lean handler: no dependency solving, the body decoded with orjson and validated once,
    the answer written with orjson instead of through ``response_model``. The answers are
    FastAPI's, errors included: they are raised as FastAPI raises them, for the handlers
    of ``api/errors.py`` (tests/api/test_input_body.py holds it to that)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _handle


async def _handle(request: Request) -> Response:
    body = _request_body(await request.body(), request.headers.get("content-type"))
    return await input_room_events(body, request)


class InputFastPath:
    """ASGI middleware that serves ``POST /api/roomserver/inputRoomEvents`` itself, with
    the route's handler, instead of passing it on to the router.

    Between the user middleware and that handler the router puts seven more layers (the
    exception middleware, an exit stack, a match against every route, request wrappers):
    ~0.1 ms of a one-event request (docs/input-bench.md). Errors get the app's own handlers,
    looked up as the exception middleware looks them up; an error they do not handle goes
    on to the server error middleware (a 500), as before. Every other request, and this
    one under a ``root_path``, takes the usual way to the same handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != INPUT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await _handle(request)
        except Exception as exc:
            handler = _error_handler(scope["app"], exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _error_handler(app: FastAPI, exc: Exception) -> Any:
    """The app's handler for ``exc`` that the exception middleware would call (by status
    for an HTTPException, else by class); None for the catch-all ``Exception`` handler,
    which the server error middleware calls."""
    handlers = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code != 500:
        by_status = handlers.get(exc.status_code)
        if by_status is not None:
            return by_status
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None


router = APIRouter(prefix="/api/roomserver", tags=["input"])
INPUT_PATH = f"{router.prefix}/inputRoomEvents"

# Map every digit to "0" and anything else to " ", to find runs of digits in one C call.
_DIGITS = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_NUMBER = b"0" * 19  # an integer of fewer digits always fits in 64 bits


def _request_body(raw: bytes, content_type: str | None) -> InputRoomEventsRequest:
    """The body as FastAPI would read it, with the same errors: none is a missing body,
    anything but JSON content is bytes (refused by validation), JSON that does not decode
    is ``json_invalid``, and validation errors are located under ``body``."""
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    value = _decode(raw) if _is_json(content_type) else raw
    try:
        return InputRoomEventsRequest.model_validate(value, from_attributes=True)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        raise RequestValidationError([{**x, "loc": ("body", *x["loc"])} for x in errors]) from None


def _is_json(content_type: str | None) -> bool:
    """FastAPI's test: ``application/json`` or ``application/*+json``, parameters allowed."""
    if not content_type:
        return False
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _decode(raw: bytes) -> Any:
    """orjson when it reads the body as the standard library (FastAPI's decoder) would;
    the standard library itself for what orjson refuses (NaN, lone surrogates, UTF-16…)
    or reads differently (integers beyond 64 bits become floats)."""
    if raw.translate(_DIGITS).find(_LONG_NUMBER) < 0:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        error = {"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error",
                 "input": {}, "ctx": {"error": e.msg}}  # fmt: skip
        raise RequestValidationError([error], body=e.doc) from None
    except Exception:  # e.g. too deep, or not text
        raise HTTPException(400, "There was an error parsing the body") from None


def _parse(where: str, event: dict[str, object]) -> tuple[Event, str | None]:
    """The event, and why it must be stored as rejected (if it must)."""
    try:
        parsed = parse_headered(event)
    except RejectableEventTooLarge as e:
        return e.event, e.message
    except MatrixError as e:
        raise ServiceError(400, e.errcode, f"{where}: {e.message}") from None
    try:
        check_signature_presence(parsed)
    except SignatureError as e:
        return parsed, e.message
    return parsed, None


def _txn(model: InputRoomEvent | InputInviteEvent) -> TransactionRef | None:
    t = model.transaction_id
    return None if t is None else TransactionRef(t.session_id, t.id)


def _input_event(index: int, model: InputRoomEvent) -> InputEvent:
    event, rejection = _parse(f"input_room_events[{index}].event", model.event)
    return InputEvent(
        kind=InputKind(model.kind),
        event=event,
        state_event_ids=(model.state_event_ids or []) if model.has_state else None,
        send_as_server=model.send_as_server,
        transaction=_txn(model),
        pre_rejection=rejection,
    )


def _invite(index: int, model: InputInviteEvent) -> InviteInput:
    where = f"input_invite_events[{index}].event"
    event_json = dict(model.event)
    event_json.setdefault("_room_version", model.room_version)
    room_version(model.room_version)
    event, rejection = _parse(where, event_json)
    if rejection is not None:
        raise ServiceError(400, "M_BAD_JSON", f"{where}: {rejection}")
    return InviteInput(
        event=event,
        invite_room_state=[s.model_dump() for s in model.invite_room_state or []],
        send_as_server=model.send_as_server,
        transaction=_txn(model),
    )


async def input_room_events(body: InputRoomEventsRequest, request: Request) -> Response:
    """Store events, authorise them and compute the room state at each one.

    Events are processed in request order within a room (rooms in parallel), each in
    exactly one of these outcomes: `accepted`, `rejected` (stored and marked: the auth rules
    refuse it, never part of any state), `soft_failed` (allowed by its own history but not
    by the room's current state: stored, not a latest event, not sent to output) or
    `already_known` (a retry: nothing recomputed). A rejected event does not stop the
    others. Every accepted new event is written to the output stream in the same
    transaction. Invites (`input_invite_events`) are for local users, possibly to rooms
    this server is not in; their results follow those of the room events.
    """
    service: Input = request.app.state.input
    items = [_input_event(i, m) for i, m in enumerate(body.input_room_events or [])]
    invites = [_invite(i, m) for i, m in enumerate(body.input_invite_events or [])]
    results = await service.input_room_events(items) if items else []
    if invites:
        results += await service.input_invites(invites)
    answer = {
        "event_id": results[-1].event_id if results else "",  # Dendrite's field
        "results": [
            {"event_id": r.event_id, "outcome": r.outcome.value, "reason": r.reason}
            for r in results
        ],
    }
    return Response(orjson.dumps(answer), media_type="application/json")


router.add_api_route(
    INPUT_PATH.removeprefix(router.prefix),
    input_room_events,
    methods=["POST"],
    route_class_override=_InputRoute,
    summary="Input events into rooms",
    response_model=InputRoomEventsResponse,
    responses={
        **error_responses(
            "the room is unknown and the request does not create it (send its create event)."
        ),
        400: {
            "model": MatrixErrorBody,
            "description": "An event does not parse for its room version (`M_BAD_JSON`, "
            "`M_TOO_LARGE`, `M_UNSUPPORTED_ROOM_VERSION`), or cites events the roomserver "
            "does not have (`M_MISSING_EVENTS`, with `missing_event_ids`). Nothing of the "
            "request was stored.",
        },
        409: {
            "model": MatrixErrorBody,
            "description": "`M_UNKNOWN`: other writers kept storing the same events or client "
            "transaction IDs at the same moment (three attempts). Nothing of the request was "
            "stored; send it again.",
        },
    },
)
