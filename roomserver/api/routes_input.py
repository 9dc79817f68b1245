"""``inputRoomEvents``: events into the room DAG."""

from __future__ import annotations

from fastapi import APIRouter, Request

from roomserver.api.models import (
    InputInviteEvent,
    InputResult,
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

router = APIRouter(prefix="/api/roomserver", tags=["input"])


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


@router.post(
    "/inputRoomEvents",
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
    },
)
async def input_room_events(
    body: InputRoomEventsRequest, request: Request
) -> InputRoomEventsResponse:
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
    return InputRoomEventsResponse(
        event_id=results[-1].event_id if results else "",  # Dendrite's field
        results=[
            InputResult(event_id=r.event_id, outcome=r.outcome.value, reason=r.reason)
            for r in results
        ],
    )
