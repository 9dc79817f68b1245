"""Parsing and validating PDUs: every rule, the specific error for each, and fuzzing."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import canonicaljson
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signedjson.key import generate_signing_key
from unpaddedbase64 import encode_base64

from roomserver.matrix.builder import EventBuilder, room_id_for
from roomserver.matrix.errors import (
    ContentHashMismatch,
    EventIDMismatch,
    EventTooLarge,
    InvalidEvent,
    MatrixError,
    NonCanonicalJSON,
    SignatureError,
    UnsupportedRoomVersion,
)
from roomserver.matrix.events import (
    MAX_PDU_BYTES,
    ROOM_VERSION_KEY,
    Event,
    RejectableEventTooLarge,
    decode_json,
    parse_headered,
    parse_pdu,
)
from roomserver.matrix.hashing import compute_event_id, content_hash, reference_hash
from roomserver.matrix.room_versions import (
    KNOWN_ROOM_VERSIONS,
    V1,
    V2,
    V3,
    V4,
    V6,
    V10,
    V11,
    V12,
    RoomVersion,
)
from roomserver.matrix.signing import (
    ServerKey,
    server_key_of,
    sign_event,
    verify_event_signatures,
)

VERSIONS = list(KNOWN_ROOM_VERSIONS.values())
SERVER = "a.test"
KEY = generate_signing_key("k")
BUILDER = EventBuilder(SERVER, KEY)
ALICE = f"@alice:{SERVER}"


def key_for(server: str, kid: str) -> ServerKey | None:
    if (server, kid) == (SERVER, "ed25519:k"):
        return server_key_of(KEY)
    return None


class Room:
    """A create event, Alice's join and a message, built for one room version."""

    def __init__(self, version: RoomVersion) -> None:
        self.version = version
        v12 = version.room_id_from_create_event
        self.create = BUILDER.build(
            version,
            type="m.room.create",
            sender=ALICE,
            state_key="",
            content={"creator": ALICE, "room_version": version.identifier},
            room_id=None if v12 else f"!r:{SERVER}",
        )
        self.room_id = room_id_for(self.create) if v12 else f"!r:{SERVER}"
        implied = [] if v12 else [self.create]
        self.join = self.build(
            type="m.room.member",
            state_key=ALICE,
            content={"membership": "join"},
            prev_events=[self.create],
            auth_events=implied,
        )
        self.message = self.build(
            type="m.room.message",
            content={"msgtype": "m.text", "body": "hello"},
            prev_events=[self.join],
            auth_events=[*implied, self.join],
        )

    def build(self, **kw: Any) -> Event:
        kw.setdefault("sender", ALICE)
        kw.setdefault("room_id", self.room_id)
        return BUILDER.build(self.version, **kw)


ROOMS = {v.identifier: Room(v) for v in VERSIONS}


def rehash(pdu: dict[str, Any], version: RoomVersion) -> dict[str, Any]:
    """Make ``pdu``'s hash and signature right again after a change."""
    pdu["hashes"] = {"sha256": content_hash(pdu)}
    pdu["signatures"] = {}
    sign_event(pdu, version, SERVER, KEY)
    return pdu


