"""Pydantic models of the wire JSON, as in Dendrite's roomserver/api at 6d832ae544.

Kept shallow on purpose: events stay plain dicts (headered PDUs) and are parsed by the
protocol layer, which validates them far more strictly than a schema could. Lists that Go
would send as ``null`` are accepted as ``null``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

HeaderedEvent = dict[str, Any]

_EXAMPLE_EVENT: dict[str, Any] = {
    "_room_version": "10",
    "event_id": "$Vxk3iXeIMJ0eHwVsO6Pj5u1lA9Z1aKqJ8bq8nWnQyXs",
    "type": "m.room.message",
    "room_id": "!room:example.org",
    "sender": "@alice:example.org",
    "content": {"msgtype": "m.text", "body": "hello"},
    "depth": 5,
    "origin_server_ts": 1700000000000,
    "prev_events": ["$prev"],
    "auth_events": ["$create", "$power", "$alice_join"],
    "hashes": {"sha256": "…"},
    "signatures": {"example.org": {"ed25519:a1": "…"}},
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TransactionID(_Model):
    """A client transaction, so a retried send maps to the event it made the first time."""

    session_id: int = Field(description="The device session that sent the event.")
    id: str = Field(description="The client's transaction ID.")


class InputRoomEvent(_Model):
    kind: Literal[1, 2, 3] = Field(
        description="1 = outlier (auth/state event with no known state: stored, auth-checked "
        "against its auth events, no state, no output); 2 = new event of the room; "
        "3 = backfilled (historical) event: stored with its state, never changes the latest "
        "events or the current state. An outlier sent again as 2 or 3 gets its state then."
    )
    event: HeaderedEvent = Field(
        description="The headered PDU: the event as signed, plus `_room_version` "
        "(and `event_id` for room versions 3 and later).",
        examples=[_EXAMPLE_EVENT],
    )
    auth_event_ids: list[str] | None = Field(
        default=None,
        description="The event's auth events (informational: the PDU's own list is used).",
    )
    has_state: bool = Field(
        default=False, description="True if `state_event_ids` is the full state before the event."
    )
    state_event_ids: list[str] | None = Field(
        default=None,
        description="The state before the event, when known (e.g. from a federation join); "
        "otherwise it is computed from the prev events.",
    )
    send_as_server: str = Field(
        default="", description="Passed through to the output stream for the federation sender."
    )
    transaction_id: TransactionID | None = None


class InviteStrippedState(_Model):
    model_config = ConfigDict(extra="allow")
    type: str
    state_key: str
    content: dict[str, Any]
    sender: str


class InputInviteEvent(_Model):
    room_version: str = Field(examples=["10"])
    event: HeaderedEvent = Field(description="The headered invite `m.room.member` event.")
    invite_room_state: list[InviteStrippedState] | None = Field(
        default=None, description="Stripped state of the room shown to the invitee."
    )
    send_as_server: str = ""
    transaction_id: TransactionID | None = None


class InputRoomEventsRequest(_Model):
    input_room_events: list[InputRoomEvent] | None = None
    input_invite_events: list[InputInviteEvent] | None = None


Outcome = Literal["accepted", "rejected", "soft_failed", "already_known"]


class InputResult(_Model):
    event_id: str
    outcome: Outcome = Field(
        description="accepted: stored and part of the room; rejected: stored, marked rejected "
        "by the auth rules (never part of any state); soft_failed: allowed by its own history "
        "but not by the room's current state, stored, not a latest event, not sent to output; "
        "already_known: stored before (idempotent retry)."
    )
    reason: str | None = Field(default=None, description="Why it was rejected or soft-failed.")


class InputRoomEventsResponse(_Model):
    event_id: str = Field(
        default="", description="As in Dendrite: the ID of the last event processed."
    )
    results: list[InputResult] = Field(
        default_factory=list,
        description="One entry per input room event, in request order, then one per input "
        "invite event (`accepted`; `already_known`; `rejected` when the user is already "
        "joined).",
    )


# -- identifiers: their grammar in the schema (documentation; the query layer checks them
# with roomserver.matrix.ids and answers 400 M_INVALID_PARAM, with the precise reason) ------

_HOST = r"(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.\-]{1,255})(:[0-9]{1,5})?"


def _pattern(pattern: str, description: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "description": description})


RoomIDStr = Annotated[
    str,
    _pattern(
        rf"^(![^:]+:{_HOST}|![A-Za-z0-9_\-]{{43}})$",
        "A room ID: `!opaque:server`, or in room version 12 `!` + 43 URL-safe base64.",
    ),
]
EventIDStr = Annotated[
    str,
    _pattern(
        rf"^\$([A-Za-z0-9+/_\-]{{43}}|[^:]+:{_HOST})$",
        "An event ID: `$` + 43 base64 characters (room versions 3+), or `$opaque:server`.",
    ),
]
UserIDStr = Annotated[str, _pattern(rf"^@[^:]*:{_HOST}$", "A user ID: `@localpart:server`.")]
AliasStr = Annotated[str, _pattern(rf"^#[^:]+:{_HOST}$", "A room alias: `#localpart:server`.")]
ServerNameStr = Annotated[
    str, _pattern(rf"^{_HOST}$", "A server name: a host name or IP literal, optionally `:port`.")
]


# -- shared pieces ---------------------------------------------------------------------------

_ROOM = "!room:example.org"
_EVENT_ID = "$Vxk3iXeIMJ0eHwVsO6Pj5u1lA9Z1aKqJ8bq8nWnQyXs"
_OTHER_EVENT_ID = "$q4Rt9mYcL2nW8xB1kP0sJ7vD3fH6gZ5aE2uN9iO4wTy"
_ROOM_FIELD = Field(description="The room ID.", examples=[_ROOM])


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    """Model config with request/response examples (shown by /docs, used by schemathesis)."""
    return ConfigDict(extra="ignore", json_schema_extra={"examples": list(examples)})


class MatrixErrorBody(BaseModel):
    """Every error: a Matrix error code and a message. Some errors add fields (e.g.
    `missing_event_ids` with `M_MISSING_EVENTS`)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"errcode": "M_NOT_FOUND", "error": "room !room:example.org is not known"}]
        },
    )
    errcode: str = Field(
        description="`M_NOT_FOUND` (404: unknown room, event or alias), `M_INVALID_PARAM` "
        "(400: a malformed identifier or value), `M_BAD_JSON` / `M_NOT_JSON` (400: the body "
        "does not match the schema), `M_TOO_LARGE` (413), `M_UNKNOWN` (500: a bug)."
    )
    error: str = Field(description="What went wrong, for humans.")


