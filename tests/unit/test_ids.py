"""Identifier grammar: server names, user IDs, room IDs, event IDs, aliases."""

from __future__ import annotations

import pytest

from roomserver.matrix.errors import InvalidIdentifier
from roomserver.matrix.ids import (
    EventID,
    RoomID,
    ServerName,
    UserID,
    is_valid_event_id,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
    parse_event_id,
    parse_room_alias,
    parse_room_id,
    parse_server_name,
    parse_user_id,
    server_name_of,
)
from roomserver.matrix.room_versions import V1, V3, V4, V10, V11, V12

HASH_URLSAFE = "$" + "Ab_-" * 10 + "xyz"
HASH_STANDARD = "$" + "Ab+/" * 10 + "xyz"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("matrix.org", ServerName("matrix.org", None, "dns")),
        ("matrix.org:8888", ServerName("matrix.org", 8888, "dns")),
        ("localhost", ServerName("localhost", None, "dns")),
        ("a-b.example", ServerName("a-b.example", None, "dns")),
        ("1.2.3.4", ServerName("1.2.3.4", None, "ipv4")),
        ("1.2.3.4:1234", ServerName("1.2.3.4", 1234, "ipv4")),
        ("255.255.255.255", ServerName("255.255.255.255", None, "ipv4")),
        ("[1234:5678::abcd]", ServerName("[1234:5678::abcd]", None, "ipv6")),
        ("[1234:5678::abcd]:5678", ServerName("[1234:5678::abcd]", 5678, "ipv6")),
        ("[::1]", ServerName("[::1]", None, "ipv6")),
        ("[::ffff:1.2.3.4]:8448", ServerName("[::ffff:1.2.3.4]", 8448, "ipv6")),
        ("MATRIX.ORG", ServerName("MATRIX.ORG", None, "dns")),  # valid, though discouraged
        ("a" * 255, ServerName("a" * 255, None, "dns")),
        ("x:0", ServerName("x", 0, "dns")),
        ("x:99999", ServerName("x", 99999, "dns")),  # the grammar allows 5 digits
    ],
)
def test_valid_server_names(value: str, expected: ServerName) -> None:
    assert parse_server_name(value) == expected
    assert str(parse_server_name(value)) == value
    assert is_valid_server_name(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty hostname"),
        (":8448", "empty hostname"),
        ("matrix.org:", "port"),
        ("matrix.org:123456", "port"),
        ("matrix.org:80a", "port"),
        ("matrix.org:+80", "port"),
        ("matrix.org:٣", "port"),  # a non-ASCII digit
        ("matrix_org", "DNS name"),
        ("matrix org", "DNS name"),
        ("mätrix.org", "DNS name"),
        ("a" * 256, "DNS name"),
        ("256.1.1.1", "IPv4"),
        ("1.2.3.999", "IPv4"),
        ("[1234:5678::abcd", "closing"),
        ("[]", "IPv6"),
        ("[::1%eth0]", "IPv6"),
        ("[1:2:3:4:5:6:7:8:9]", "IPv6"),
        ("[12345::]", "IPv6"),
        ("[::1]x", "after"),
        ("[::1]:", "port"),
        ("matrix.org\n", "DNS name"),
    ],
)
def test_invalid_server_names(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason):
        parse_server_name(value)
    assert not is_valid_server_name(value)


def test_server_name_of_non_string() -> None:
    assert not is_valid_server_name(None)
    with pytest.raises(InvalidIdentifier):
        parse_server_name(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["@alice:example.org", "@a.b_c=d-e/f+g:example.org:8448", "@0:[::1]", "@x:1.2.3.4"],
)
def test_compliant_user_ids(value: str) -> None:
    user = parse_user_id(value, allow_historical=False)
    assert str(user) == value
    assert not user.is_historical
    assert is_valid_user_id(value, allow_historical=False)


@pytest.mark.parametrize(
    "value",
    [
        "@Alice:example.org",  # upper case
        "@:example.org",  # empty localpart
        "@alice smith:example.org",
        "@ünïcödé:example.org",
        "@\x01ctl:example.org",  # control characters are historical, not forbidden
        "@a#b!c:example.org",
    ],
)
def test_historical_user_ids_parse_but_are_flagged(value: str) -> None:
    user = parse_user_id(value)
    assert user.is_historical
    assert str(user) == value
    assert is_valid_user_id(value)
    with pytest.raises(InvalidIdentifier, match="localpart"):
        parse_user_id(value, allow_historical=False)
    assert not is_valid_user_id(value, allow_historical=False)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("alice:example.org", "must start with '@'"),
        ("@alice", "no ':server_name'"),
        ("@alice:", "empty hostname"),
        ("@alice:bad_server", "DNS name"),
        ("@al\x00ice:example.org", "NUL"),
        ("@al\ud800ice:example.org", "surrogate"),
        ("@" + "a" * 250 + ":example.org", "longer than 255"),
        ("@" + "é" * 125 + ":example.org", "longer than 255"),  # 255 chars are > 255 bytes
        ("@a:b:c", "port"),
    ],
)
def test_invalid_user_ids(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason):
        parse_user_id(value)
    assert not is_valid_user_id(value)


def test_user_id_non_string() -> None:
    assert not is_valid_user_id(["@a:b"])
    with pytest.raises(InvalidIdentifier, match="must be a string"):
        parse_user_id(None)  # type: ignore[arg-type]


def test_user_id_at_the_length_limit() -> None:
    value = "@" + "a" * (255 - len("@:example.org")) + ":example.org"
    assert len(value) == 255
    assert parse_user_id(value).server_name == "example.org"