def mutated(event: Event, change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    pdu = copy.deepcopy(event.pdu)
    change(pdu)
    return pdu


# -- the happy path -----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_built_events_parse_and_verify(version: RoomVersion) -> None:
    room = ROOMS[version.identifier]
    for event in (room.create, room.join, room.message):
        again = parse_pdu(copy.deepcopy(event.pdu), version, event_id=event.event_id)
        assert again == event
        assert again.event_id == event.event_id
        assert again.room_id == room.room_id
        assert again.type == event.pdu["type"]
        assert again.sender == ALICE
        verify_event_signatures(again, key_for)
    assert room.message.prev_event_ids == (room.join.event_id,)
    assert room.join.is_state and not room.message.is_state
    assert room.join.state_tuple == ("m.room.member", ALICE)
    assert room.join.membership == "join"
    assert room.message.membership is None


def test_v12_room_id_is_derived_from_the_create_event() -> None:
    room = ROOMS["12"]
    assert "room_id" not in room.create.pdu
    assert room.create.room_id == "!" + room.create.event_id[1:]
    assert room.message.room_id == room.create.room_id
    assert room.create.event_id not in room.message.auth_event_ids


@pytest.mark.parametrize(
    ("version", "prefix_alphabet"),
    [(V1, None), (V2, None), (V3, "+/"), (V4, "-_"), (V10, "-_")],
)
def test_event_id_formats(version: RoomVersion, prefix_alphabet: str | None) -> None:
    event = ROOMS[version.identifier].message
    if prefix_alphabet is None:
        assert event.event_id.endswith(":" + SERVER)
    else:
        assert len(event.event_id) == 44
        other = "-_" if prefix_alphabet == "+/" else "+/"
        assert not set(other) & set(event.event_id)


def test_signing_bytes_are_cached_and_right() -> None:
    event = ROOMS["10"].message
    assert event._signing_bytes is not None
    fresh = Event(event.pdu, event.room_version, event.event_id)
    assert fresh._signing_bytes is None
    assert fresh.signing_bytes == event.signing_bytes
    assert reference_hash(event.pdu, V10) == hashlib.sha256(event.signing_bytes).digest()


def test_headered_round_trip() -> None:
    for version in VERSIONS:
        event = ROOMS[version.identifier].message
        wire = event.headered()
        assert wire[ROOM_VERSION_KEY] == version.identifier
        assert wire["event_id"] == event.event_id
        for form in (wire, orjson.dumps(wire), orjson.dumps(wire).decode()):
            again = parse_headered(form)
            assert again.event_id == event.event_id
            assert again.pdu == event.pdu
    assert "_room_version" not in ROOMS["10"].message.pdu  # parse_headered(dict) copies


def test_client_form_has_event_id() -> None:
    event = ROOMS["10"].message
    assert event.client_form()["event_id"] == event.event_id
    assert "event_id" not in event.pdu


def test_redacts_property() -> None:
    for version in (V10, V11):
        room = ROOMS[version.identifier]
        redaction = room.build(
            type="m.room.redaction",
            content={},
            redacts=room.message.event_id,
            prev_events=[room.message],
            auth_events=[room.create, room.join],
        )
        assert redaction.redacts == room.message.event_id
        assert room.message.redacts is None


# -- validation errors --------------------------------------------------------------------

V10_MESSAGE = ROOMS["10"].message
V1_MESSAGE = ROOMS["1"].message
V12_MESSAGE = ROOMS["12"].message


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda p: p.__setitem__(key, value)


def _del(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda p: p.pop(key)


HASH_ID = "$" + "A" * 43


@pytest.mark.parametrize(
    ("event", "change", "error", "message"),
    [
        (V10_MESSAGE, _del("type"), InvalidEvent, "missing field 'type'"),
        (V10_MESSAGE, _set("type", 5), InvalidEvent, "'type' must be a string, got int"),
        (V10_MESSAGE, _set("type", None), InvalidEvent, "got null"),
        (V10_MESSAGE, _del("sender"), InvalidEvent, "missing field 'sender'"),
        (V10_MESSAGE, _set("sender", "alice"), InvalidEvent, "sender: user ID 'alice' must start"),
        (V10_MESSAGE, _set("sender", "@alice:bad_host"), InvalidEvent, "DNS name"),
        (V10_MESSAGE, _del("content"), InvalidEvent, "missing field 'content'"),
        (V10_MESSAGE, _set("content", []), InvalidEvent, "'content' must be an object"),
        (V10_MESSAGE, _del("depth"), InvalidEvent, "missing field 'depth'"),
        (V10_MESSAGE, _set("depth", "1"), InvalidEvent, "'depth' must be an integer"),
        (V10_MESSAGE, _set("depth", True), InvalidEvent, "'depth' must be an integer, got bool"),
        (V10_MESSAGE, _set("depth", -1), InvalidEvent, "depth -1 is out of range"),
        (V10_MESSAGE, _set("depth", 2**53), InvalidEvent, "out of range"),
        (V1_MESSAGE, _set("depth", 2**63), InvalidEvent, "out of range"),
        (V10_MESSAGE, _set("depth", 1.0), InvalidEvent, "got float"),
        (V10_MESSAGE, _del("origin_server_ts"), InvalidEvent, "missing field 'origin_server_ts'"),
        (V10_MESSAGE, _set("origin_server_ts", 2**53), InvalidEvent, "out of range"),
        (V1_MESSAGE, _set("origin_server_ts", 2**63), InvalidEvent, "out of range"),
        (V10_MESSAGE, _del("hashes"), InvalidEvent, "'hashes' must be an object, got null"),
        (V10_MESSAGE, _set("hashes", {}), InvalidEvent, "missing hashes.sha256"),
        (
            V10_MESSAGE,
            _set("hashes", {"sha256": 1}),
            InvalidEvent,
            "hashes.sha256 must be a string",
        ),
        (V10_MESSAGE, _del("signatures"), InvalidEvent, "'signatures' must be an object"),
        (V10_MESSAGE, _set("signatures", {"a.test": "x"}), InvalidEvent, "signatures.a.test"),
        (V10_MESSAGE, _set("signatures", {"a": {"k": 1}}), InvalidEvent, "signatures.a.k"),
        (V10_MESSAGE, _del("prev_events"), InvalidEvent, "'prev_events' must be a list, got null"),
        (V10_MESSAGE, _set("prev_events", "$x"), InvalidEvent, "must be a list, got str"),
        (V10_MESSAGE, _set("prev_events", [HASH_ID] * 21), InvalidEvent, "at most 20"),
        (V10_MESSAGE, _set("auth_events", [HASH_ID] * 11), InvalidEvent, "at most 10"),
        (V10_MESSAGE, _set("prev_events", [5]), InvalidEvent, "must be a string"),
        (V10_MESSAGE, _set("prev_events", ["$abc:a.test"]), InvalidEvent, "43 URL-safe"),
        (V10_MESSAGE, _set("prev_events", ["$" + "+" * 43]), InvalidEvent, "43 URL-safe"),
        (ROOMS["3"].message, _set("prev_events", ["$" + "_" * 43]), InvalidEvent, "43 standard"),
        (V10_MESSAGE, _set("auth_events", [HASH_ID, HASH_ID + "A"]), InvalidEvent, "43 URL-safe"),
        (V10_MESSAGE, _set("auth_events", [HASH_ID + "\x00" + HASH_ID]), InvalidEvent, "URL-safe"),
        (V10_MESSAGE, _set("auth_events", [[HASH_ID, {}]]), InvalidEvent, "must be a string"),
        (V1_MESSAGE, _set("prev_events", ["$a:a.test"]), InvalidEvent, "pairs"),
        (V1_MESSAGE, _set("prev_events", [["$a:a.test"]]), InvalidEvent, "pairs"),
        (V1_MESSAGE, _set("prev_events", [[HASH_ID, {}]]), InvalidEvent, "no ':server_name'"),
        (V1_MESSAGE, _set("prev_events", [["$a:a.test", []]]), InvalidEvent, "object of strings"),
        (V1_MESSAGE, _set("prev_events", [["$a:a.test", {"sha256": 1}]]), InvalidEvent, "object"),
        (V10_MESSAGE, _set("state_key", None), InvalidEvent, "'state_key' must be a string"),
        (V10_MESSAGE, _set("state_key", 1), InvalidEvent, "'state_key' must be a string"),
        (V10_MESSAGE, _del("room_id"), InvalidEvent, "missing field 'room_id'"),
        (V10_MESSAGE, _set("room_id", "!nodomain"), InvalidEvent, "room_id: room ID"),
        (V10_MESSAGE, _set("room_id", "#r:a.test"), InvalidEvent, "must start with '!'"),
        (V12_MESSAGE, _set("room_id", "!r:a.test"), InvalidEvent, "43 URL-safe"),
        (V12_MESSAGE, _del("room_id"), InvalidEvent, "missing field 'room_id'"),
        (V10_MESSAGE, _set("event_id", HASH_ID), InvalidEvent, "must not carry an event_id"),
        (V10_MESSAGE, _set("event_id", None), InvalidEvent, "must not carry an event_id"),
        (V1_MESSAGE, _del("event_id"), InvalidEvent, "missing field 'event_id'"),
        (V1_MESSAGE, _set("event_id", HASH_ID), InvalidEvent, "event_id: event ID"),
        (V10_MESSAGE, _set("unsigned", []), InvalidEvent, "'unsigned' must be an object"),
        (V10_MESSAGE, _set("redacts", 5), InvalidEvent, "'redacts' must be a string"),
        (V10_MESSAGE, _set("content", {"n": 1.5}), NonCanonicalJSON, "float 1.5"),
        (
            V10_MESSAGE,
            _set("content", {"n": [2**53]}),
            NonCanonicalJSON,
            "integer 9007199254740992",
        ),
        (V10_MESSAGE, _set("content", {"n": -(2**53)}), NonCanonicalJSON, "outside"),
        (V10_MESSAGE, _set("unsigned", {"age": 0.5}), NonCanonicalJSON, "float"),
        (V10_MESSAGE, _set("origin", 1e3), NonCanonicalJSON, "float"),
        (ROOMS["11"].message, _set("redacts", 0.5), NonCanonicalJSON, "float"),
        (V1_MESSAGE, _set("content", {"n": float("nan")}), NonCanonicalJSON, "not a JSON number"),
        (V1_MESSAGE, _set("content", {"n": float("inf")}), NonCanonicalJSON, "not a JSON number"),
        (V1_MESSAGE, _set("content", {"n": {1, 2}}), NonCanonicalJSON, "set is not a JSON value"),
        (V1_MESSAGE, _set("content", {"n": (1,)}), NonCanonicalJSON, "tuple"),
        (V10_MESSAGE, _set("content", {1: "x"}), NonCanonicalJSON, "key"),
        (V1_MESSAGE, _set("content", {1: 1.5}), NonCanonicalJSON, "object key 1"),
        (V10_MESSAGE, _set("content", {"s": "\ud800"}), NonCanonicalJSON, "surrogate"),
        (V10_MESSAGE, _set("type", "t" * 256), EventTooLarge, "'type' is longer than 255"),
        (V10_MESSAGE, _set("state_key", "s" * 256), EventTooLarge, "'state_key' is longer"),
        (ROOMS["11"].message, _set("type", "é" * 128), EventTooLarge, "bytes"),
        (V10_MESSAGE, _set("content", {"b": "x" * MAX_PDU_BYTES}), EventTooLarge, "65536"),
    ],
)
def test_invalid_pdus(
    event: Event, change: Callable[[dict[str, Any]], object], error: type[MatrixError], message: str
) -> None:
    pdu = mutated(event, change)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")) as info:
        parse_pdu(pdu, event.room_version)
    assert type(info.value) is error
    assert info.value.errcode.startswith("M_")


def test_v12_create_with_room_id_is_refused() -> None:
    pdu = mutated(ROOMS["12"].create, _set("room_id", "!r:a.test"))
    with pytest.raises(InvalidEvent, match="create event must not have a room_id"):
        parse_pdu(pdu, V12)


def test_v12_create_like_events_need_a_room_id() -> None:
    """Only the (m.room.create, "") state event goes without a room ID."""
    pdu = mutated(ROOMS["12"].create, _set("state_key", "x"))
    with pytest.raises(InvalidEvent, match="missing field 'room_id'"):
        parse_pdu(pdu, V12)


def test_v12_events_must_not_cite_the_create_event() -> None:
    room = ROOMS["12"]
    pdu = rehash(
        mutated(room.message, lambda p: p["auth_events"].insert(0, room.create.event_id)), V12
    )
    with pytest.raises(InvalidEvent, match="must not cite the create event"):
        parse_pdu(pdu, V12)


def test_v11_may_cite_its_create_event() -> None:
    room = ROOMS["11"]
    assert room.create.event_id in room.message.auth_event_ids


def test_extra_keys_are_kept_and_hashed() -> None:
    pdu = rehash(mutated(V10_MESSAGE, _set("org.example.extra", {"a": [1, None, True]})), V10)
    event = parse_pdu(pdu, V10)
    assert event.pdu["org.example.extra"] == {"a": [1, None, True]}
    verify_event_signatures(event, key_for)


def test_unsigned_is_not_hashed_or_signed() -> None:
    pdu = mutated(V10_MESSAGE, _set("unsigned", {"age": 5}))
    event = parse_pdu(pdu, V10, event_id=V10_MESSAGE.event_id)
    verify_event_signatures(event, key_for)


def test_origin_and_top_level_redacts_take_the_general_path() -> None:
    """Keys redaction drops (``redacts`` before v11, unknown keys) still hash right."""
    for version in (V3, V10, V11):
        room = ROOMS[version.identifier]
        pdu = rehash(mutated(room.message, _set("origin", SERVER)), version)
        pdu = rehash(pdu, version)
        pdu["redacts"] = room.join.event_id
        rehash(pdu, version)
        event = parse_pdu(pdu, version)
        assert event.event_id == compute_event_id(pdu, version)
        verify_event_signatures(event, key_for)


# -- size limits ---------------------------------------------------------------------------


def _sized(event: Event, total: int) -> dict[str, Any]:
    """``event`` with a body padded so its canonical JSON (less unsigned) is ``total`` bytes."""
    pdu = copy.deepcopy(event.pdu)
    pdu["content"]["pad"] = ""
    base = len(canonicaljson.encode_canonical_json(pdu))
    pdu["content"]["pad"] = "x" * (total - base)
    rehash(pdu, event.room_version)
    assert len(canonicaljson.encode_canonical_json(pdu)) == total
    return pdu


@pytest.mark.parametrize("version", [V1, V10, V12], ids=str)
def test_size_limit_is_exact(version: RoomVersion) -> None:
    event = ROOMS[version.identifier].message
    parse_pdu(_sized(event, MAX_PDU_BYTES), version)
    with pytest.raises(EventTooLarge, match="65537 bytes"):
        parse_pdu(_sized(event, MAX_PDU_BYTES + 1), version)


def test_signatures_count_towards_the_size() -> None:
    pdu = _sized(V10_MESSAGE, MAX_PDU_BYTES - 100)
    parse_pdu(pdu, V10)
    pdu["signatures"]["other.test"] = {"ed25519:x": "s" * 100}
    with pytest.raises(EventTooLarge, match="bytes of canonical JSON"):
        parse_pdu(pdu, V10)


def test_unsigned_does_not_count_towards_the_size() -> None:
    pdu = _sized(V10_MESSAGE, MAX_PDU_BYTES)
    pdu["unsigned"] = {"pad": "x" * 1000}
    parse_pdu(pdu, V10)


def test_escapes_count_as_encoded() -> None:
    """Control characters take 6 bytes each in canonical JSON."""
    pdu = copy.deepcopy(V10_MESSAGE.pdu)
    pdu["content"]["body"] = "\x01" * (MAX_PDU_BYTES // 6)
    rehash(pdu, V10)
    with pytest.raises(EventTooLarge):
        parse_pdu(pdu, V10)


@pytest.mark.parametrize("field", ["type", "state_key", "sender", "room_id"])
def test_fields_over_255_bytes_are_rejectable_before_v11(field: str) -> None:
    """128 two-byte characters: 256 bytes but 128 code points."""
    value = {
        "type": "é" * 128,
        "state_key": "é" * 128,
        "sender": "@" + "é" * 125 + ":a.test",
        "room_id": "!" + "é" * 125 + ":a.test",
    }[field]
    pdu = rehash(mutated(V10_MESSAGE, _set(field, value)), V10)
    with pytest.raises(RejectableEventTooLarge, match="keep it as rejected") as info:
        parse_pdu(pdu, V10)
    assert isinstance(info.value, EventTooLarge)
    assert info.value.event.pdu[field] == value
    assert info.value.event.event_id == compute_event_id(pdu, V10)
    pdu11 = rehash(mutated(ROOMS["11"].message, _set(field, value)), V11)
    with pytest.raises(EventTooLarge, match="255 bytes") as info11:
        parse_pdu(pdu11, V11)
    assert type(info11.value) is EventTooLarge


def test_rejectable_oversize_still_validates_the_grammar() -> None:
    pdu = rehash(mutated(V10_MESSAGE, _set("sender", "@" + "é" * 125 + ":bad_host")), V10)
    with pytest.raises(InvalidEvent, match="DNS name"):
        parse_pdu(pdu, V10)


def test_v1_event_id_over_255_bytes() -> None:
    pdu = mutated(V1_MESSAGE, _set("event_id", "$" + "é" * 125 + ":a.test"))
    rehash(pdu, V1)
    with pytest.raises(RejectableEventTooLarge):
        parse_pdu(pdu, V1)


# -- hashes and IDs ------------------------------------------------------------------------


def test_content_hash_mismatch() -> None:
    pdu = mutated(V10_MESSAGE, lambda p: p["content"].update(body="changed"))
    with pytest.raises(ContentHashMismatch):
        parse_pdu(pdu, V10, event_id=V10_MESSAGE.event_id)
    event = parse_pdu(pdu, V10, event_id=V10_MESSAGE.event_id, check_hash=False)
    assert event.event_id == V10_MESSAGE.event_id  # the body is redacted away from the ID


@pytest.mark.parametrize("spelling", ["padded", "urlsafe"])
def test_content_hash_other_base64_spellings(spelling: str) -> None:
    raw = base64.b64decode(V10_MESSAGE.pdu["hashes"]["sha256"] + "=")
    claimed = base64.b64encode(raw).decode() if spelling == "padded" else None
    if claimed is None:
        claimed = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    pdu = mutated(V10_MESSAGE, lambda p: p["hashes"].update(sha256=claimed))
    parse_pdu(pdu, V10)  # accepted like Synapse does (its event ID differs: hashes is signed)


def test_event_id_mismatch() -> None:
    with pytest.raises(EventIDMismatch, match="does not match"):
        parse_pdu(V10_MESSAGE.pdu, V10, event_id=ROOMS["10"].join.event_id)
    with pytest.raises(EventIDMismatch):
        parse_pdu(V1_MESSAGE.pdu, V1, event_id="$other:a.test")


def test_headered_event_id_checks() -> None:
    wire = V10_MESSAGE.headered()
    wire["event_id"] = ROOMS["10"].join.event_id
    with pytest.raises(EventIDMismatch):
        parse_headered(wire)
    wire["event_id"] = 5
    with pytest.raises(InvalidEvent, match="event_id must be a string"):
        parse_headered(wire)
    del wire["event_id"]
    assert parse_headered(wire).event_id == V10_MESSAGE.event_id


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not json", InvalidEvent),
        (b"[1, 2]", InvalidEvent),
        ("", InvalidEvent),
        (b'{"_room_version": "99"}', UnsupportedRoomVersion),
        (b'{"type": "x"}', UnsupportedRoomVersion),
        (b'{"_room_version": 10}', UnsupportedRoomVersion),
        (b'{"_room_version": "10"}', InvalidEvent),
        (b'{"_room_version": "1", "n": NaN}', InvalidEvent),
        (5, InvalidEvent),
    ],
)
def test_headered_garbage(data: Any, error: type) -> None:
    with pytest.raises(error):
        parse_headered(data)


def test_floats_before_v6_hash_like_canonicaljson() -> None:
    """A v5 event with a float: hashed with canonicaljson's float format (Synapse's)."""
    room = ROOMS["5"]
    event = room.build(
        type="m.room.message",
        content={"n": 1e-7, "m": 0.1, "big": 2**63},
        prev_events=[room.join],
        auth_events=[room.create, room.join],
    )
    body = {k: v for k, v in event.pdu.items() if k not in ("hashes", "signatures")}
    expected = encode_base64(hashlib.sha256(canonicaljson.encode_canonical_json(body)).digest())
    assert event.pdu["hashes"]["sha256"] == expected
    again = parse_headered(orjson.dumps(event.headered()))
    assert again.event_id == event.event_id
    verify_event_signatures(again, key_for)
    with pytest.raises(NonCanonicalJSON, match="float"):
        parse_pdu(rehash(mutated(ROOMS["6"].message, _set("content", {"n": 0.1})), V6), V6)


def test_integers_beyond_64_bits_before_v6() -> None:
    """orjson cannot carry them; the JSON text is decoded exactly and canonicaljson encodes."""
    room = ROOMS["1"]
    huge = 123456789012345678901234567890
    event = room.build(
        type="m.room.message",
        content={"huge": huge, "neg": -(2**70)},
        prev_events=[room.join],
        auth_events=[room.create, room.join],
    )
    text = json.dumps(event.headered())
    again = parse_headered(text)
    assert again.content["huge"] == huge
    assert again.event_id == event.event_id
    verify_event_signatures(again, key_for)
    assert parse_headered(text.encode()).content["neg"] == -(2**70)
    v6_text = orjson.dumps(ROOMS["6"].message.headered()).decode()
    v6_text = v6_text.replace('"body":"hello"', f'"body":"hello","huge":{huge}')
    assert str(huge) in v6_text
    with pytest.raises(NonCanonicalJSON):
        parse_headered(v6_text)


def test_decode_json() -> None:
    assert decode_json(b'{"a": 1}') == {"a": 1}
    assert decode_json("[" + "1" * 25 + "]", exact_integers=True) == [int("1" * 25)]
    assert decode_json('["' + "1" * 25 + '"]', exact_integers=True) == ["1" * 25]
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        decode_json("[Infinity, " + "1" * 20 + "]", exact_integers=True)
    with pytest.raises(InvalidEvent):
        decode_json(b"\xff")


# -- fuzzing: any JSON, never a raw exception ----------------------------------------------

PDU_KEYS = [
    "type", "sender", "room_id", "content", "depth", "origin_server_ts", "prev_events",
    "auth_events", "hashes", "signatures", "state_key", "unsigned", "event_id", "redacts",
    "origin", "membership", "prev_state",
]  # fmt: skip

weird_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()) | st.sampled_from("\ud800\x00:@!$"),
    max_size=6,
)
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    weird_text,
    st.sampled_from(["@a:b.c", "!r:b.c", "$e:b.c", "$" + "A" * 43, "m.room.create", ""]),
)
json_values = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(weird_text, inner, max_size=4),
    max_leaves=12,
)
pdu_like = st.dictionaries(st.sampled_from(PDU_KEYS) | weird_text, json_values, max_size=14)


