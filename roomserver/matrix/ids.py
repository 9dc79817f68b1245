"""Matrix identifiers: server names, user IDs, room IDs, event IDs and room aliases.

Follows the grammar of the spec's appendix ("Identifier Grammar") and of the room versions
(event ID formats, v12 room IDs). Parsers return small frozen dataclasses and raise
:class:`~roomserver.matrix.errors.InvalidIdentifier` with a message saying what is wrong;
``is_valid_*`` functions answer the same question without raising.

Two places are deliberately tolerant, because rooms in the wild depend on it:

- User ID localparts: besides today's grammar (``a-z 0-9 . _ = - / +``) the spec's
  *historical* user IDs must still be accepted: any non-surrogate code points except ``:``
  and NUL, the empty string included. :attr:`UserID.is_historical` tells them apart.
- Room IDs with a domain and v1/v2 event IDs have an opaque part with the same rule.

Validation that events repeat (a sender, a room ID) is memoised, since a room carries the
same few of each in thousands of events.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from .errors import InvalidIdentifier
from .room_versions import EventFormat, RoomVersion

MAX_ID_BYTES = 255
"""User IDs, room IDs, event IDs and aliases: at most 255 bytes of UTF-8, sigil included."""

HostKind = Literal["dns", "ipv4", "ipv6"]

_PORT = re.compile(r"[0-9]{1,5}")
_IPV4 = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_DNS_NAME = re.compile(r"[A-Za-z0-9.\-]{1,255}")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_USER_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
_HASH_ID = {
    EventFormat.V2: re.compile(r"[A-Za-z0-9+/]{43}"),
    EventFormat.V3: re.compile(r"[A-Za-z0-9_\-]{43}"),
}


@dataclass(frozen=True, slots=True)
class ServerName:
    """A server name split into its host and optional port."""

    host: str
    """A DNS name, a dotted-quad IPv4 literal, or an IPv6 literal *with* its brackets."""
    port: int | None
    kind: HostKind

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UserID:
    localpart: str
    server_name: str

    def __str__(self) -> str:
        return f"@{self.localpart}:{self.server_name}"

    @property
    def is_historical(self) -> bool:
        """Whether the localpart is outside today's grammar (still valid in events)."""
        return _USER_LOCALPART.fullmatch(self.localpart) is None


@dataclass(frozen=True, slots=True)
class RoomID:
    opaque_id: str
    """The localpart of a ``!opaque:domain`` room ID, or the hash of a v12 room ID."""
    server_name: str | None
    """``None`` for v12 room IDs, which are named after their create event."""

    def __str__(self) -> str:
        return (
            f"!{self.opaque_id}"
            if self.server_name is None
            else f"!{self.opaque_id}:{self.server_name}"
        )

    @property
    def create_event_id(self) -> str | None:
        """The v12 create event's ID this room ID is derived from, if it is a v12 room ID."""
        return None if self.server_name is not None else f"${self.opaque_id}"


@dataclass(frozen=True, slots=True)
class EventID:
    opaque_id: str
    """The localpart of a v1/v2 event ID, or the base64 reference hash of a v3+ one."""
    server_name: str | None
    """Only v1/v2 event IDs (``$opaque:domain``) name a server."""

    def __str__(self) -> str:
        return (
            f"${self.opaque_id}"
            if self.server_name is None
            else f"${self.opaque_id}:{self.server_name}"
        )


@dataclass(frozen=True, slots=True)
class RoomAlias:
    localpart: str
    server_name: str

    def __str__(self) -> str:
        return f"#{self.localpart}:{self.server_name}"


# -- server names -----------------------------------------------------------------------------


