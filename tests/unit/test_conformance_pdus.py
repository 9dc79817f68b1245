"""Every PDU of the conformance data (computed by Synapse) through our parser and verifier.

Each event must parse for its room version with its given event ID, its content hash
must verify and its signatures must verify with the case's keys, except events Synapse
refused: ``unparseable`` ones must fail to parse, and ``malformed`` ones (and those whose
auth check failed at Synapse's "validate" step, i.e. a required signature is missing) must
fail signature verification. Tampered copies of real PDUs must fail with the specific error.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from roomserver.matrix.errors import (
    ContentHashMismatch,
    EventIDMismatch,
    EventTooLarge,
    InvalidEvent,
    NonCanonicalJSON,
    SignatureError,
)
from roomserver.matrix.events import Event, parse_headered, parse_pdu
from roomserver.matrix.hashing import compute_event_id, content_hash, reference_sha256
from roomserver.matrix.room_versions import EventFormat, RoomVersion, room_version
from roomserver.matrix.signing import (
    KeyLookup,
    check_signature_presence,
    key_lookup,
    required_signers,
    verify_event_signatures,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "conformance"
CASE_FILES = sorted((DATA / "auth").glob("*.json")) + sorted((DATA / "state_res").glob("*.json"))


@cache
def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def test_the_data_is_there() -> None:
    assert len(CASE_FILES) >= 100
    assert {load(p)["room_version"] for p in CASE_FILES} == {str(v) for v in range(1, 13)}


def _expects_bad_signature(event: dict[str, Any], check: dict[str, Any]) -> bool:
    return "malformed" in event or check["failed_check"] == "validate"


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case_pdus(path: Path) -> None:
    case = load(path)
    version = room_version(case["room_version"])
    keys = key_lookup(case["signing_keys"])
    checks = {c["event_id"]: c for c in case["auth_checks"]}
    pdus = {e["event_id"]: e["pdu"] for e in case["events"]}
    parsed = 0
    for entry in case["events"]:
        event_id, pdu = entry["event_id"], entry["pdu"]
        if "unparseable" in entry:
            with pytest.raises(InvalidEvent):
                parse_pdu(copy.deepcopy(pdu), version, event_id=event_id)
            continue
        event = parse_pdu(pdu, version, event_id=event_id)
        parsed += 1
        assert event.event_id == event_id
        assert content_hash(pdu) == pdu["hashes"]["sha256"]
        assert compute_event_id(pdu, version) == event_id
        if case["room_id"] is not None:
            assert event.room_id == case["room_id"]
        if _expects_bad_signature(entry, checks[event_id]):
            with pytest.raises(SignatureError):
                verify_event_signatures(event, keys)
            with pytest.raises(SignatureError):
                check_signature_presence(event)
        else:
            verify_event_signatures(event, keys)
            check_signature_presence(event)
        _check_references(pdu, version, pdus)
    assert parsed > 0


def _check_references(pdu: dict[str, Any], version: RoomVersion, pdus: dict[str, Any]) -> None:
    """v1/v2 references carry the reference hash of the cited event: ours must agree."""
    if version.event_format is not EventFormat.V1:
        return
    for ref_id, hashes in [*pdu["prev_events"], *pdu["auth_events"]]:
        if ref_id in pdus:
            assert hashes["sha256"] == reference_sha256(pdus[ref_id], version)


@pytest.mark.parametrize("path", CASE_FILES[::9], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case_pdus_over_the_wire(path: Path) -> None:
    """The headered JSON form parses to the same event (a sample of the cases)."""
    case = load(path)
    version = room_version(case["room_version"])
    for entry in case["events"]:
        if "unparseable" in entry:
            continue
        wire = dict(entry["pdu"], _room_version=version.identifier)
        if version.event_format is not EventFormat.V1:
            wire["event_id"] = entry["event_id"]
        event = parse_headered(orjson.dumps(wire))
        assert event.event_id == entry["event_id"]
        assert event.headered() == wire


# -- tampering ----------------------------------------------------------------------------


def _first_accepted(event_type: str) -> dict[str, tuple[dict[str, Any], KeyLookup, str]]:
    """Per room version: (pdu, keys, event ID) of the first accepted event of a type."""
    found: dict[str, tuple[dict[str, Any], KeyLookup, str]] = {}
    for path in CASE_FILES:
        case = load(path)
        if case["room_version"] in found:
            continue
        for entry in case["events"]:
            if entry["pdu"]["type"] == event_type and not entry.get("rejected"):
                keys = key_lookup(case["signing_keys"])
                found[case["room_version"]] = (entry["pdu"], keys, entry["event_id"])
                break
    return found


MESSAGES = _first_accepted("m.room.message")
MEMBERS = _first_accepted("m.room.member")
VERSIONS = sorted(MESSAGES, key=int)


def _message(v: str) -> tuple[RoomVersion, dict[str, Any], KeyLookup, str]:
    pdu, keys, event_id = MESSAGES[v]
    return room_version(v), copy.deepcopy(pdu), keys, event_id


def test_every_version_has_material() -> None:
    assert [str(v) for v in range(1, 13)] == VERSIONS
    assert sorted(MEMBERS, key=int) == VERSIONS


@pytest.mark.parametrize("v", VERSIONS)
def test_untampered_message_is_fine(v: str) -> None:
    version, pdu, keys, event_id = _message(v)
    verify_event_signatures(parse_pdu(pdu, version, event_id=event_id), keys)


@pytest.mark.parametrize("v", VERSIONS)
def test_changed_content_byte(v: str) -> None:
    version, pdu, keys, event_id = _message(v)
    body = pdu["content"]["body"]
    pdu["content"]["body"] = body[:-1] + chr(ord(body[-1]) ^ 1)
    with pytest.raises(ContentHashMismatch):
        parse_pdu(pdu, version, event_id=event_id)
    # The content is redacted away from the event ID and the signatures:
    event = parse_pdu(pdu, version, event_id=event_id, check_hash=False)
    verify_event_signatures(event, keys)
    # Re-hashing the content changes what was signed (the hashes are signed).
    pdu["hashes"]["sha256"] = content_hash(pdu)
    rehashed = parse_pdu(pdu, version)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_event_signatures(rehashed, keys)
    if version.event_format is not EventFormat.V1:
        assert rehashed.event_id != event_id
        with pytest.raises(EventIDMismatch):
            parse_pdu(pdu, version, event_id=event_id)


@pytest.mark.parametrize("v", VERSIONS)
def test_dropped_signature(v: str) -> None:
    version, pdu, keys, event_id = _message(v)
    sender_server = pdu["sender"].split(":", 1)[1]
    del pdu["signatures"][sender_server]
    event = parse_pdu(pdu, version, event_id=event_id)  # signatures are not in the ID
    assert sender_server in required_signers(event)
    with pytest.raises(SignatureError, match=f"not signed by {sender_server}"):
        verify_event_signatures(event, keys)


@pytest.mark.parametrize("v", VERSIONS)
def test_wrong_hash(v: str) -> None:
    version, pdu, _keys, event_id = _message(v)
    other, _, _ = MEMBERS[v]
    pdu["hashes"]["sha256"] = other["hashes"]["sha256"]
    with pytest.raises(ContentHashMismatch):
        parse_pdu(pdu, version)
    if version.event_format is not EventFormat.V1:
        with pytest.raises(EventIDMismatch):  # the hashes are part of the reference hash
            parse_pdu(pdu, version, event_id=event_id)


@pytest.mark.parametrize("v", VERSIONS)
def test_float(v: str) -> None:
    version, pdu, _keys, _event_id = _message(v)
    pdu["content"]["n"] = 1.5
    if version.strict_canonical_json:
        with pytest.raises(NonCanonicalJSON, match="float"):
            parse_pdu(pdu, version, check_hash=False)
    else:  # tolerated before v6: only the hash no longer matches
        with pytest.raises(ContentHashMismatch):
            parse_pdu(pdu, version)


@pytest.mark.parametrize("v", VERSIONS)
def test_integer_out_of_range(v: str) -> None:
    version, pdu, _keys, _event_id = _message(v)
    pdu["depth"] = 2**53
    if version.strict_canonical_json:
        with pytest.raises(InvalidEvent, match="depth"):
            parse_pdu(pdu, version)
        pdu["depth"] = 5
        pdu["content"]["n"] = -(2**53)
        with pytest.raises(NonCanonicalJSON, match="outside the canonical JSON range"):
            parse_pdu(pdu, version)


@pytest.mark.parametrize("v", VERSIONS)
def test_oversized(v: str) -> None:
    version, pdu, _keys, _event_id = _message(v)
    pdu["content"]["body"] = "x" * 65_536
    with pytest.raises(EventTooLarge):
        parse_pdu(pdu, version)


@pytest.mark.parametrize("v", VERSIONS)
def test_wrong_event_id(v: str) -> None:
    version, pdu, _keys, _event_id = _message(v)
    _, _, member_id = MEMBERS[v]
    with pytest.raises(EventIDMismatch, match="does not match"):
        parse_pdu(pdu, version, event_id=member_id)


@pytest.mark.parametrize("v", VERSIONS)
def test_changed_membership_changes_the_event(v: str) -> None:
    """A kept content key (membership) is covered by the event ID and the signatures."""
    pdu, keys, event_id = MEMBERS[v]
    version = room_version(v)
    pdu = copy.deepcopy(pdu)
    pdu["content"]["membership"] = "leave" if pdu["content"]["membership"] != "leave" else "join"
    pdu["hashes"]["sha256"] = content_hash(pdu)
    event: Event = parse_pdu(pdu, version)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_event_signatures(event, keys)
    if version.event_format is not EventFormat.V1:
        with pytest.raises(EventIDMismatch):
            parse_pdu(pdu, version, event_id=event_id)
