"""Signing and verification: the spec's test vectors, required signers, every failure mode."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from signedjson.key import decode_signing_key_base64, generate_signing_key, get_verify_key
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from roomserver.matrix.builder import EventBuilder, room_id_for
from roomserver.matrix.canonical import canonical_json
from roomserver.matrix.errors import SignatureError
from roomserver.matrix.events import Event, parse_pdu
from roomserver.matrix.hashing import content_hash
from roomserver.matrix.room_versions import (
    KNOWN_ROOM_VERSIONS,
    V1,
    V4,
    V5,
    V7,
    V8,
    V10,
    V12,
    RoomVersion,
)
from roomserver.matrix.signing import (
    ServerKey,
    check_signature_presence,
    key_id,
    key_lookup,
    required_signers,
    server_key_from_base64,
    server_key_of,
    sign_event,
    sign_json,
    verify_event_signatures,
)

# The appendix's "Cryptographic Test Vectors".
SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"


def _spec_key() -> SigningKey:
    return decode_signing_key_base64("ed25519", "1", SPEC_SEED)


class TestSpecVectors:
    def test_key_id(self) -> None:
        assert key_id(_spec_key()) == "ed25519:1"

    def test_sign_empty_json(self) -> None:
        signed = sign_json({}, "domain", _spec_key())
        assert signed == {
            "signatures": {
                "domain": {
                    "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                }
            }
        }

    def test_sign_json_with_data(self) -> None:
        signed = sign_json({"one": 1, "two": "Two"}, "domain", _spec_key())
        expected = {
            "one": 1,
            "signatures": {
                "domain": {
                    "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
                }
            },
            "two": "Two",
        }
        assert canonical_json(signed) == canonical_json(expected)

    def test_sign_json_ignores_unsigned(self) -> None:
        signed = sign_json({"one": 1, "two": "Two", "unsigned": {"x": 1}}, "domain", _spec_key())
        assert signed["signatures"]["domain"]["ed25519:1"].startswith("KqmLSbO39")
        assert signed["unsigned"] == {"x": 1}

    @staticmethod
    def _hash_and_sign(event: dict[str, Any]) -> dict[str, Any]:
        """The spec's hash_and_sign_event, with our functions (the vectors use the
        v1-v10 redaction rules: ``origin`` survives)."""
        event["hashes"] = {"sha256": content_hash(event)}
        sign_event(event, V1, "domain", _spec_key())
        return event

    def test_minimal_event(self) -> None:
        event = {
            "room_id": "!x:domain",
            "sender": "@a:domain",
            "origin": "domain",
            "origin_server_ts": 1000000,
            "signatures": {},
            "hashes": {},
            "type": "X",
            "content": {},
            "prev_events": [],
            "auth_events": [],
            "depth": 3,
            "unsigned": {"age_ts": 1000000},
        }
        expected: dict[str, Any] = {
            "auth_events": [],
            "content": {},
            "depth": 3,
            "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
            "origin": "domain",
            "origin_server_ts": 1000000,
            "prev_events": [],
            "room_id": "!x:domain",
            "sender": "@a:domain",
            "signatures": {
                "domain": {
                    "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
                }
            },
            "type": "X",
            "unsigned": {"age_ts": 1000000},
        }
        signed = self._hash_and_sign(event)
        assert signed["hashes"]["sha256"] == expected["hashes"]["sha256"]
        assert signed["signatures"] == expected["signatures"]
        assert canonical_json(signed) == canonical_json(expected)

    def test_redactable_event(self) -> None:
        event = {
            "content": {"body": "Here is the message content"},
            "event_id": "$0:domain",
            "origin": "domain",
            "origin_server_ts": 1000000,
            "type": "m.room.message",
            "room_id": "!r:domain",
            "sender": "@u:domain",
            "signatures": {},
            "unsigned": {"age_ts": 1000000},
        }
        expected: dict[str, Any] = {
            "content": {"body": "Here is the message content"},
            "event_id": "$0:domain",
            "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
            "origin": "domain",
            "origin_server_ts": 1000000,
            "type": "m.room.message",
            "room_id": "!r:domain",
            "sender": "@u:domain",
            "signatures": {
                "domain": {
                    "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
                }
            },
            "unsigned": {"age_ts": 1000000},
        }
        signed = self._hash_and_sign(event)
        assert signed["hashes"]["sha256"] == expected["hashes"]["sha256"]
        assert signed["signatures"] == expected["signatures"]
        assert canonical_json(signed) == canonical_json(expected)

    def test_spec_signature_verifies_with_our_verifier(self) -> None:
        """The minimal event, made a valid v1 PDU, verifies with the key's public half."""
        pdu = {
            "room_id": "!x:domain",
            "sender": "@a:domain",
            "event_id": "$e:domain",
            "origin_server_ts": 1000000,
            "type": "X",
            "content": {},
            "prev_events": [],
            "auth_events": [],
            "depth": 3,
        }
        self._hash_and_sign(pdu)
        event = parse_pdu(pdu, V1)
        key = server_key_of(_spec_key())
        verify_event_signatures(event, lambda s, k: key if k == "ed25519:1" else None)