def error_responses(not_found_when: str | None = None) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of an endpoint's errors: any 4xx is a
    :class:`MatrixErrorBody` (this also replaces FastAPI's 422, never sent: a body that
    does not validate is a 400), and a 404 says when it happens."""
    out: dict[int | str, dict[str, Any]] = {
        "4XX": {
            "model": MatrixErrorBody,
            "description": "A Matrix error: 400 for a body that does not match the schema "
            "(`M_BAD_JSON`, `M_NOT_JSON`) or a malformed identifier or value "
            "(`M_INVALID_PARAM`), 413 for a body over the size limit (`M_TOO_LARGE`).",
        }
    }
    if not_found_when is not None:
        out[404] = {"model": MatrixErrorBody, "description": f"`M_NOT_FOUND`: {not_found_when}"}
    return out


class StateKeyTuple(_Model):
    """A (type, state key) pair. Dendrite's form is `{"EventType", "StateKey"}`;
    `{"type", "state_key"}` is accepted too."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"EventType": "m.room.member", "StateKey": "@alice:example.org"},
                {"type": "m.room.power_levels", "state_key": ""},
            ]
        },
    )
    EventType: str = Field(description="The event type, e.g. `m.room.member`.")
    StateKey: str = Field(default="", description='The state key (`""` if absent).')

    @model_validator(mode="before")
    @classmethod
    def _accept_snake_case(cls, data: Any) -> Any:
        if isinstance(data, dict) and "EventType" not in data and "type" in data:
            return {"EventType": data["type"], "StateKey": data.get("state_key", "")}
        return data

    def as_tuple(self) -> tuple[str, str]:
        return (self.EventType, self.StateKey)


