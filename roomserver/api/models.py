"""Pydantic models of the wire JSON, as in Dendrite's roomserver/api at 6d832ae544.

Kept shallow on purpose: events stay plain dicts (headered PDUs) and are parsed by the
protocol layer, which validates them far more strictly than a schema could. Lists that Go
would send as ``null`` are accepted as ``null``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
        "events or the current state."
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
        default_factory=list, description="One entry per input room event, in request order."
    )


class StateKeyTuple(_Model):
    """A (type, state key) pair; Dendrite's form is ``{"EventType", "StateKey"}``."""

    EventType: str
    StateKey: str

    @model_validator(mode="before")
    @classmethod
    def _accept_snake_case(cls, data: Any) -> Any:
        if isinstance(data, dict) and "EventType" not in data and "type" in data:
            return {"EventType": data["type"], "StateKey": data.get("state_key", "")}
        return data

    def as_tuple(self) -> tuple[str, str]:
        return (self.EventType, self.StateKey)


class QueryRoomVersionCapabilitiesResponse(_Model):
    default: str = Field(description="Room version for new rooms.", examples=["10"])
    available: dict[str, str] = Field(
        description="Every supported room version and its stability.",
        examples=[{"1": "stable", "10": "stable", "12": "stable"}],
    )


class QueryStateAfterEventsRequest(_Model):
    room_id: str = Field(examples=["!room:example.org"])
    prev_event_ids: list[str] | None = Field(
        default=None, description="The events whose combined state after is wanted."
    )
    state_to_fetch: list[StateKeyTuple] | None = Field(
        default=None, description="Only these (type, state key) pairs; empty or null = all."
    )


class QueryStateAfterEventsResponse(_Model):
    room_exists: bool
    room_version: str = ""
    prev_events_exist: bool = False
    state_events: list[HeaderedEvent] = Field(default_factory=list)


class QueryLatestEventsAndStateRequest(_Model):
    room_id: str = Field(examples=["!room:example.org"])
    state_to_fetch: list[StateKeyTuple] | None = Field(
        default=None, description="Only these (type, state key) pairs; empty or null = all."
    )


EventReference = tuple[str, dict[str, str]]


class QueryLatestEventsAndStateResponse(_Model):
    room_exists: bool
    room_version: str = ""
    latest_events: list[EventReference] = Field(
        default_factory=list,
        description='The forward extremities as `[event_id, {"sha256": reference hash}]`.',
    )
    state_events: list[HeaderedEvent] = Field(default_factory=list)
    depth: int = Field(default=0, description="The greatest depth of the latest events.")


class QueryEventsByIDRequest(_Model):
    event_ids: list[str] | None = None


class QueryEventsByIDResponse(_Model):
    events: list[HeaderedEvent] = Field(
        default_factory=list, description="The known events among those asked, in order."
    )


class QueryRoomVersionForRoomRequest(_Model):
    room_id: str


class QueryRoomVersionForRoomResponse(_Model):
    room_version: str
