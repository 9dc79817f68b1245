"""Room versions 1-12 as data.

Every behaviour that differs between room versions is a field here, so the rest of the
protocol layer asks ``version.knock_join_rule`` instead of comparing version strings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

from .errors import UnsupportedRoomVersion


class EventFormat(Enum):
    """How event IDs are made and how events reference each other."""

    V1 = 1
    """Rooms v1, v2: ``$localpart:server`` carried in the event; references are ``[id, hashes]``."""
    V2 = 2
    """Room v3: ``$`` + standard unpadded base64 of the reference hash; references are IDs."""
    V3 = 3
    """Rooms v4+: ``$`` + URL-safe unpadded base64 of the reference hash."""


class StateResAlgorithm(Enum):
    V1 = "v1"
    V2 = "v2"
    V2_1 = "v2.1"


class RedactionRules(Enum):
    """Which redaction algorithm applies (each one is the previous plus changes)."""

    V1 = 1
    """Rooms v1-v5: the original algorithm (``m.room.aliases`` keeps ``aliases``)."""
    V6 = 6
    """Rooms v6-v7: ``m.room.aliases`` no longer keeps ``aliases`` (MSC2432)."""
    V8 = 8
    """Room v8: ``m.room.join_rules`` also keeps ``allow``."""
    V9 = 9
    """Rooms v9-v10: ``m.room.member`` also keeps ``join_authorised_via_users_server``."""
    V11 = 11
    """Rooms v11+: MSC2176 (create keeps all content, power levels keep ``invite``,
    redaction keeps ``redacts``) and ``origin``/``membership``… top-level keys trimmed."""


@dataclass(frozen=True, slots=True)
class RoomVersion:
    identifier: str
    event_format: EventFormat
    state_res: StateResAlgorithm
    redaction: RedactionRules
    enforce_key_validity: bool = False
    """v5+: a signing key must be valid at the event's ``origin_server_ts``."""
    special_case_aliases_auth: bool = True
    """v1-v5: ``m.room.aliases`` has its own auth rule (and redaction rule)."""
    strict_canonical_json: bool = False
    """v6+: no floats, integers only in [-(2**53)+1, 2**53-1]."""
    limit_notifications_power_levels: bool = False
    """v6+: changes to ``notifications`` in power levels are checked like other keys."""
    knock_join_rule: bool = False
    """v7+: the ``knock`` join rule and ``knock`` membership."""
    restricted_join_rule: bool = False
    """v8+: the ``restricted`` join rule (joins authorised via ``join_authorised_via_users_server``)."""
    knock_restricted_join_rule: bool = False
    """v10+: the ``knock_restricted`` join rule."""
    enforce_int_power_levels: bool = False
    """v10+: power level values must be integers, not strings."""
    implicit_room_creator: bool = False
    """v11+: the creator is the create event's sender; ``content.creator`` is ignored."""
    room_id_from_create_event: bool = False
    """v12: the create event has no room ID; the room ID is ``!`` + the create event's ID hash."""
    privileged_creators: bool = False
    """v12: creators (sender + ``additional_creators``) rank above every power level."""

    def __str__(self) -> str:
        return self.identifier

    @property
    def event_ids_in_events(self) -> bool:
        """v1/v2 events carry their own ``event_id``; later versions derive it from the hash."""
        return self.event_format is EventFormat.V1


def _next(prev: RoomVersion, identifier: str, **changes: object) -> RoomVersion:
    return dataclasses.replace(prev, identifier=identifier, **changes)  # type: ignore[arg-type]


V1 = RoomVersion("1", EventFormat.V1, StateResAlgorithm.V1, RedactionRules.V1)
V2 = _next(V1, "2", state_res=StateResAlgorithm.V2)
V3 = _next(V2, "3", event_format=EventFormat.V2)
V4 = _next(V3, "4", event_format=EventFormat.V3)
V5 = _next(V4, "5", enforce_key_validity=True)
V6 = _next(
    V5,
    "6",
    redaction=RedactionRules.V6,
    special_case_aliases_auth=False,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
)
V7 = _next(V6, "7", knock_join_rule=True)
V8 = _next(V7, "8", restricted_join_rule=True, redaction=RedactionRules.V8)
V9 = _next(V8, "9", redaction=RedactionRules.V9)
V10 = _next(V9, "10", knock_restricted_join_rule=True, enforce_int_power_levels=True)
V11 = _next(V10, "11", implicit_room_creator=True, redaction=RedactionRules.V11)
V12 = _next(
    V11,
    "12",
    state_res=StateResAlgorithm.V2_1,
    room_id_from_create_event=True,
    privileged_creators=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12)
}

DEFAULT_ROOM_VERSION = V10


def room_version(identifier: object) -> RoomVersion:
    """The room version called ``identifier``; raises :class:`UnsupportedRoomVersion` if unknown."""
    if not isinstance(identifier, str):
        raise UnsupportedRoomVersion(f"room version must be a string, got {identifier!r}")
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except KeyError:
        raise UnsupportedRoomVersion(f"unsupported room version {identifier!r}") from None
