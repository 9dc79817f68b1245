"""Query endpoints: what other services ask the roomserver."""

from __future__ import annotations

from fastapi import APIRouter, Request

from roomserver.api.models import (
    QueryEventsByIDRequest,
    QueryEventsByIDResponse,
    QueryLatestEventsAndStateRequest,
    QueryLatestEventsAndStateResponse,
    QueryRoomVersionCapabilitiesResponse,
    QueryRoomVersionForRoomRequest,
    QueryRoomVersionForRoomResponse,
    QueryStateAfterEventsRequest,
    QueryStateAfterEventsResponse,
    StateKeyTuple,
)
from roomserver.errors import not_found
from roomserver.matrix.hashing import reference_sha256
from roomserver.matrix.room_versions import KNOWN_ROOM_VERSIONS
from roomserver.query import Query

router = APIRouter(prefix="/api/roomserver", tags=["query"])


def _query(request: Request) -> Query:
    q: Query = request.app.state.query
    return q


def _tuples(tuples: list[StateKeyTuple] | None) -> list[tuple[str, str]] | None:
    return [t.as_tuple() for t in tuples] if tuples else None


@router.post(
    "/queryStateAfterEvents",
    summary="The state after some events",
    response_model=QueryStateAfterEventsResponse,
)
async def query_state_after_events(
    body: QueryStateAfterEventsRequest, request: Request
) -> QueryStateAfterEventsResponse:
    """The room state a new event citing `prev_event_ids` would see: the state after each
    of them, resolved by the room version's state resolution when they differ.
    `prev_events_exist` is false when one of them is unknown or has no known state."""
    answer = await _query(request).state_after_events(
        body.room_id, body.prev_event_ids or [], _tuples(body.state_to_fetch)
    )
    return QueryStateAfterEventsResponse(
        room_exists=answer.room_exists,
        room_version=answer.room_version,
        prev_events_exist=answer.prev_events_exist,
        state_events=[e.headered() for e in answer.state_events],
    )


@router.post(
    "/queryLatestEventsAndState",
    summary="The forward extremities and current state of a room",
    response_model=QueryLatestEventsAndStateResponse,
)
async def query_latest_events_and_state(
    body: QueryLatestEventsAndStateRequest, request: Request
) -> QueryLatestEventsAndStateResponse:
    """What a new event of the room builds on: its latest events (to cite as prev events),
    their depth, and the current state (all of it, or only `state_to_fetch`, read without
    loading the rest)."""
    answer = await _query(request).latest_events_and_state(
        body.room_id, _tuples(body.state_to_fetch)
    )
    return QueryLatestEventsAndStateResponse(
        room_exists=answer.room_exists,
        room_version=answer.room_version,
        latest_events=[
            (e.event_id, {"sha256": reference_sha256(e.pdu, e.room_version)})
            for e in answer.latest_events
        ],
        state_events=[e.headered() for e in answer.state_events],
        depth=answer.depth,
    )


@router.post("/queryEventsByID", summary="Events by ID", response_model=QueryEventsByIDResponse)
async def query_events_by_id(
    body: QueryEventsByIDRequest, request: Request
) -> QueryEventsByIDResponse:
    """The stored events among `event_ids`, headered; unknown IDs are left out."""
    events = await _query(request).events_by_id(body.event_ids or [])
    return QueryEventsByIDResponse(events=[e.headered() for e in events])


@router.post(
    "/queryRoomVersionForRoom",
    summary="The room version of a room",
    response_model=QueryRoomVersionForRoomResponse,
    responses={404: {"description": "The room is unknown (`M_NOT_FOUND`)."}},
)
async def query_room_version_for_room(
    body: QueryRoomVersionForRoomRequest, request: Request
) -> QueryRoomVersionForRoomResponse:
    version = await _query(request).room_version_for_room(body.room_id)
    if version is None:
        raise not_found(f"room {body.room_id} is not known")
    return QueryRoomVersionForRoomResponse(room_version=version)


@router.post(
    "/queryRoomVersionCapabilities",
    summary="Room versions this server supports",
    response_model=QueryRoomVersionCapabilitiesResponse,
)
async def query_room_version_capabilities(request: Request) -> QueryRoomVersionCapabilitiesResponse:
    """The default room version for new rooms and every supported version (all stable).

    The request body is an empty object (or absent).
    """
    return QueryRoomVersionCapabilitiesResponse(
        default=request.app.state.settings.default_room_version,
        available={v: "stable" for v in KNOWN_ROOM_VERSIONS},
    )