@pytest.mark.parametrize(
    ("value", "version", "expected"),
    [
        ("!abc:example.org", V1, RoomID("abc", "example.org")),
        ("!abc:example.org", V11, RoomID("abc", "example.org")),
        ("!:example.org", None, RoomID("", "example.org")),
        ("!Ünï cödé:example.org:8448", V10, RoomID("Ünï cödé", "example.org:8448")),
        ("!" + HASH_URLSAFE[1:], V12, RoomID(HASH_URLSAFE[1:], None)),
        ("!" + HASH_URLSAFE[1:], None, RoomID(HASH_URLSAFE[1:], None)),
        ("!abc:example.org", None, RoomID("abc", "example.org")),
    ],
)
def test_valid_room_ids(value: str, version: object, expected: RoomID) -> None:
    room = parse_room_id(value, version)  # type: ignore[arg-type]
    assert room == expected
    assert str(room) == value
    assert is_valid_room_id(value, version)  # type: ignore[arg-type]


def test_v12_room_id_names_its_create_event() -> None:
    assert parse_room_id("!" + HASH_URLSAFE[1:], V12).create_event_id == HASH_URLSAFE
    assert parse_room_id("!a:b", V10).create_event_id is None


@pytest.mark.parametrize(
    ("value", "version", "reason"),
    [
        ("abc:example.org", V10, "must start with '!'"),
        ("!abc", V10, "no ':server_name'"),
        ("!abc:example.org", V12, "43 URL-safe"),
        ("!" + HASH_STANDARD[1:], V12, "43 URL-safe"),
        ("!" + HASH_URLSAFE[1:] + "A", V12, "43 URL-safe"),
        ("$" + HASH_URLSAFE[1:], V12, "must start with '!'"),
        ("!abc", None, "43 URL-safe"),
        ("!a\x00b:example.org", V10, "NUL"),
        ("!" + "a" * 255 + ":x", V10, "longer than 255"),
        (5, V10, "must be a string"),
    ],
)
def test_invalid_room_ids(value: str, version: object, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason):
        parse_room_id(value, version)  # type: ignore[arg-type]
    assert not is_valid_room_id(value, version)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "version", "expected"),
    [
        ("$abc:example.org", V1, EventID("abc", "example.org")),
        ("$1234-x_y:example.org:8448", None, EventID("1234-x_y", "example.org:8448")),
        (HASH_STANDARD, V3, EventID(HASH_STANDARD[1:], None)),
        (HASH_URLSAFE, V4, EventID(HASH_URLSAFE[1:], None)),
        (HASH_URLSAFE, V12, EventID(HASH_URLSAFE[1:], None)),
        (HASH_URLSAFE, None, EventID(HASH_URLSAFE[1:], None)),
        (HASH_STANDARD, None, EventID(HASH_STANDARD[1:], None)),
        ("$" + "A" * 43, V3, EventID("A" * 43, None)),  # both alphabets
        ("$" + "A" * 43, V4, EventID("A" * 43, None)),
    ],
)
def test_valid_event_ids(value: str, version: object, expected: EventID) -> None:
    event_id = parse_event_id(value, version)  # type: ignore[arg-type]
    assert event_id == expected
    assert str(event_id) == value
    assert is_valid_event_id(value, version)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "version", "reason"),
    [
        ("abc:example.org", V1, "must start with '\\$'"),
        ("$abc", V1, "no ':server_name'"),
        ("$abc:bad server", V1, "DNS name"),
        (HASH_URLSAFE, V1, "no ':server_name'"),
        (HASH_URLSAFE, V3, "43 standard"),
        (HASH_STANDARD, V4, "43 URL-safe"),
        (HASH_URLSAFE[:-1], V10, "43 URL-safe"),
        (HASH_URLSAFE + "A", V10, "43 URL-safe"),
        ("$abc:example.org", V10, "43 URL-safe"),
        ("$" + "a" * 300 + ":x", V1, "longer than 255"),
        (None, V10, "must be a string"),
        ("$", None, "43 URL-safe"),
    ],
)
def test_invalid_event_ids(value: str, version: object, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason):
        parse_event_id(value, version)  # type: ignore[arg-type]
    assert not is_valid_event_id(value, version)  # type: ignore[arg-type]


def test_room_aliases() -> None:
    alias = parse_room_alias("#Room Name:example.org")
    assert (alias.localpart, alias.server_name) == ("Room Name", "example.org")
    assert str(alias) == "#Room Name:example.org"
    for bad in ("room:example.org", "#room", "#room:", "#ro\x00om:example.org"):
        with pytest.raises(InvalidIdentifier):
            parse_room_alias(bad)


@pytest.mark.parametrize(
    ("identifier", "server"),
    [
        ("@alice:example.org", "example.org"),
        ("@:[::1]:8448", "[::1]:8448"),
        ("!room:example.org:80", "example.org:80"),
        ("$event:1.2.3.4", "1.2.3.4"),
        ("#alias:example.org", "example.org"),
    ],
)
def test_server_name_of(identifier: str, server: str) -> None:
    assert server_name_of(identifier) == server


@pytest.mark.parametrize(
    "identifier", ["", "alice:example.org", "!" + HASH_URLSAFE[1:], HASH_URLSAFE, "@alice", None]
)
def test_server_name_of_refuses_ids_without_one(identifier: str) -> None:
    with pytest.raises(InvalidIdentifier):
        server_name_of(identifier)


def test_user_id_dataclass_is_frozen() -> None:
    user = UserID("a", "b")
    with pytest.raises(AttributeError):
        user.localpart = "c"  # type: ignore[misc]