# -- fixtures: a small room per version ---------------------------------------------------


class Servers:
    """Keys of three servers, and the lookup a key ring would give for them."""

    def __init__(self) -> None:
        self.keys = {name: generate_signing_key("k1") for name in ("a.test", "b.test", "c.test")}
        self.builders = {name: EventBuilder(name, key) for name, key in self.keys.items()}
        self.valid_until: dict[str, int | None] = {}

    def key_for(self, server: str, kid: str) -> ServerKey | None:
        key = self.keys.get(server)
        if key is None or kid != key_id(key):
            return None
        return server_key_of(key, self.valid_until.get(server))

    def create(self, version: RoomVersion) -> Event:
        return self.builders["a.test"].build(
            version,
            type="m.room.create",
            sender="@alice:a.test",
            state_key="",
            content={"creator": "@alice:a.test", "room_version": version.identifier},
            room_id="!room:a.test",
        )

    def event(self, version: RoomVersion, server: str = "b.test", **kw: Any) -> Event:
        create = self.create(version)
        room_id = room_id_for(create) if version.room_id_from_create_event else "!room:a.test"
        auth = [] if version.room_id_from_create_event else [create]
        fields: dict[str, Any] = {
            "type": "m.room.message",
            "sender": f"@bob:{server}",
            "content": {"body": "hi"},
        }
        fields.update(kw)
        return self.builders[server].build(
            version, room_id=room_id, prev_events=[create], auth_events=auth, **fields
        )


@pytest.fixture
def servers() -> Servers:
    return Servers()


def _resign(event: Event, mutate: Callable[[dict[str, Any]], None]) -> Event:
    pdu = copy.deepcopy(event.pdu)
    mutate(pdu)
    return parse_pdu(pdu, event.room_version, check_hash=False)


class TestRequiredSigners:
    def test_sender_server(self, servers: Servers) -> None:
        assert required_signers(servers.event(V10)) == {"b.test"}

    def test_v1_event_id_server(self, servers: Servers) -> None:
        event = servers.event(V1)
        pdu = copy.deepcopy(event.pdu)
        pdu["event_id"] = "$x:c.test"
        assert required_signers(parse_pdu(pdu, V1, check_hash=False)) == {"b.test", "c.test"}
        assert required_signers(event) == {"b.test"}

    def test_third_party_invite_needs_no_sender_signature(self, servers: Servers) -> None:
        content = {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}}
        event = servers.event(V10, type="m.room.member", state_key="@carol:c.test", content=content)
        assert required_signers(event) == set()
        v1_event = servers.event(
            V1, type="m.room.member", state_key="@carol:c.test", content=content
        )
        assert required_signers(v1_event) == {"b.test"}  # the event ID's server still signs

    def test_plain_invite_needs_sender(self, servers: Servers) -> None:
        event = servers.event(
            V10, type="m.room.member", state_key="@carol:c.test", content={"membership": "invite"}
        )
        assert required_signers(event) == {"b.test"}

    @pytest.mark.parametrize("version", [V8, V10, V12])
    def test_restricted_join_needs_the_authorising_server(
        self, servers: Servers, version: RoomVersion
    ) -> None:
        content = {"membership": "join", "join_authorised_via_users_server": "@alice:a.test"}
        event = servers.event(
            version, type="m.room.member", state_key="@bob:b.test", content=content
        )
        assert required_signers(event) == {"a.test", "b.test"}

    def test_authorising_user_ignored_before_v8(self, servers: Servers) -> None:
        content = {"membership": "join", "join_authorised_via_users_server": "@alice:a.test"}
        event = servers.event(V7, type="m.room.member", state_key="@bob:b.test", content=content)
        assert required_signers(event) == {"b.test"}

    def test_authorising_user_only_on_joins(self, servers: Servers) -> None:
        content = {"membership": "leave", "join_authorised_via_users_server": "@alice:a.test"}
        event = servers.event(V10, type="m.room.member", state_key="@bob:b.test", content=content)
        assert required_signers(event) == {"b.test"}

    @pytest.mark.parametrize("bad", [None, 5, "alice", "@alice", "@alice:bad server"])
    def test_invalid_authorising_user(self, servers: Servers, bad: object) -> None:
        content = {"membership": "join", "join_authorised_via_users_server": bad}
        event = servers.event(V10, type="m.room.member", state_key="@bob:b.test", content=content)
        with pytest.raises(SignatureError, match="join_authorised_via_users_server"):
            required_signers(event)