EventReference = tuple[str, dict[str, str]]


# -- room versions ---------------------------------------------------------------------------


class QueryRoomVersionCapabilitiesResponse(_Model):
    model_config = _examples({"default": "10", "available": {"1": "stable", "10": "stable"}})
    default: str = Field(description="Room version for new rooms.", examples=["10"])
    available: dict[str, str] = Field(
        description="Every supported room version and its stability.",
        examples=[{"1": "stable", "10": "stable", "12": "stable"}],
    )


class QueryRoomVersionForRoomRequest(_Model):
    model_config = _examples({"room_id": _ROOM})
    room_id: RoomIDStr = _ROOM_FIELD


class QueryRoomVersionForRoomResponse(_Model):
    model_config = _examples({"room_version": "10"})
    room_version: str = Field(description="The room's version, e.g. `10`.")


# -- state -----------------------------------------------------------------------------------


class QueryStateAfterEventsRequest(_Model):
    model_config = _examples(
        {
            "room_id": _ROOM,
            "prev_event_ids": [_EVENT_ID],
            "state_to_fetch": [{"EventType": "m.room.member", "StateKey": "@alice:example.org"}],
        }
    )
    room_id: RoomIDStr = _ROOM_FIELD
    prev_event_ids: list[EventIDStr] | None = Field(
        default=None,
        description="The events whose combined state after is wanted (the prev events of "
        "a new event). Empty: the empty state.",
    )
    state_to_fetch: list[StateKeyTuple] | None = Field(
        default=None,
        description="Only these (type, state key) pairs, read without the rest of the "
        "state; empty or null = the whole state.",
    )


class QueryStateAfterEventsResponse(_Model):
    model_config = _examples(
        {
            "room_id": _ROOM,
            "prev_event_ids": [_EVENT_ID],
            "state_to_fetch": None,
            "room_exists": True,
            "room_version": "10",
            "prev_events_exist": True,
            "state_events": [_EXAMPLE_EVENT],
        }
    )
    room_id: str = Field(default="", description="Copy of the request.")
    prev_event_ids: list[str] | None = Field(default=None, description="Copy of the request.")
    state_to_fetch: list[StateKeyTuple] | None = Field(
        default=None, description="Copy of the request."
    )
    room_exists: bool = Field(description="False if the room is unknown (or only a stub).")
    room_version: str = ""
    prev_events_exist: bool = Field(
        default=False,
        description="False if a prev event is unknown, of another room, or has no known "
        "state (an outlier); `state_events` is then empty.",
    )
    state_events: list[HeaderedEvent] = Field(
        default_factory=list, description="The state events, headered, in no set order."
    )


class QueryLatestEventsAndStateRequest(_Model):
    model_config = _examples(
        {
            "room_id": _ROOM,
            "state_to_fetch": [
                {"EventType": "m.room.create", "StateKey": ""},
                {"EventType": "m.room.power_levels", "StateKey": ""},
                {"EventType": "m.room.member", "StateKey": "@alice:example.org"},
            ],
        }
    )
    room_id: RoomIDStr = _ROOM_FIELD
    state_to_fetch: list[StateKeyTuple] | None = Field(
        default=None,
        description="Only these (type, state key) pairs of the current state, read without "
        "the rest of it; empty or null = the whole current state.",
    )


class QueryLatestEventsAndStateResponse(_Model):
    model_config = _examples(
        {
            "room_id": _ROOM,
            "state_to_fetch": [{"EventType": "m.room.create", "StateKey": ""}],
            "room_exists": True,
            "room_version": "10",
            "latest_events": [
                [_EVENT_ID, {"sha256": "K0b5cP4nX9vQ2mR7tL1yW8zA3dF6gH0jS5uE4iO2aB8"}]
            ],
            "state_events": [_EXAMPLE_EVENT],
            "depth": 6,
        }
    )
    room_id: str = Field(default="", description="Copy of the request.")
    state_to_fetch: list[StateKeyTuple] | None = Field(
        default=None, description="Copy of the request."
    )
    room_exists: bool = Field(description="False if the room is unknown (or only a stub).")
    room_version: str = ""
    latest_events: list[EventReference] = Field(
        default_factory=list,
        description='The forward extremities as `[event_id, {"sha256": reference hash}]`: '
        "the prev events of a new event.",
    )
    state_events: list[HeaderedEvent] = Field(
        default_factory=list, description="The state events, headered, in no set order."
    )
    depth: int = Field(
        default=0,
        description="One more than the greatest depth of the latest events: the depth of a "
        "new event.",
    )


