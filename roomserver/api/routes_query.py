"""Query endpoints: what other services ask the roomserver (paths as Dendrite's query API).

Every endpoint is ``POST /api/roomserver/<name>`` with a JSON body. Events come back
headered (the PDU plus ``_room_version``, and ``event_id`` from room version 3 on), except
the member lists of ``queryMembershipsForRoom``, which are in client form.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from roomserver.api.models import (
    QueryBackfillRequest,
    QueryBackfillResponse,
    QueryEventsByIDRequest,
    QueryEventsByIDResponse,
    QueryInvitesForUserRequest,
    QueryInvitesForUserResponse,
    QueryLatestEventsAndStateRequest,
    QueryLatestEventsAndStateResponse,
    QueryMembershipForUserRequest,
    QueryMembershipForUserResponse,
    QueryMembershipsForRoomRequest,
    QueryMembershipsForRoomResponse,
    QueryMissingEventsRequest,
    QueryMissingEventsResponse,
    QueryRoomVersionCapabilitiesResponse,
    QueryRoomVersionForRoomRequest,
    QueryRoomVersionForRoomResponse,
    QueryServerAllowedToSeeEventRequest,
    QueryServerAllowedToSeeEventResponse,
    QueryStateAfterEventsRequest,
    QueryStateAfterEventsResponse,
    QueryStateAndAuthChainRequest,
    QueryStateAndAuthChainResponse,
    StateKeyTuple,
    error_responses,
)
from roomserver.errors import not_found
from roomserver.matrix.events import Event
from roomserver.matrix.hashing import reference_sha256
from roomserver.matrix.room_versions import KNOWN_ROOM_VERSIONS
from roomserver.query import Query

router = APIRouter(prefix="/api/roomserver", tags=["query"])


def _query(request: Request) -> Query:
    q: Query = request.app.state.query
    if not q.server_name:  # this homeserver's name, for backfills it asks for itself
        q.server_name = request.app.state.settings.server_name
    return q


def _tuples(tuples: list[StateKeyTuple] | None) -> list[tuple[str, str]] | None:
    return [t.as_tuple() for t in tuples] if tuples else None


def _headered(events: list[Event]) -> list[dict[str, Any]]:
    return [e.headered() for e in events]


def client_event(event: Event) -> dict[str, Any]:
    """An event in gomatrixserverlib's ``ClientEvent`` form: every field, the optional
    ones (``state_key``, ``unsigned``, ``redacts``) only when present."""
    out: dict[str, Any] = {
        "content": event.content,
        "event_id": event.event_id,
        "origin_server_ts": event.origin_server_ts,
        "room_id": event.room_id,
        "sender": event.sender,
        "type": event.type,
    }
    if event.state_key is not None:
        out["state_key"] = event.state_key
    unsigned = event.pdu.get("unsigned")
    if isinstance(unsigned, dict):
        out["unsigned"] = unsigned
    redacts = event.redacts
    if redacts is not None:
        out["redacts"] = redacts
    return out


def _nested(value: object) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(model: BaseModel) -> Response:
    """``model`` (made with ``model_construct`` from values the query layer produced) as
    JSON written by orjson. Answers carrying events can hold thousands of them: FastAPI
    would validate them again and pydantic serialise them several times slower; the
    schema tests (schemathesis) and the typed client keep the JSON true to the model."""
    return Response(orjson.dumps(dict(model), default=_nested), media_type="application/json")


# -- state -----------------------------------------------------------------------------------


@router.post(
    "/queryStateAfterEvents",
    summary="The state after some events",
    response_model=QueryStateAfterEventsResponse,
    responses=error_responses(),
)
async def query_state_after_events(
    body: QueryStateAfterEventsRequest, request: Request
) -> Response:
    """The room state a new event citing `prev_event_ids` would see: the state after each
    of them, resolved by the room version's state resolution when they differ. With
    `state_to_fetch`, only those (type, state key) pairs are read: a few keys of a room of
    any size cost the same.

    `room_exists` is false for an unknown room; `prev_events_exist` is false when a prev
    event is unknown, of another room, or has no known state (an outlier)."""
    answer = await _query(request).state_after_events(
        body.room_id, body.prev_event_ids or [], _tuples(body.state_to_fetch)
    )
    return json_response(
        QueryStateAfterEventsResponse.model_construct(
            room_id=body.room_id,
            prev_event_ids=body.prev_event_ids,
            state_to_fetch=body.state_to_fetch,
            room_exists=answer.room_exists,
            room_version=answer.room_version,
            prev_events_exist=answer.prev_events_exist,
            state_events=_headered(answer.state_events),
        )
    )


@router.post(
    "/queryLatestEventsAndState",
    summary="The forward extremities and current state of a room",
    response_model=QueryLatestEventsAndStateResponse,
    responses=error_responses(),
)
async def query_latest_events_and_state(
    body: QueryLatestEventsAndStateRequest, request: Request
) -> Response:
    """What a new event of the room builds on: its latest events (to cite as prev events,
    with their reference hashes), the depth it gets (one more than theirs), and the current
    state: all of it, or only `state_to_fetch` (e.g. the auth events of the new event), read
    without loading the rest.

    `room_exists` is false for an unknown room, or one known only from an invite."""
    answer = await _query(request).latest_events_and_state(
        body.room_id, _tuples(body.state_to_fetch)
    )
    return json_response(
        QueryLatestEventsAndStateResponse.model_construct(
            room_id=body.room_id,
            state_to_fetch=body.state_to_fetch,
            room_exists=answer.room_exists,
            room_version=answer.room_version,
            latest_events=[
                (e.event_id, {"sha256": reference_sha256(e.pdu, e.room_version)})
                for e in answer.latest_events
            ],
            state_events=_headered(answer.state_events),
            depth=answer.depth,
        )
    )


@router.post(
    "/queryStateAndAuthChain",
    summary="The state before an event, and its auth chain",
    response_model=QueryStateAndAuthChainResponse,
    responses=error_responses(),
)
async def query_state_and_auth_chain(
    body: QueryStateAndAuthChainRequest, request: Request
) -> Response:
    """What federation's `/state` and `send_join` answer: the state after `prev_event_ids`
    (resolved when their states differ) and the full auth chain of those state events and
    of `auth_event_ids` (included; unknown ones skipped).

    `room_exists` / `prev_events_exist` as for `queryStateAfterEvents`."""
    answer = await _query(request).state_and_auth_chain(
        body.room_id, body.prev_event_ids or [], body.auth_event_ids or []
    )
    return json_response(
        QueryStateAndAuthChainResponse.model_construct(
            room_id=body.room_id,
            prev_event_ids=body.prev_event_ids,
            auth_event_ids=body.auth_event_ids,
            resolve_state=body.resolve_state,
            room_exists=answer.room_exists,
            room_version=answer.room_version,
            prev_events_exist=answer.prev_events_exist,
            state_events=_headered(answer.state_events),
            auth_chain_events=_headered(answer.auth_chain_events),
        )
    )


# -- events and rooms ------------------------------------------------------------------------


@router.post(
    "/queryEventsByID",
    summary="Events by ID",
    response_model=QueryEventsByIDResponse,
    responses=error_responses(),
)
async def query_events_by_id(body: QueryEventsByIDRequest, request: Request) -> Response:
    """The stored events among `event_ids`, headered, in request order (each once); unknown
    IDs are left out. Events of several rooms may be asked at once."""
    events = await _query(request).events_by_id(body.event_ids or [])
    return json_response(
        QueryEventsByIDResponse.model_construct(event_ids=body.event_ids, events=_headered(events))
    )


@router.post(
    "/queryRoomVersionForRoom",
    summary="The room version of a room",
    response_model=QueryRoomVersionForRoomResponse,
    responses=error_responses("the room is unknown."),
)
async def query_room_version_for_room(
    body: QueryRoomVersionForRoomRequest, request: Request
) -> QueryRoomVersionForRoomResponse:
    """The version of a known room (also of one known only from an invite). Room versions
    never change: callers may cache the answer."""
    version = await _query(request).room_version_for_room(body.room_id)
    if version is None:
        raise not_found(f"room {body.room_id} is not known")
    return QueryRoomVersionForRoomResponse(room_version=version)


@router.post(
    "/queryRoomVersionCapabilities",
    summary="Room versions this server supports",
    response_model=QueryRoomVersionCapabilitiesResponse,
    responses=error_responses(),
)
async def query_room_version_capabilities(request: Request) -> QueryRoomVersionCapabilitiesResponse:
    """The default room version for new rooms (setting `ROOMSERVER_DEFAULT_ROOM_VERSION`) and
    every supported version, 1 to 12, all stable.

    The request body is an empty object (or absent)."""
    return QueryRoomVersionCapabilitiesResponse(
        default=request.app.state.settings.default_room_version,
        available={v: "stable" for v in KNOWN_ROOM_VERSIONS},
    )


# -- memberships -----------------------------------------------------------------------------


@router.post(
    "/queryMembershipForUser",
    summary="A user's membership of a room",
    response_model=QueryMembershipForUserResponse,
    responses=error_responses("the room is unknown."),
)
async def query_membership_for_user(
    body: QueryMembershipForUserRequest, request: Request
) -> QueryMembershipForUserResponse:
    """The user's current membership (from the room's current state) and the member event
    that set it. `has_been_in_room` is true once the user has joined (or left or been banned:
    an invite or knock alone does not count); `is_in_room` while they are joined."""
    found = await _query(request).membership_for_user(body.room_id, body.user_id)
    return QueryMembershipForUserResponse(
        event_id=found.event_id,
        has_been_in_room=found.has_been_in_room,
        is_in_room=found.is_in_room,
        membership=found.membership.content_value if found.membership is not None else None,
    )


@router.post(
    "/queryMembershipsForRoom",
    summary="The member events of a room, as a user may see them",
    response_model=QueryMembershipsForRoomResponse,
    responses=error_responses("the room is unknown."),
)
async def query_memberships_for_room(
    body: QueryMembershipsForRoomRequest, request: Request
) -> Response:
    """The room's `m.room.member` events in client form (`joined_only`: members with
    membership `join` only), as `sender` may know them: the current ones while the sender is
    joined; once they have left or been banned, those of the state after their last member
    event. `join_events` is null if the sender has never been in the room."""
    found = await _query(request).memberships_for_room(
        body.room_id, body.sender, joined_only=body.joined_only
    )
    events = found.member_events
    return json_response(
        QueryMembershipsForRoomResponse.model_construct(
            join_events=None if events is None else [client_event(e) for e in events],
            has_been_in_room=found.has_been_in_room,
        )
    )


@router.post(
    "/queryInvitesForUser",
    summary="Who invited a user to a room",
    response_model=QueryInvitesForUserResponse,
    responses=error_responses("the room is unknown."),
)
async def query_invites_for_user(
    body: QueryInvitesForUserRequest, request: Request
) -> QueryInvitesForUserResponse:
    """The senders of the user's pending invites to the room (an invite stops being pending
    when the user's membership changes): the servers to ask when accepting or rejecting it.
    Works for rooms known only from an invite."""
    senders = await _query(request).invites_for_user(body.room_id, body.target_user_id)
    return QueryInvitesForUserResponse(invite_sender_user_ids=senders)


# -- other servers ---------------------------------------------------------------------------


@router.post(
    "/queryServerAllowedToSeeEvent",
    summary="Whether a server may see an event",
    response_model=QueryServerAllowedToSeeEventResponse,
    responses=error_responses("the event is unknown."),
)
async def query_server_allowed_to_see_event(
    body: QueryServerAllowedToSeeEventRequest, request: Request
) -> QueryServerAllowedToSeeEventResponse:
    """History visibility for a server, by the room's `history_visibility` and the
    memberships of the server's users at the event: yes if `world_readable`; yes if one of
    its users was joined; yes if `shared` and one of its users is joined now; yes if
    `invited` and one of its users was invited; otherwise no (a missing or unknown setting
    counts as `shared`).

    "At the event" is judged on both sides of it (the state before it and after it): a
    server sees its own users' joins and leaves, and a `history_visibility` change is
    visible to whoever could see the room before or after it. Rejected events are never
    visible; events with no known state (outliers) count as `shared`."""
    allowed = await _query(request).server_allowed_to_see_event(body.event_id, body.server_name)
    return QueryServerAllowedToSeeEventResponse(can_see_event=allowed)


@router.post(
    "/queryMissingEvents",
    summary="Events a server is missing (/get_missing_events)",
    response_model=QueryMissingEventsResponse,
    responses=error_responses("none of `latest_events` is known (in `room_id`, if given)."),
)
async def query_missing_events(body: QueryMissingEventsRequest, request: Request) -> Response:
    """The walk of federation's `/get_missing_events`: breadth first back from the prev events
    of `latest_events` (those not included), never into or past `earliest_events`, at most
    `limit` events, oldest first. Only events `server_name` may see (as
    `queryServerAllowedToSeeEvent` decides) are returned, and the walk does not go past
    one it may not see. Rejected events are left out (the walk goes on through them)."""
    events = await _query(request).missing_events(
        body.earliest_events or [],
        body.latest_events or [],
        body.limit,
        body.server_name,
        room_id=body.room_id,
        min_depth=body.min_depth,
    )
    return json_response(QueryMissingEventsResponse.model_construct(events=_headered(events)))


@router.post(
    "/queryBackfill",
    summary="History before some events, for another server (/backfill)",
    response_model=QueryBackfillResponse,
    responses=error_responses("the room, or every one of `earliest_event_ids`, is unknown."),
)
async def query_backfill(body: QueryBackfillRequest, request: Request) -> Response:
    """Serves federation's `/backfill`: the events `earliest_event_ids` and those before
    them, breadth first over prev events, at most `limit` in all, each once, newest first.
    Only events `server_name` may see are returned, and the walk does not go past one it
    may not see; rejected events are left out.

    When `server_name` is this homeserver's own name the answer is what the roomserver holds,
    unfiltered (fetching missing history from other servers is not done here yet)."""
    events = await _query(request).backfill(
        body.room_id, body.earliest_event_ids or [], body.limit, body.server_name
    )
    return json_response(QueryBackfillResponse.model_construct(events=_headered(events)))