def _parse_never_crashes(pdu: Any, version: RoomVersion) -> None:
    try:
        event = parse_pdu(pdu, version)
    except InvalidEvent:
        return
    assert isinstance(event, Event)
    verify_or_signature_error(event)


def verify_or_signature_error(event: Event) -> None:
    with contextlib.suppress(SignatureError):
        verify_event_signatures(event, key_for)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pdu_like, st.sampled_from(VERSIONS))
def test_fuzz_random_objects(pdu: dict[str, Any], version: RoomVersion) -> None:
    _parse_never_crashes(pdu, version)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VERSIONS),
    st.sampled_from(["create", "join", "message"]),
    st.lists(
        st.tuples(
            st.sampled_from(PDU_KEYS),
            st.sampled_from(["replace", "delete", "nest"]),
            json_values,
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_fuzz_mutated_real_events(
    version: RoomVersion, which: str, changes: list[tuple[str, str, Any]]
) -> None:
    pdu = copy.deepcopy(getattr(ROOMS[version.identifier], which).pdu)
    for key, how, value in changes:
        if how == "delete":
            pdu.pop(key, None)
        elif how == "nest" and isinstance(pdu.get(key), dict):
            pdu[key]["x"] = value
        elif how == "nest" and isinstance(pdu.get(key), list):
            pdu[key].append(value)
        else:
            pdu[key] = value
    _parse_never_crashes(pdu, version)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=64), json_values.map(lambda v: json.dumps(v).encode())))