def parse_server_name(value: str) -> ServerName:
    """Split and validate ``hostname [":" port]`` (DNS name, IPv4, or ``[IPv6]``)."""
    if type(value) is not str:
        raise InvalidIdentifier(f"server name must be a string, got {type(value).__name__}")
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            raise InvalidIdentifier(f"server name {value!r}: '[' without a closing ']'")
        host, rest = value[: end + 1], value[end + 1 :]
        address = host[1:-1]
        if _IPV6_CHARS.fullmatch(address) is None:
            raise InvalidIdentifier(f"server name {value!r}: {address!r} is not an IPv6 literal")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise InvalidIdentifier(
                f"server name {value!r}: {address!r} is not a valid IPv6 address"
            ) from None
        kind: HostKind = "ipv6"
        if rest and not rest.startswith(":"):
            raise InvalidIdentifier(f"server name {value!r}: unexpected {rest!r} after ']'")
    else:
        host, sep, port_text = value.partition(":")
        rest = sep + port_text
        if not host:
            raise InvalidIdentifier(f"server name {value!r}: empty hostname")
        ipv4 = _IPV4.fullmatch(host)
        if ipv4 is not None:
            if any(int(octet) > 255 for octet in ipv4.groups()):
                raise InvalidIdentifier(
                    f"server name {value!r}: IPv4 octets must be between 0 and 255"
                )
            kind = "ipv4"
        elif _DNS_NAME.fullmatch(host) is not None:
            kind = "dns"
        else:
            raise InvalidIdentifier(
                f"server name {value!r}: a DNS name may only contain letters, digits, '-' and '.'"
                " (at most 255 of them)"
            )
    port: int | None = None
    if rest:
        port_text = rest[1:]
        if _PORT.fullmatch(port_text) is None:
            raise InvalidIdentifier(f"server name {value!r}: port must be 1 to 5 digits")
        port = int(port_text)
    return ServerName(host, port, kind)


def is_valid_server_name(value: object) -> bool:
    return type(value) is str and _server_name_ok(value)


@lru_cache(maxsize=4096)
def _server_name_ok(value: str) -> bool:
    try:
        parse_server_name(value)
    except InvalidIdentifier:
        return False
    return True


# -- user IDs, room IDs, aliases --------------------------------------------------------------


def _check_length(value: str, what: str) -> None:
    if len(value) > MAX_ID_BYTES or (
        len(value) > MAX_ID_BYTES // 4 and len(value.encode("utf-8")) > MAX_ID_BYTES
    ):
        raise InvalidIdentifier(f"{what} {value[:40]!r}… is longer than {MAX_ID_BYTES} bytes")


def _split(value: object, sigil: str, what: str, check_length: bool = True) -> tuple[str, str]:
    """``sigil localpart ":" server_name`` -> (localpart, server name), both checked."""
    if type(value) is not str:
        raise InvalidIdentifier(f"{what} must be a string, got {type(value).__name__}")
    if not value.startswith(sigil):
        raise InvalidIdentifier(f"{what} {value!r} must start with {sigil!r}")
    if check_length:
        _check_length(value, what)
    localpart, sep, server_name = value[1:].partition(":")
    if not sep:
        raise InvalidIdentifier(f"{what} {value!r} has no ':server_name' part")
    if "\x00" in localpart:
        raise InvalidIdentifier(f"{what} {value!r}: the localpart must not contain NUL")
    if not localpart.isascii():
        try:
            localpart.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidIdentifier(f"{what} {value!r} contains a lone surrogate") from None
    if not _server_name_ok(server_name):
        parse_server_name(server_name)  # raises with the precise reason
    return localpart, server_name


def parse_user_id(
    value: str, *, allow_historical: bool = True, check_length: bool = True
) -> UserID:
    """``@localpart:server_name``, at most 255 bytes.

    With ``allow_historical`` (the default, as events require) the localpart may be any
    string without ``:`` or NUL; without it, only today's grammar is accepted, as for
    newly registered users. ``check_length=False`` leaves the length to the caller (the
    event parser, whose size rules depend on the room version).
    """
    localpart, server_name = _split(value, "@", "user ID", check_length)
    if not allow_historical and _USER_LOCALPART.fullmatch(localpart) is None:
        raise InvalidIdentifier(
            f"user ID {value!r}: the localpart must be non-empty and only contain a-z, 0-9,"
            " '.', '_', '=', '-', '/' and '+'"
        )
    return UserID(localpart, server_name)


def is_valid_user_id(value: object, *, allow_historical: bool = True) -> bool:
    """Whether ``value`` is a user ID (memoised: events repeat the same senders)."""
    return type(value) is str and _user_id_ok(value, allow_historical)


@lru_cache(maxsize=16384)
def _user_id_ok(value: str, allow_historical: bool) -> bool:
    try:
        parse_user_id(value, allow_historical=allow_historical)
    except InvalidIdentifier:
        return False
    return True


def parse_room_id(
    value: str, version: RoomVersion | None = None, *, check_length: bool = True
) -> RoomID:
    """``!opaque:server_name``, or in room v12 ``!`` + the URL-safe hash of the create event.

    Without ``version`` either form is accepted (a room ID without ``:`` must be a v12 one).
    """
    hashed = None if version is None else version.room_id_from_create_event
    return _parse_room_id(value, hashed, check_length)