class QueryStateAndAuthChainRequest(_Model):
    model_config = _examples(
        {
            "room_id": _ROOM,
            "prev_event_ids": [_EVENT_ID],
            "auth_event_ids": [_OTHER_EVENT_ID],
            "resolve_state": True,
        }
    )
    room_id: RoomIDStr = _ROOM_FIELD
    prev_event_ids: list[EventIDStr] | None = Field(
        default=None,
        description="The prev events of a (possibly hypothetical) event: the state after "
        "them is returned.",
    )
    auth_event_ids: list[EventIDStr] | None = Field(
        default=None,
        description="Auth events whose auth chain is wanted as well (unknown ones skipped).",
    )
    resolve_state: bool = Field(
        default=False,
        description="Accepted for compatibility: the state is always resolved when the prev "
        "events' states differ (an unresolved union is not a room state).",
    )


class QueryStateAndAuthChainResponse(_Model):
    model_config = _examples(
        {
            "room_id": _ROOM,
            "prev_event_ids": [_EVENT_ID],
            "auth_event_ids": [],
            "resolve_state": False,
            "room_exists": True,
            "room_version": "10",
            "prev_events_exist": True,
            "state_events": [_EXAMPLE_EVENT],
            "auth_chain_events": [_EXAMPLE_EVENT],
        }
    )
    room_id: str = Field(default="", description="Copy of the request.")
    prev_event_ids: list[str] | None = Field(default=None, description="Copy of the request.")
    auth_event_ids: list[str] | None = Field(default=None, description="Copy of the request.")
    resolve_state: bool = Field(default=False, description="Copy of the request.")
    room_exists: bool = Field(description="False if the room is unknown (or only a stub).")
    room_version: str = ""
    prev_events_exist: bool = Field(
        default=False,
        description="False if a prev event is unknown, of another room, or an outlier.",
    )
    state_events: list[HeaderedEvent] = Field(
        default_factory=list, description="The state after the prev events, headered."
    )
    auth_chain_events: list[HeaderedEvent] = Field(
        default_factory=list,
        description="The auth chain of the state events and of `auth_event_ids` (those "
        "included), headered, each event after the events that authorise it.",
    )


# -- events ----------------------------------------------------------------------------------


class QueryEventsByIDRequest(_Model):
    model_config = _examples({"event_ids": [_EVENT_ID, _OTHER_EVENT_ID]})
    event_ids: list[EventIDStr] | None = Field(
        default=None, description="The event IDs to look up."
    )


class QueryEventsByIDResponse(_Model):
    model_config = _examples(
        {"event_ids": [_EVENT_ID, _OTHER_EVENT_ID], "events": [_EXAMPLE_EVENT]}
    )
    event_ids: list[str] | None = Field(default=None, description="Copy of the request.")
    events: list[HeaderedEvent] = Field(
        default_factory=list,
        description="The known events among those asked, headered, in request order; "
        "unknown IDs are left out.",
    )


# -- memberships -----------------------------------------------------------------------------

_ALICE = "@alice:example.org"


def _absent_if_none(value: object) -> bool:
    return value is None


class ClientEvent(_Model):
    """An event as clients see it: gomatrixserverlib's `ClientEvent` with every field
    (optional ones left out when absent)."""

    model_config = ConfigDict(extra="ignore")
    content: dict[str, Any]
    event_id: str
    origin_server_ts: int
    room_id: str
    sender: str
    state_key: str | None = Field(
        default=None, exclude_if=_absent_if_none, description="Present for state events."
    )
    type: str
    unsigned: dict[str, Any] | None = Field(
        default=None, exclude_if=_absent_if_none, description="Present if the PDU has it."
    )
    redacts: str | None = Field(
        default=None, exclude_if=_absent_if_none, description="Present for redactions."
    )


