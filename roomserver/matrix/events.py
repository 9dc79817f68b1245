"""PDUs: parse and validate an event for its room version, and the headered wire form.

An :class:`Event` wraps the PDU dict exactly as received (what was hashed and signed) and
exposes its fields typed; it is immutable by convention, so it can be shared freely between
the auth rules, state resolution and storage.

:func:`parse_pdu` checks, for the event's room version, everything that can be judged from
the event alone (what Synapse's ``event_from_pdu_json`` and
``validate_event_for_room_version`` check, minus the signatures, which need keys): field
presence and types, identifier grammar, the size limits, canonical JSON values, the shape
of references, the v12 room ID rules, the event ID and the content hash. Anything else
about an event (is it allowed?) is the auth rules' business.

It is also the hot path of event input, so it is written to do each expensive step once:
one walk over the free-form values (``content``, ``unsigned``, unknown keys: the typed
fields are checked as they are read), one encoding of the hashed body, one of the signed
form, whose bytes are kept on the event for signature verification.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from .canonical import MAX_SAFE_INT, check_json_values, encode_canonical
from .errors import (
    ContentHashMismatch,
    EventIDMismatch,
    EventTooLarge,
    InvalidEvent,
    InvalidIdentifier,
)
from .hashing import encode_event_id, hash_matches, signing_input
from .ids import (
    event_id_format_error,
    is_valid_room_id,
    is_valid_user_id,
    parse_room_id,
    parse_user_id,
)
from .redaction import redacted_content, signed_form
from .room_versions import EventFormat, RoomVersion, room_version

MAX_PDU_BYTES = 65_536
MAX_ID_BYTES = 255
MAX_DEPTH = 2**63 - 1
"""Depth limit of rooms v1-v5; from v6 canonical JSON caps it at 2**53 - 1."""
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
ROOM_VERSION_KEY = "_room_version"

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
REDACTION = "m.room.redaction"
HISTORY_VISIBILITY = "m.room.history_visibility"
ALIASES = "m.room.aliases"

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1

# Keys whose values parse_pdu type-checks itself; every other key's value is walked.
_TYPED_KEYS = frozenset(
    {"type", "sender", "room_id", "content", "depth", "origin_server_ts", "prev_events",
     "auth_events", "hashes", "signatures", "state_key", "unsigned", "event_id", "redacts"}
)  # fmt: skip
_KNOWN_IDS_MAX = 32_768
# Members `"hashes":` and `"signatures":` with their commas, for the size bound.
_HS_OVERHEAD = len(b'"hashes":,"signatures":,')


def _refs_matcher(alphabet: str) -> Callable[[str], object]:
    """Matches a non-empty list of hash event IDs joined with NUL (which no ID contains),
    so one regex call checks every reference of an event (the caller checks the length)."""
    one = rf"\$[{alphabet}]{{43}}"
    return re.compile(rf"{one}(?:\x00{one})*").fullmatch


class _Profile:
    """What parse_pdu needs of a room version, as plain values: reading enums costs
    ~100 ns each in Python 3.11, which adds up on the hot path."""

    __slots__ = (
        "event_format",
        "hash_room_ids",
        "known_ids",
        "legacy_field_bytes",
        "max_depth",
        "max_ts",
        "min_ts",
        "refs_match",
        "strict",
        "top_level_redacts",
        "urlsafe_ids",
        "v1_ids",
        "version",
    )

    def __init__(self, version: RoomVersion) -> None:
        self.version = version
        self.event_format = version.event_format
        self.strict = version.strict_canonical_json
        self.v1_ids = version.event_format is EventFormat.V1
        self.urlsafe_ids = version.event_format is EventFormat.V3
        self.refs_match = (
            None
            if self.v1_ids
            else _refs_matcher("A-Za-z0-9_\\-" if self.urlsafe_ids else "A-Za-z0-9+/")
        )
        # Synapse's `strict_event_byte_limits_room_versions` (v11+) and MSC2174 (`redacts`
        # moved into content) both came with v11's redaction rules.
        self.legacy_field_bytes = version.redaction.value < 11
        self.top_level_redacts = version.redaction.value < 11
        self.hash_room_ids = version.room_id_from_create_event
        self.max_depth = MAX_SAFE_INT if self.strict else MAX_DEPTH
        self.min_ts = -MAX_SAFE_INT if self.strict else _I64_MIN
        self.max_ts = MAX_SAFE_INT if self.strict else _I64_MAX
        self.known_ids: set[str] = set()
        """Event IDs of this format already seen valid (parsed or cited): rooms cite the
        same auth events again and again, so most references skip the regex."""


_PROFILES: dict[str, _Profile] = {}


def _profile(version: RoomVersion) -> _Profile:
    profile = _PROFILES.get(version.identifier)
    if profile is None or profile.version is not version:
        profile = _PROFILES[version.identifier] = _Profile(version)
    return profile


class Event:
    """A parsed, validated PDU of a known room version."""

    __slots__ = (
        "_signing_bytes",
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
    _signing_bytes: bytes | None

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
        if room_id is None:
            room_id = "!" + event_id[1:]  # v12 create event: the room is named after it
        self.room_id = room_id
        self._signing_bytes = None

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

    @property
    def signing_bytes(self) -> bytes:
        """Canonical JSON of the redacted event without signatures: what its signatures
        cover (and, in rooms v3+, what its event ID hashes). Computed once."""
        if self._signing_bytes is None:
            self._signing_bytes = signing_input(self.pdu, self.room_version)
        return self._signing_bytes

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


class RejectableEventTooLarge(EventTooLarge):
    """A room v1-v10 event whose ``type``, ``state_key``, ``sender``, ``room_id`` or
    ``event_id`` is over 255 bytes of UTF-8 but not over 255 code points.

    Servers used to count code points, so such events exist in old rooms and later events
    may cite them. Synapse and Dendrite keep them as *rejected* rather than dropping them;
    ``event`` is the otherwise fully validated event, for the caller to do the same.
    """

    def __init__(self, message: str, event: Event) -> None:
        super().__init__(message)
        self.event = event


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _missing_or_wrong(pdu: dict[str, Any], key: str, expected: str) -> InvalidEvent:
    if key not in pdu:
        return InvalidEvent(f"missing field {key!r}")
    return InvalidEvent(f"field {key!r} must be {expected}, got {_type_name(pdu[key])}")


def _check_refs(refs: object, key: str, profile: _Profile, limit: int) -> None:
    """``prev_events``/``auth_events``: a list of event IDs (v3+) or of
    ``[event_id, {"sha256": hash}]`` pairs (v1/v2), at most ``limit`` long."""
    if type(refs) is not list:
        raise InvalidEvent(f"field {key!r} must be a list, got {_type_name(refs)}")
    if len(refs) > limit:
        raise InvalidEvent(f"{key!r} has {len(refs)} entries; at most {limit} are allowed")
    if profile.refs_match is not None:
        known = profile.known_ids
        try:
            if known.issuperset(refs):
                return
            joined = "\x00".join(refs)
            # The length rules out an entry hiding a NUL of its own (two IDs in one).
            if len(joined) == 45 * len(refs) - 1 and profile.refs_match(joined) is not None:
                if len(known) >= _KNOWN_IDS_MAX:
                    known.clear()
                known.update(refs)
                return
        except TypeError:  # an entry that is not a string
            pass
        for ref in refs:
            error = event_id_format_error(ref, profile.event_format)
            if error is not None:
                raise InvalidEvent(f"{key!r}: {error}")
        raise AssertionError("unreachable: each reference is valid, so all are")
    for ref in refs:
        if type(ref) is not list or len(ref) != 2:
            raise InvalidEvent(
                f"{key!r} entries must be [event_id, hashes] pairs in this room version"
            )
        ref_id, ref_hashes = ref
        error = event_id_format_error(ref_id, EventFormat.V1)
        if error is not None:
            raise InvalidEvent(f"{key!r}: {error}")
        if type(ref_hashes) is not dict or any(type(h) is not str for h in ref_hashes.values()):
            raise InvalidEvent(f"{key!r}: the hashes of {ref_id} must be an object of strings")


def _hashes_size(hashes: object) -> int:
    """Check ``hashes`` is an object of strings with a ``sha256``; bound its JSON size."""
    if type(hashes) is not dict:
        raise InvalidEvent(f"field 'hashes' must be an object, got {_type_name(hashes)}")
    size = 2
    for k, v in hashes.items():
        if type(v) is not str:
            raise InvalidEvent(f"hashes.{k} must be a string, got {_type_name(v)}")
        size += 6 * (len(k) + len(v)) + 6  # ≤ 6 bytes a character (\u00XX), quotes, : and ,
    if "sha256" not in hashes:
        raise InvalidEvent("missing hashes.sha256")
    return size


def _signatures_size(signatures: object) -> int:
    """Check ``signatures`` is ``{server: {key_id: signature}}`` of strings; bound its size."""
    if type(signatures) is not dict:
        raise InvalidEvent(f"field 'signatures' must be an object, got {_type_name(signatures)}")
    size = 2
    for server, by_key in signatures.items():
        if type(by_key) is not dict:
            raise InvalidEvent(f"signatures.{server} must be an object, got {_type_name(by_key)}")
        size += 6 * len(server) + 6
        for k, v in by_key.items():
            if type(v) is not str:
                raise InvalidEvent(f"signatures.{server}.{k} must be a string")
            size += 6 * (len(k) + len(v)) + 6
    return size


def _field_bytes(value: str, key: str, legacy: bool) -> bool:
    """Enforce the 255 limit; return ``True`` for a v1-v10 field only over it in bytes."""
    if len(value) > MAX_ID_BYTES:
        raise EventTooLarge(f"field {key!r} is longer than {MAX_ID_BYTES} characters")
    if (
        len(value) > MAX_ID_BYTES // 4
        and len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES
    ):
        if legacy:
            return True
        raise EventTooLarge(f"field {key!r} is longer than {MAX_ID_BYTES} bytes")
    return False


def parse_pdu(
    pdu: dict[str, Any],
    version: RoomVersion,
    *,
    event_id: str | None = None,
    check_hash: bool = True,
) -> Event:
    """Validate ``pdu`` for ``version`` and wrap it.

    ``event_id``, when the caller names one (v3+ events travel without it), must match the
    ID derived from the event (:class:`EventIDMismatch`). ``check_hash`` verifies
    ``hashes.sha256`` (:class:`ContentHashMismatch`; the spec says to use the redacted
    event then, which the caller decides). Every failure is an :class:`InvalidEvent`
    subclass (:class:`RejectableEventTooLarge` carries the event: keep it as rejected);
    signatures are checked separately (:mod:`roomserver.matrix.signing`): they need keys.
    """
    if type(pdu) is not dict:
        raise InvalidEvent(f"an event must be a JSON object, got {_type_name(pdu)}")
    profile = _profile(version)
    strict = profile.strict
    legacy = profile.legacy_field_bytes
    oversized = False
    n_typed = 10  # the required keys below, room_id included; adjusted for optional ones

    event_type = pdu.get("type")
    if type(event_type) is not str:
        raise _missing_or_wrong(pdu, "type", "a string")
    if len(event_type) > 63:
        oversized |= _field_bytes(event_type, "type", legacy)

    sender = pdu.get("sender")
    if type(sender) is not str:
        raise _missing_or_wrong(pdu, "sender", "a string")
    if not is_valid_user_id(sender):  # memoised; the slow path says why
        oversized |= _field_bytes(sender, "sender", legacy)
        try:
            parse_user_id(sender, check_length=False)
        except InvalidIdentifier as e:
            raise InvalidEvent(f"sender: {e.message}") from None

    content = pdu.get("content")
    if type(content) is not dict:
        raise _missing_or_wrong(pdu, "content", "an object")

    depth = pdu.get("depth")
    if type(depth) is not int:
        raise _missing_or_wrong(pdu, "depth", "an integer")
    if not 0 <= depth <= profile.max_depth:
        raise InvalidEvent(f"depth {depth} is out of range")

    ts = pdu.get("origin_server_ts")
    if type(ts) is not int:
        raise _missing_or_wrong(pdu, "origin_server_ts", "an integer")
    if not profile.min_ts <= ts <= profile.max_ts:
        raise InvalidEvent(f"origin_server_ts {ts} is out of range")

    hashes: Any = pdu.get("hashes")
    if type(hashes) is dict and len(hashes) == 1 and type(hashes.get("sha256")) is str:
        hs_size = _HS_OVERHEAD + 6 * len(hashes["sha256"]) + 44  # the usual {"sha256": …}
    else:
        hs_size = _HS_OVERHEAD + _hashes_size(hashes)
    hs_size += _signatures_size(pdu.get("signatures"))

    _check_refs(pdu.get("prev_events"), "prev_events", profile, MAX_PREV_EVENTS)
    auth_events: Any = pdu.get("auth_events")
    _check_refs(auth_events, "auth_events", profile, MAX_AUTH_EVENTS)

    state_key = pdu.get("state_key")
    if state_key is not None or "state_key" in pdu:
        if type(state_key) is not str:
            raise _missing_or_wrong(pdu, "state_key", "a string")
        if len(state_key) > 63:
            oversized |= _field_bytes(state_key, "state_key", legacy)
        n_typed += 1

    room_id = pdu.get("room_id")
    if profile.hash_room_ids and event_type == CREATE and state_key == "":
        if "room_id" in pdu:
            raise InvalidEvent("a room version 12 create event must not have a room_id")
        n_typed -= 1
    else:
        if type(room_id) is not str:
            raise _missing_or_wrong(pdu, "room_id", "a string")
        if not is_valid_room_id(room_id, version):  # memoised; the slow path says why
            oversized |= _field_bytes(room_id, "room_id", legacy)
            try:
                parse_room_id(room_id, version, check_length=False)
            except InvalidIdentifier as e:
                raise InvalidEvent(f"room_id: {e.message}") from None
        if profile.hash_room_ids and "$" + room_id[1:] in auth_events:
            raise InvalidEvent(
                "auth_events must not cite the create event in room version 12 (the room ID"
                " implies it)"
            )

    given_id: Any = pdu.get("event_id")
    if profile.v1_ids:
        if type(given_id) is not str:
            raise _missing_or_wrong(pdu, "event_id", "a string (room versions 1 and 2)")
        oversized |= _field_bytes(given_id, "event_id", legacy)
        error = event_id_format_error(given_id, EventFormat.V1, check_length=False)
        if error is not None:
            raise InvalidEvent(f"event_id: {error}")
        n_typed += 1
    elif given_id is not None or "event_id" in pdu:
        raise InvalidEvent(
            f"an event of room version {version.identifier} must not carry an event_id"
            " (it is derived from the event's hash)"
        )

    # The free-form values: content, unsigned and any key not typed here.
    exact = False
    for value in content.values():  # flat string content (most events) needs no walk
        if type(value) is not str:
            exact = check_json_values(content, strict)
            break
    if len(pdu) > n_typed:
        if "redacts" in pdu:
            if profile.top_level_redacts:
                if type(pdu["redacts"]) is not str:
                    raise _missing_or_wrong(pdu, "redacts", "a string")
            else:  # from v11 `redacts` lives in content; a top-level one is just an extra key
                exact |= check_json_values([pdu["redacts"]], strict)
            n_typed += 1
        if "unsigned" in pdu:
            if type(pdu["unsigned"]) is not dict:
                raise _missing_or_wrong(pdu, "unsigned", "an object")
            exact |= check_json_values(pdu["unsigned"], strict)
            n_typed += 1
        if len(pdu) > n_typed:
            exact |= check_json_values([pdu[k] for k in pdu.keys() - _TYPED_KEYS], strict)

    # The hashed body: encoded once, for the size limit and the content hash.
    body = pdu.copy()
    del body["hashes"]
    del body["signatures"]
    body.pop("unsigned", None)
    body_bytes = encode_canonical(body, has_float=exact)
    if len(body_bytes) + hs_size > MAX_PDU_BYTES:
        hs_bytes = encode_canonical({"hashes": hashes, "signatures": pdu["signatures"]})
        size = len(body_bytes) + len(hs_bytes) - 1  # {body} and {hs} merged: one pair of braces
        if size > MAX_PDU_BYTES:
            raise EventTooLarge(f"event is {size} bytes of canonical JSON; at most {MAX_PDU_BYTES}")

    # The event ID: from v3 the hash of the signed form, whose bytes are kept for
    # signature verification.
    signed_bytes: bytes | None = None
    if profile.v1_ids:
        derived: str = given_id
    else:
        if len(pdu) == n_typed and "redacts" not in pdu:
            # Only keys redaction keeps (bar signatures): the body, done with, becomes the
            # signed form in place.
            body["hashes"] = hashes
            body["content"] = redacted_content(pdu, version)
            signed = body
        else:
            signed = signed_form(pdu, version)
        signed_bytes = encode_canonical(signed, has_float=exact)
        derived = encode_event_id(
            hashlib.sha256(signed_bytes).digest(), urlsafe=profile.urlsafe_ids
        )
        known = profile.known_ids
        if len(known) >= _KNOWN_IDS_MAX:
            known.clear()
        known.add(derived)
    if event_id is not None and event_id != derived:
        raise EventIDMismatch(f"event ID {event_id} does not match the event's ({derived})")
    if check_hash and not hash_matches(hashes["sha256"], hashlib.sha256(body_bytes).digest()):
        raise ContentHashMismatch(f"content hash of {derived} does not match its hashes.sha256")

    event = Event.__new__(Event)
    event.pdu = pdu
    event.room_version = version
    event.event_id = derived
    event.type = event_type
    event.state_key = state_key
    event.sender = sender
    event.content = content
    event.depth = depth
    event.origin_server_ts = ts
    if profile.v1_ids:
        event.prev_event_ids = tuple([ref[0] for ref in pdu["prev_events"]])
        event.auth_event_ids = tuple([ref[0] for ref in auth_events])
    else:
        event.prev_event_ids = tuple(pdu["prev_events"])
        event.auth_event_ids = tuple(auth_events)
    event.room_id = room_id if room_id is not None else "!" + derived[1:]
    event._signing_bytes = signed_bytes
    if oversized:
        raise RejectableEventTooLarge(
            f"event {derived} has a field over {MAX_ID_BYTES} bytes (but not characters):"
            " keep it as rejected",
            event,
        )
    return event


# 19+ digits in a row: an integer orjson may have decoded as a float (beyond 64 bits).
_LONG_DIGITS = re.compile(r"[0-9]{19}")


def _reject_constant(name: str) -> Any:
    raise InvalidEvent(f"{name} is not valid JSON")


def decode_json(data: bytes | str, *, exact_integers: bool = False) -> Any:
    """Decode JSON text with orjson, as :class:`InvalidEvent` if it is not valid JSON.

    orjson decodes integers beyond 64 bits as floats. They are invalid from room v6 (so
    the float is refused anyway) but legal before; ``exact_integers`` re-decodes text
    that may hold one with the standard library, which keeps it exact.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise InvalidEvent(f"event is not valid JSON: {e}") from None
    if exact_integers:
        value = _decode_exact(data, value)
    return value


