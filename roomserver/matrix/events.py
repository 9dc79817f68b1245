"""PDUs: parse and validate an event for its room version, and the headered wire form.

An :class:`Event` wraps the PDU dict exactly as received (what was hashed and signed) and
exposes its fields typed; it is immutable by convention, so it can be shared freely between
the auth rules, state resolution and storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .canonical import check_json_values, encode_canonical
from .errors import ContentHashMismatch, EventIDMismatch, EventTooLarge, InvalidEvent
from .hashing import compute_event_id, content_hash
from .room_versions import EventFormat, RoomVersion, room_version

MAX_PDU_BYTES = 65_536
MAX_ID_BYTES = 255
MAX_DEPTH = 2**63 - 1
ROOM_VERSION_KEY = "_room_version"

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
REDACTION = "m.room.redaction"
HISTORY_VISIBILITY = "m.room.history_visibility"
ALIASES = "m.room.aliases"


class Event:
    """A parsed, validated PDU of a known room version."""

    __slots__ = (
        "auth_event_ids",
        "content",
        "depth",
        "event_id",
        "origin_server_ts",
        "pdu",
        "prev_event_ids",
        "room_id",
        "room_version",
        "sender",
        "state_key",
        "type",
    )

    pdu: dict[str, Any]
    room_version: RoomVersion
    event_id: str
    room_id: str
    type: str
    state_key: str | None
    sender: str
    content: dict[str, Any]
    prev_event_ids: tuple[str, ...]
    auth_event_ids: tuple[str, ...]
    depth: int
    origin_server_ts: int

    def __init__(self, pdu: dict[str, Any], version: RoomVersion, event_id: str) -> None:
        """Use :func:`parse_pdu`; this trusts that ``pdu`` was validated."""
        self.pdu = pdu
        self.room_version = version
        self.event_id = event_id
        self.type = pdu["type"]
        self.state_key = pdu.get("state_key")
        self.sender = pdu["sender"]
        self.content = pdu["content"]
        self.depth = pdu["depth"]
        self.origin_server_ts = pdu["origin_server_ts"]
        if version.event_format is EventFormat.V1:
            self.prev_event_ids = tuple(ref[0] for ref in pdu["prev_events"])
            self.auth_event_ids = tuple(ref[0] for ref in pdu["auth_events"])
        else:
            self.prev_event_ids = tuple(pdu["prev_events"])
            self.auth_event_ids = tuple(pdu["auth_events"])
        room_id = pdu.get("room_id")
        if room_id is None and version.room_id_from_create_event:
            room_id = "!" + event_id[1:]  # v12 create event: the room is named after it
        self.room_id = room_id

    def __repr__(self) -> str:
        sk = "" if self.state_key is None else f", {self.state_key!r}"
        return f"<Event {self.event_id} {self.type}{sk}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)

    @property
    def is_state(self) -> bool:
        return self.state_key is not None

    @property
    def state_tuple(self) -> tuple[str, str]:
        """``(type, state_key)``; only meaningful for state events."""
        return (self.type, self.state_key if self.state_key is not None else "")

    @property
    def membership(self) -> str | None:
        m = self.content.get("membership") if self.type == MEMBER else None
        return m if isinstance(m, str) else None

    @property
    def redacts(self) -> str | None:
        """The event a redaction redacts: in ``content`` from v11, at the top level before."""
        if self.room_version.redaction.value >= 11:
            r = self.content.get("redacts")
        else:
            r = self.pdu.get("redacts")
        return r if isinstance(r, str) else None

    @property
    def signatures(self) -> dict[str, dict[str, str]]:
        sigs = self.pdu.get("signatures")
        return sigs if isinstance(sigs, dict) else {}

    def headered(self) -> dict[str, Any]:
        """The wire form between homeserver components: the PDU plus ``_room_version``."""
        out = dict(self.pdu)
        if self.room_version.event_format is not EventFormat.V1:
            out["event_id"] = self.event_id
        out[ROOM_VERSION_KEY] = self.room_version.identifier
        return out

    def client_form(self) -> dict[str, Any]:
        """The PDU with its ``event_id`` (always present, whatever the room version)."""
        out = dict(self.pdu)
        out["event_id"] = self.event_id
        return out


def _require(pdu: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = pdu.get(key)
    if value is None:
        raise InvalidEvent(f"missing field {key!r}")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InvalidEvent(f"field {key!r} must be {names}, got {type(value).__name__}")
    return value


def _check_short_string(pdu: Mapping[str, Any], key: str) -> None:
    value = pdu.get(key)
    if isinstance(value, str) and len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise EventTooLarge(f"field {key!r} is longer than {MAX_ID_BYTES} bytes")


def _check_refs(pdu: Mapping[str, Any], key: str, version: RoomVersion) -> None:
    refs = _require(pdu, key, list)
    if version.event_format is EventFormat.V1:
        for ref in refs:
            if (
                not isinstance(ref, list)
                or len(ref) != 2
                or not isinstance(ref[0], str)
                or not isinstance(ref[1], dict)
            ):
                raise InvalidEvent(f"{key!r} entries must be [event_id, hashes] in this room version")
    else:
        for ref in refs:
            if not isinstance(ref, str) or not ref.startswith("$"):
                raise InvalidEvent(f"{key!r} entries must be event IDs in this room version")


def parse_pdu(
    pdu: dict[str, Any],
    version: RoomVersion,
    *,
    event_id: str | None = None,
    check_hash: bool = True,
) -> Event:
    """Validate ``pdu`` for ``version`` and wrap it.

    ``event_id``, when the caller names one (v3+ events travel without it), must match the
    ID derived from the event. ``check_hash`` verifies ``hashes.sha256``; a mismatch means
    the event must be redacted before use, which callers decide (so it raises here).
    Signatures are checked separately (:mod:`roomserver.matrix.signing`): they need keys.
    """
    if not isinstance(pdu, dict):
        raise InvalidEvent("an event must be a JSON object")
    has_float = check_json_values(pdu, version.strict_canonical_json)
    pdu_for_size = {k: v for k, v in pdu.items() if k != "unsigned"}
    if len(encode_canonical(pdu_for_size, has_float=has_float)) > MAX_PDU_BYTES:
        raise EventTooLarge(f"event is larger than {MAX_PDU_BYTES} bytes")

    event_type = _require(pdu, "type", str)
    _require(pdu, "sender", str)
    _require(pdu, "content", dict)
    depth = _require(pdu, "depth", int)
    if not 0 <= depth <= MAX_DEPTH:
        raise InvalidEvent(f"depth {depth} is out of range")
    _require(pdu, "origin_server_ts", int)
    _require(pdu, "signatures", dict)
    hashes = _require(pdu, "hashes", dict)
    if not isinstance(hashes.get("sha256"), str):
        raise InvalidEvent("missing hashes.sha256")
    if "state_key" in pdu:
        _require(pdu, "state_key", str)
    if version.redaction.value < 11 and "redacts" in pdu:
        _require(pdu, "redacts", str)
    _check_refs(pdu, "prev_events", version)
    _check_refs(pdu, "auth_events", version)
    for key in ("type", "state_key", "sender", "room_id", "event_id"):
        _check_short_string(pdu, key)

    is_v12_create = version.room_id_from_create_event and event_type == CREATE
    if is_v12_create:
        if "room_id" in pdu:
            raise InvalidEvent("a room version 12 create event must not have a room_id")
    else:
        room_id = _require(pdu, "room_id", str)
        if version.room_id_from_create_event and "$" + room_id[1:] in pdu["auth_events"]:
            raise InvalidEvent("auth_events must not cite the create event in room version 12")

    derived = compute_event_id(pdu, version, has_float=has_float)
    if version.event_format is EventFormat.V1:
        if not derived:
            raise InvalidEvent("missing field 'event_id' (required in room versions 1 and 2)")
    if event_id is not None and event_id != derived:
        raise EventIDMismatch(f"event ID {event_id} does not match the event ({derived})")
    if check_hash and content_hash(pdu, has_float=has_float) != hashes["sha256"]:
        raise ContentHashMismatch(f"content hash of {derived} does not match its hashes.sha256")
    return Event(pdu, version, derived)


def parse_headered(data: dict[str, Any] | bytes | str, *, check_hash: bool = True) -> Event:
    """Parse the headered wire form (PDU + ``_room_version``), as Dendrite sends events."""
    if isinstance(data, (bytes, str)):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise InvalidEvent(f"event is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("an event must be a JSON object")
    pdu = dict(data)
    version = room_version(pdu.pop(ROOM_VERSION_KEY, None))
    event_id = None
    if version.event_format is not EventFormat.V1:
        given = pdu.pop("event_id", None)
        event_id = given if isinstance(given, str) else None
    return parse_pdu(pdu, version, event_id=event_id, check_hash=check_hash)