_EXAMPLE_MEMBER: dict[str, Any] = {
    "content": {"membership": "join", "displayname": "Alice"},
    "event_id": _EVENT_ID,
    "origin_server_ts": 1700000000000,
    "room_id": _ROOM,
    "sender": _ALICE,
    "state_key": _ALICE,
    "type": "m.room.member",
}


class QueryMembershipForUserRequest(_Model):
    model_config = _examples({"room_id": _ROOM, "user_id": _ALICE})
    room_id: RoomIDStr = _ROOM_FIELD
    user_id: UserIDStr = Field(description="The user.", examples=[_ALICE])


class QueryMembershipForUserResponse(_Model):
    model_config = _examples(
        {"event_id": _EVENT_ID, "has_been_in_room": True, "is_in_room": True, "membership": "join"}
    )
    event_id: str = Field(
        default="",
        description="The user's current `m.room.member` event (empty if they have none).",
    )
    has_been_in_room: bool = Field(
        description="True if the user is or was in the room (joined, or left or banned since; "
        "an invite or a knock alone does not count)."
    )
    is_in_room: bool = Field(description="True if the user is joined now.")
    membership: str | None = Field(
        default=None,
        description="Extension: the current membership (`join`, `invite`, `leave`, `ban`, "
        "`knock`), null if the user has no member event in the room.",
    )


class QueryMembershipsForRoomRequest(_Model):
    model_config = _examples({"joined_only": True, "room_id": _ROOM, "sender": _ALICE})
    joined_only: bool = Field(default=False, description="Only members whose membership is `join`.")
    room_id: RoomIDStr = _ROOM_FIELD
    sender: UserIDStr = Field(
        description="The user asking: the list is what they may know (see the endpoint).",
        examples=[_ALICE],
    )


class QueryMembershipsForRoomResponse(_Model):
    model_config = _examples({"join_events": [_EXAMPLE_MEMBER], "has_been_in_room": True})
    join_events: list[ClientEvent] | None = Field(
        default=None,
        description="The `m.room.member` events in client form (all memberships, or joins "
        "only); null if the sender has never been in the room.",
    )
    has_been_in_room: bool = Field(description="True if the sender is or was in the room.")


class QueryInvitesForUserRequest(_Model):
    model_config = _examples({"room_id": _ROOM, "target_user_id": "@bob:example.org"})
    room_id: RoomIDStr = _ROOM_FIELD
    target_user_id: UserIDStr = Field(
        description="The invited user.", examples=["@bob:example.org"]
    )


class QueryInvitesForUserResponse(_Model):
    model_config = _examples({"invite_sender_user_ids": [_ALICE]})
    invite_sender_user_ids: list[str] = Field(
        default_factory=list,
        description="Who sent the user's pending (not yet answered) invites to the room.",
    )


# -- other servers ---------------------------------------------------------------------------


class QueryServerAllowedToSeeEventRequest(_Model):
    model_config = _examples({"event_id": _EVENT_ID, "server_name": "other.example.com"})
    event_id: EventIDStr = Field(description="The event.", examples=[_EVENT_ID])
    server_name: ServerNameStr = Field(
        description="The server asking.", examples=["other.example.com"]
    )


class QueryServerAllowedToSeeEventResponse(_Model):
    model_config = _examples({"can_see_event": True})
    can_see_event: bool = Field(description="Whether the server may see the event.")