def _parse_room_id(value: object, hashed: bool | None, check_length: bool) -> RoomID:
    if type(value) is not str:
        raise InvalidIdentifier(f"room ID must be a string, got {type(value).__name__}")
    if hashed is None:
        hashed = value.startswith("!") and ":" not in value
    if not hashed:
        opaque, server_name = _split(value, "!", "room ID", check_length)
        return RoomID(opaque, server_name)
    if not value.startswith("!"):
        raise InvalidIdentifier(f"room ID {value!r} must start with '!'")
    if _HASH_ID[EventFormat.V3].fullmatch(value, 1) is None:
        raise InvalidIdentifier(
            f"room ID {value!r} must be '!' and 43 URL-safe base64 characters in room version 12"
        )
    return RoomID(value[1:], None)


def is_valid_room_id(value: object, version: RoomVersion | None = None) -> bool:
    """Whether ``value`` is a room ID (of ``version``'s form, if given); memoised."""
    if type(value) is not str:
        return False
    hashed = None if version is None else version.room_id_from_create_event
    return _room_id_ok(value, hashed)


@lru_cache(maxsize=4096)
def _room_id_ok(value: str, hashed: bool | None) -> bool:
    try:
        _parse_room_id(value, hashed, True)
    except InvalidIdentifier:
        return False
    return True


def parse_room_alias(value: str) -> RoomAlias:
    """``#localpart:server_name``."""
    localpart, server_name = _split(value, "#", "room alias")
    return RoomAlias(localpart, server_name)


# -- event IDs --------------------------------------------------------------------------------


def event_id_format_error(
    value: object, event_format: EventFormat, *, check_length: bool = True
) -> str | None:
    """Why ``value`` is not an event ID of ``event_format``, or ``None`` if it is one."""
    if type(value) is not str:
        return f"event ID must be a string, got {type(value).__name__}"
    if not value.startswith("$"):
        return f"event ID {value!r} must start with '$'"
    if event_format is EventFormat.V1:
        try:
            _split(value, "$", "event ID", check_length)
        except InvalidIdentifier as e:
            return e.message
        return None
    if _HASH_ID[event_format].fullmatch(value, 1) is None:
        alphabet = "standard" if event_format is EventFormat.V2 else "URL-safe"
        return f"event ID {value!r} must be '$' and 43 {alphabet} base64 characters"
    return None


def parse_event_id(value: str, version: RoomVersion | None = None) -> EventID:
    """An event ID in the format of ``version`` (v1/v2 ``$opaque:server``; v3 standard and
    v4+ URL-safe base64 of a sha256). Without ``version`` any of the three is accepted."""
    if version is not None:
        formats: tuple[EventFormat, ...] = (version.event_format,)
    elif type(value) is str and ":" in value:
        formats = (EventFormat.V1,)
    else:
        formats = (EventFormat.V3, EventFormat.V2)
    first_error = None
    for event_format in formats:
        error = event_id_format_error(value, event_format)
        first_error = first_error or error
        if error is None:
            if event_format is EventFormat.V1:
                opaque, _, server_name = value[1:].partition(":")
                return EventID(opaque, server_name)
            return EventID(value[1:], None)
    raise InvalidIdentifier(first_error or f"invalid event ID {value!r}")


def is_valid_event_id(value: object, version: RoomVersion | None = None) -> bool:
    if type(value) is not str:
        return False
    try:
        parse_event_id(value, version)
    except InvalidIdentifier:
        return False
    return True


# -- shortcuts --------------------------------------------------------------------------------


def server_name_of(identifier: str) -> str:
    """The server name of a user ID, alias, ``!opaque:domain`` room ID or v1/v2 event ID.

    Raises :class:`InvalidIdentifier` for IDs without one (v12 room IDs, v3+ event IDs).
    """
    if type(identifier) is not str or not identifier:
        raise InvalidIdentifier(f"not an identifier: {identifier!r}")
    sigil = identifier[0]
    what = {"@": "user ID", "!": "room ID", "$": "event ID", "#": "room alias"}.get(sigil)
    if what is None:
        raise InvalidIdentifier(f"identifier {identifier!r} has no known sigil (@, !, $, #)")
    if sigil == "@" and _user_id_ok(identifier, True):
        return identifier.partition(":")[2]
    return _split(identifier, sigil, what)[1]