def test_fuzz_headered_bytes(data: bytes) -> None:
    with contextlib.suppress(MatrixError):
        parse_headered(data)


@settings(max_examples=200, deadline=None)
@given(pdu_like, st.sampled_from(VERSIONS))
def test_fuzz_headered_objects(pdu: dict[str, Any], version: RoomVersion) -> None:
    pdu[ROOM_VERSION_KEY] = version.identifier
    with contextlib.suppress(MatrixError):
        parse_headered(pdu)


# -- round trip: build, serialise, parse, verify, for every version ------------------------

strict_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=20)
)
legacy_leaf = (
    strict_leaf
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
)


def contents(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    values = st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    )
    return st.dictionaries(st.text(max_size=10), values, max_size=6)


@st.composite
def built_events(draw: st.DrawFn, version: RoomVersion) -> Event:
    room = ROOMS[version.identifier]
    content = draw(contents(strict_leaf if version.strict_canonical_json else legacy_leaf))
    state_key = draw(st.none() | st.text(max_size=10))
    return room.build(
        type=draw(st.sampled_from(["m.room.message", "org.example.thing", "m.room.topic"])),
        content=content,
        state_key=state_key,
        prev_events=[room.message],
        auth_events=[room.join] if version.room_id_from_create_event else [room.create, room.join],
    )