class TestVerify:
    @pytest.mark.parametrize("version", list(KNOWN_ROOM_VERSIONS.values()), ids=str)
    def test_valid(self, servers: Servers, version: RoomVersion) -> None:
        event = servers.event(version)
        verify_event_signatures(event, servers.key_for)
        check_signature_presence(event)

    def test_signature_from_a_fresh_parse(self, servers: Servers) -> None:
        """Verification works without the parser's cached signing bytes too (v1/v2)."""
        event = servers.event(V1)
        assert event._signing_bytes is None
        verify_event_signatures(event, servers.key_for)

    def test_restricted_join_with_both_signatures(self, servers: Servers) -> None:
        content = {"membership": "join", "join_authorised_via_users_server": "@alice:a.test"}
        event = servers.builders["b.test"].build(
            V10,
            type="m.room.member",
            sender="@bob:b.test",
            state_key="@bob:b.test",
            content=content,
            room_id="!room:a.test",
            extra_signers=[("a.test", servers.keys["a.test"])],
        )
        verify_event_signatures(event, servers.key_for)
        unsigned = _resign(event, lambda p: p["signatures"].pop("a.test"))
        with pytest.raises(SignatureError, match=re.escape("not signed by a.test")):
            verify_event_signatures(unsigned, servers.key_for)
        with pytest.raises(SignatureError, match=re.escape("not signed by a.test")):
            check_signature_presence(unsigned)

    def test_missing_signature(self, servers: Servers) -> None:
        event = _resign(servers.event(V10), lambda p: p["signatures"].clear())
        with pytest.raises(SignatureError, match=re.escape("not signed by b.test")):
            verify_event_signatures(event, servers.key_for)
        with pytest.raises(SignatureError, match=re.escape("not signed by b.test")):
            check_signature_presence(event)

    def test_empty_server_entry_is_missing(self, servers: Servers) -> None:
        event = _resign(servers.event(V10), lambda p: p["signatures"].update({"b.test": {}}))
        with pytest.raises(SignatureError, match=re.escape("not signed by b.test")):
            verify_event_signatures(event, servers.key_for)

    def test_signed_by_the_wrong_server(self, servers: Servers) -> None:
        event = _resign(
            servers.event(V10),
            lambda p: p["signatures"].update({"a.test": p["signatures"].pop("b.test")}),
        )
        with pytest.raises(SignatureError, match=re.escape("not signed by b.test")):
            verify_event_signatures(event, servers.key_for)

    def test_unknown_key(self, servers: Servers) -> None:
        event = servers.event(V10)
        with pytest.raises(SignatureError, match=r"b.test: ed25519:k1 is unknown"):
            verify_event_signatures(event, lambda server, kid: None)

    def test_only_unsupported_algorithms(self, servers: Servers) -> None:
        def rename(p: dict[str, Any]) -> None:
            p["signatures"]["b.test"] = {"rsa:k1": p["signatures"]["b.test"]["ed25519:k1"]}

        event = _resign(servers.event(V10), rename)
        with pytest.raises(SignatureError, match="no ed25519 signature"):
            verify_event_signatures(event, servers.key_for)

    def test_bad_signature(self, servers: Servers) -> None:
        other = generate_signing_key("k1")

        def forge(p: dict[str, Any]) -> None:
            p["signatures"] = {}
            sign_event(p, V10, "b.test", other)

        event = _resign(servers.event(V10), forge)
        with pytest.raises(
            SignatureError, match=re.escape("bad signature from b.test with key ed25519:k1")
        ):
            verify_event_signatures(event, servers.key_for)

    def test_signature_over_other_content(self, servers: Servers) -> None:
        """A changed kept field (the state key) breaks the signature."""
        event = _resign(servers.event(V10, state_key=""), lambda p: p.update(state_key="x"))
        with pytest.raises(SignatureError, match="bad signature"):
            verify_event_signatures(event, servers.key_for)

    def test_redacted_content_does_not_matter(self, servers: Servers) -> None:
        """Signatures cover the redacted event: a message body can change (the content
        hash catches that, not the signature)."""
        event = _resign(servers.event(V10), lambda p: p["content"].update(body="changed"))
        verify_event_signatures(event, servers.key_for)

    @pytest.mark.parametrize("sig", ["not base64 at all!!", "AAAA", "é"])
    def test_garbage_signature(self, servers: Servers, sig: str) -> None:
        event = _resign(
            servers.event(V10), lambda p: p["signatures"]["b.test"].update({"ed25519:k1": sig})
        )
        with pytest.raises(SignatureError, match=re.escape("b.test")):
            verify_event_signatures(event, servers.key_for)

    def test_one_good_one_unknown_key(self, servers: Servers) -> None:
        event = _resign(
            servers.event(V10),
            lambda p: p["signatures"]["b.test"].update({"ed25519:old": "AAAA"}),
        )
        verify_event_signatures(event, servers.key_for)

    def test_one_good_one_bad_known_key(self, servers: Servers) -> None:
        second = generate_signing_key("k2")
        event = _resign(
            servers.event(V10),
            lambda p: p["signatures"]["b.test"].update(
                {"ed25519:k2": p["signatures"]["b.test"]["ed25519:k1"]}
            ),
        )
        k2 = server_key_of(second)

        def lookup(server: str, kid: str) -> ServerKey | None:
            return k2 if (server, kid) == ("b.test", "ed25519:k2") else servers.key_for(server, kid)

        with pytest.raises(
            SignatureError, match=re.escape("bad signature from b.test with key ed25519:k2")
        ):
            verify_event_signatures(event, lookup)

    def test_expired_key_v5_and_later(self, servers: Servers) -> None:
        event = servers.event(V5, origin_server_ts=2_000_000)
        servers.valid_until["b.test"] = 1_999_999
        with pytest.raises(SignatureError, match="expired at 1999999, before the event's"):
            verify_event_signatures(event, servers.key_for)
        servers.valid_until["b.test"] = 2_000_000  # valid exactly until the event: fine
        verify_event_signatures(event, servers.key_for)

    def test_expired_key_ignored_before_v5(self, servers: Servers) -> None:
        event = servers.event(V4, origin_server_ts=2_000_000)
        servers.valid_until["b.test"] = 1
        verify_event_signatures(event, servers.key_for)

    def test_third_party_invite_from_another_server(self, servers: Servers) -> None:
        """Signed by c.test only, sent as b.test's user: allowed for a 3pid invite."""
        content = {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}}
        event = servers.builders["c.test"].build(
            V10,
            type="m.room.member",
            sender="@bob:b.test",
            state_key="@carol:c.test",
            content=content,
            room_id="!room:a.test",
        )
        verify_event_signatures(event, servers.key_for)


