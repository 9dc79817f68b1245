"""The roomserver's own vocabulary: numeric IDs (NIDs) and state entries.

String identifiers (room IDs, event IDs, event types, state keys) are mapped to local integers
once, so that state, events and memberships are stored and compared as small integers. NIDs
are never 0 (0 means "none" in the database) and never leave the service: the API layer maps
them back to strings.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, TypeAlias

RoomNID: TypeAlias = int
EventNID: TypeAlias = int
EventTypeNID: TypeAlias = int
EventStateKeyNID: TypeAlias = int
StateSnapshotNID: TypeAlias = int
StateBlockNID: TypeAlias = int


class StateKeyTuple(NamedTuple):
    """A ``(type, state_key)`` pair as NIDs: the key of one piece of room state."""

    type_nid: EventTypeNID
    state_key_nid: EventStateKeyNID


class StateEntry(NamedTuple):
    """One piece of room state: which event holds ``(type, state_key)``."""

    type_nid: EventTypeNID
    state_key_nid: EventStateKeyNID
    event_nid: EventNID

    @property
    def key(self) -> StateKeyTuple:
        return StateKeyTuple(self.type_nid, self.state_key_nid)


StateMap: TypeAlias = dict[StateKeyTuple, EventNID]
"""A room state as NIDs: ``(type NID, state key NID) -> event NID``."""


# Well-known event types have fixed NIDs in every database (the migrations insert them), so
# code can name them without a lookup. Automatically assigned type NIDs start at 256.
class EventTypeNIDs(enum.IntEnum):
    CREATE = 1
    POWER_LEVELS = 2
    JOIN_RULES = 3
    THIRD_PARTY_INVITE = 4
    MEMBER = 5
    REDACTION = 6
    HISTORY_VISIBILITY = 7
    NAME = 8
    TOPIC = 9
    AVATAR = 10
    CANONICAL_ALIAS = 11
    ALIASES = 12
    GUEST_ACCESS = 13
    ENCRYPTION = 14
    SERVER_ACL = 15
    TOMBSTONE = 16
    PINNED_EVENTS = 17
    MESSAGE = 18
    ENCRYPTED = 19
    REACTION = 20


WELL_KNOWN_EVENT_TYPES: dict[str, EventTypeNID] = {
    "m.room.create": EventTypeNIDs.CREATE,
    "m.room.power_levels": EventTypeNIDs.POWER_LEVELS,
    "m.room.join_rules": EventTypeNIDs.JOIN_RULES,
    "m.room.third_party_invite": EventTypeNIDs.THIRD_PARTY_INVITE,
    "m.room.member": EventTypeNIDs.MEMBER,
    "m.room.redaction": EventTypeNIDs.REDACTION,
    "m.room.history_visibility": EventTypeNIDs.HISTORY_VISIBILITY,
    "m.room.name": EventTypeNIDs.NAME,
    "m.room.topic": EventTypeNIDs.TOPIC,
    "m.room.avatar": EventTypeNIDs.AVATAR,
    "m.room.canonical_alias": EventTypeNIDs.CANONICAL_ALIAS,
    "m.room.aliases": EventTypeNIDs.ALIASES,
    "m.room.guest_access": EventTypeNIDs.GUEST_ACCESS,
    "m.room.encryption": EventTypeNIDs.ENCRYPTION,
    "m.room.server_acl": EventTypeNIDs.SERVER_ACL,
    "m.room.tombstone": EventTypeNIDs.TOMBSTONE,
    "m.room.pinned_events": EventTypeNIDs.PINNED_EVENTS,
    "m.room.message": EventTypeNIDs.MESSAGE,
    "m.room.encrypted": EventTypeNIDs.ENCRYPTED,
    "m.reaction": EventTypeNIDs.REACTION,
}

EMPTY_STATE_KEY_NID: EventStateKeyNID = 1
"""The empty state key ``""`` (create, power levels, join rules, ...) is always NID 1."""

FIRST_AUTO_EVENT_TYPE_NID = 256
FIRST_AUTO_STATE_KEY_NID = 2


class Membership(enum.IntEnum):
    """A user's membership of a room, as stored (``memberships.membership``)."""

    LEAVE = 1
    INVITE = 2
    JOIN = 3
    KNOCK = 4
    BAN = 5

    @classmethod
    def from_content(cls, value: str) -> Membership:
        """``"join"`` -> :attr:`JOIN`; raises ``ValueError`` for an unknown membership."""
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"unknown membership {value!r}") from None

    @property
    def content_value(self) -> str:
        return self.name.lower()