class QueryMissingEventsRequest(_Model):
    model_config = _examples(
        {
            "earliest_events": [_OTHER_EVENT_ID],
            "latest_events": [_EVENT_ID],
            "limit": 10,
            "server_name": "other.example.com",
        }
    )
    earliest_events: list[EventIDStr] | None = Field(
        default=None,
        description="Events the asking server has: the walk stops there (not included).",
    )
    latest_events: list[EventIDStr] | None = Field(
        default=None, description="Events whose missing predecessors are wanted (not included)."
    )
    limit: int = Field(
        default=10,
        ge=0,
        description="At most this many events (the spec's default, 10, if absent; capped at "
        "10,000).",
    )
    server_name: ServerNameStr = Field(
        description="The server asking.", examples=["other.example.com"]
    )
    room_id: RoomIDStr | None = Field(
        default=None,
        description="Extension: the room (as in the federation path); latest events of other "
        "rooms then count as unknown. Otherwise the room of the latest events.",
    )
    min_depth: int = Field(
        default=0,
        ge=0,
        description="Extension (as in `/get_missing_events`): events below this depth are "
        "not returned nor walked past.",
    )


class QueryMissingEventsResponse(_Model):
    model_config = _examples({"events": [_EXAMPLE_EVENT]})
    events: list[HeaderedEvent] = Field(
        default_factory=list,
        description="The missing events the server may see, headered, oldest first.",
    )


class QueryBackfillRequest(_Model):
    model_config = _examples(
        {
            "room_id": _ROOM,
            "earliest_event_ids": [_EVENT_ID],
            "limit": 50,
            "server_name": "other.example.com",
        }
    )
    room_id: RoomIDStr = _ROOM_FIELD
    earliest_event_ids: list[EventIDStr] | None = Field(
        default=None, description="The events to backfill from (included, as in `/backfill`)."
    )
    limit: int = Field(
        default=10, ge=0, description="At most this many events in all (capped at 10,000)."
    )
    server_name: ServerNameStr = Field(
        description="The server asking. This homeserver's own name: no visibility filter.",
        examples=["other.example.com"],
    )


class QueryBackfillResponse(_Model):
    model_config = _examples({"events": [_EXAMPLE_EVENT]})
    events: list[HeaderedEvent] = Field(
        default_factory=list,
        description="The events, headered, breadth first from the given ones (newest first).",
    )


# -- aliases ---------------------------------------------------------------------------------

_ALIAS = "#lobby:example.org"


class SetRoomAliasRequest(_Model):
    model_config = _examples({"user_id": _ALICE, "alias": _ALIAS, "room_id": _ROOM})
    user_id: UserIDStr = Field(
        description="Who sets the alias (kept as its creator).", examples=[_ALICE]
    )
    alias: AliasStr = Field(description="The new alias.", examples=[_ALIAS])
    room_id: RoomIDStr = _ROOM_FIELD


class SetRoomAliasResponse(_Model):
    model_config = _examples({"alias_exists": False})
    alias_exists: bool = Field(
        description="True if the alias already existed: nothing was changed."
    )


class GetRoomIDForAliasRequest(_Model):
    model_config = _examples({"alias": _ALIAS})
    alias: AliasStr = Field(description="The alias to look up.", examples=[_ALIAS])


class GetRoomIDForAliasResponse(_Model):
    model_config = _examples({"room_id": _ROOM})
    room_id: str = Field(description="The room the alias points at.")


class GetAliasesForRoomIDRequest(_Model):
    model_config = _examples({"room_id": _ROOM})
    room_id: RoomIDStr = _ROOM_FIELD


class GetAliasesForRoomIDResponse(_Model):
    model_config = _examples({"aliases": [_ALIAS]})
    aliases: list[str] = Field(default_factory=list, description="The room's aliases, sorted.")


class GetCreatorIDForAliasRequest(_Model):
    model_config = _examples({"alias": _ALIAS})
    alias: AliasStr = Field(description="The alias.", examples=[_ALIAS])


class GetCreatorIDForAliasResponse(_Model):
    model_config = _examples({"user_id": _ALICE})
    user_id: str = Field(description="Who created the alias.")


class RemoveRoomAliasRequest(_Model):
    model_config = _examples({"user_id": _ALICE, "alias": _ALIAS})
    user_id: UserIDStr = Field(
        description="Who removes it (checked as a user ID; permission is the caller's business).",
        examples=[_ALICE],
    )
    alias: AliasStr = Field(description="The alias to remove.", examples=[_ALIAS])


class RemoveRoomAliasResponse(_Model):
    model_config = _examples({})