@pytest.mark.parametrize("version", VERSIONS, ids=str)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_every_version(version: RoomVersion, data: st.DataObject) -> None:
    event = data.draw(built_events(version))
    wire = orjson.dumps(event.pdu)
    again = parse_pdu(orjson.loads(wire), event.room_version, event_id=event.event_id)
    assert again.pdu == event.pdu
    verify_event_signatures(again, key_for)
    headered = parse_headered(orjson.dumps(event.headered()))
    assert headered.event_id == event.event_id
    verify_event_signatures(headered, key_for)


# -- canonical JSON: orjson's bytes are canonicaljson's ------------------------------------

any_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
canonical_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
legacy_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(canonical_values)
def test_fast_encoder_matches_canonicaljson(value: Any) -> None:
    from roomserver.matrix.canonical import canonical_json

    assert canonical_json(value) == canonicaljson.encode_canonical_json(value)


@settings(max_examples=300, deadline=None)
@given(legacy_values)
def test_legacy_values_encode_like_canonicaljson(value: Any) -> None:
    """Floats and integers of any size (rooms v1-v5) come out as Synapse wrote them."""
    from roomserver.matrix.canonical import canonical_json

    assert canonical_json(value, strict=False) == canonicaljson.encode_canonical_json(value)


def test_deep_nesting_is_refused_not_crashed() -> None:
    from roomserver.matrix.canonical import canonical_json

    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(NonCanonicalJSON, match="nested too deeply"):
        canonical_json(deep)
    pdu = mutated(V10_MESSAGE, _set("content", {"deep": deep}))
    with pytest.raises(NonCanonicalJSON):
        parse_pdu(pdu, V10)