class TestKeys:
    def test_server_key_from_base64(self) -> None:
        vk = get_verify_key(_spec_key()).encode()
        key = server_key_from_base64(encode_base64(vk), valid_until_ts=5)
        assert key.verify_key.encode() == vk
        assert key.valid_until_ts == 5
        assert server_key_of(_spec_key(), 5) == key

    @pytest.mark.parametrize("bad", ["", "AAAA", "!!!!", "é"])
    def test_bad_public_key(self, bad: str) -> None:
        with pytest.raises(SignatureError, match="not an ed25519 public key"):
            server_key_from_base64(bad)

    def test_key_lookup(self) -> None:
        vk = encode_base64(get_verify_key(_spec_key()).encode())
        lookup = key_lookup({"domain": {"ed25519:1": vk}})
        found = lookup("domain", "ed25519:1")
        assert found is not None
        assert encode_base64(found.verify_key.encode()) == vk
        assert lookup("domain", "ed25519:2") is None
        assert lookup("other", "ed25519:1") is None


def test_rejectable_oversized_event_still_has_signers(servers: Servers) -> None:
    """An event kept as rejected for a 256-byte sender still answers who must sign it."""
    from roomserver.matrix.events import RejectableEventTooLarge

    sender = "@" + "é" * 125 + ":b.test"
    event = servers.event(V10)
    pdu = copy.deepcopy(event.pdu)
    pdu["sender"] = sender
    pdu["hashes"] = {"sha256": content_hash(pdu)}
    pdu["signatures"] = {}
    sign_event(pdu, V10, "b.test", servers.keys["b.test"])
    with pytest.raises(RejectableEventTooLarge) as info:
        parse_pdu(pdu, V10)
    assert required_signers(info.value.event) == {"b.test"}
    verify_event_signatures(info.value.event, servers.key_for)