def _decode_exact(data: bytes | str, decoded: Any) -> Any:
    """``decoded`` again by the standard library if ``data`` may hold a huge integer."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    if _LONG_DIGITS.search(text) is None:
        return decoded
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise InvalidEvent(f"event is not valid JSON: {e}") from None


def parse_headered(data: dict[str, Any] | bytes | str, *, check_hash: bool = True) -> Event:
    """Parse the headered wire form (PDU + ``_room_version``), as Dendrite sends events.

    In rooms v3+ an ``event_id`` next to the PDU is the sender's claim of the ID: it is
    removed from the PDU and must match the derived one.
    """
    if isinstance(data, (bytes, str)):
        decoded = decode_json(data)
        if type(decoded) is dict:
            version = room_version(decoded.get(ROOM_VERSION_KEY))
            if not version.strict_canonical_json:
                decoded = _decode_exact(data, decoded)
        pdu = decoded  # freshly decoded: ours to change
    elif type(data) is dict:
        pdu = dict(data)
    else:
        raise InvalidEvent(f"an event must be a JSON object, got {_type_name(data)}")
    if type(pdu) is not dict:
        raise InvalidEvent(f"an event must be a JSON object, got {_type_name(pdu)}")
    version = room_version(pdu.pop(ROOM_VERSION_KEY, None))
    event_id = None
    if version.event_format is not EventFormat.V1 and "event_id" in pdu:
        event_id = pdu.pop("event_id")
        if type(event_id) is not str:
            raise InvalidEvent(f"event_id must be a string, got {_type_name(event_id)}")
    return parse_pdu(pdu, version, event_id=event_id, check_hash=check_hash)
