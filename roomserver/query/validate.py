"""Checks of the identifiers a query names, before any of them reaches SQL.

A malformed ID is the caller's bug, so it gets a 400 ``M_INVALID_PARAM`` naming the field.
Checking first also keeps strings the databases cannot store (NUL, lone surrogates) away
from them: such a string would otherwise surface as a driver error, i.e. a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from roomserver.errors import ServiceError, bad_request
from roomserver.matrix.errors import InvalidIdentifier
from roomserver.matrix.ids import (
    parse_event_id,
    parse_room_alias,
    parse_room_id,
    parse_server_name,
    parse_user_id,
)

MAX_STATE_STRING = 65_536
"""Event types and state keys longer than this cannot be in any stored event (PDU limit)."""


def _bad(field: str, error: InvalidIdentifier | str) -> ServiceError:
    message = error.message if isinstance(error, InvalidIdentifier) else error
    return bad_request(f"{field}: {message}")


def _checked(parse: Callable[[str], object], value: str, field: str) -> str:
    try:
        parse(value)
    except InvalidIdentifier as e:
        raise _bad(field, e) from None
    return value


def room_id(value: str, field: str = "room_id") -> str:
    return _checked(parse_room_id, value, field)


def user_id(value: str, field: str = "user_id") -> str:
    # historical localparts allowed: old rooms have them
    return _checked(parse_user_id, value, field)


def alias(value: str, field: str = "alias") -> str:
    return _checked(parse_room_alias, value, field)


def server_name(value: str, field: str = "server_name") -> str:
    return _checked(parse_server_name, value, field)


def event_ids(values: Iterable[str], field: str) -> list[str]:
    """The IDs, each in one of the event ID formats of some room version."""
    out = list(values)
    for i, value in enumerate(out):
        _checked(parse_event_id, value, f"{field}[{i}]")
    return out


def _storable(value: str) -> bool:
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def state_tuples(
    tuples: Sequence[tuple[str, str]] | None, field: str = "state_to_fetch"
) -> list[tuple[str, str]] | None:
    """``(type, state key)`` pairs that could name stored state (UTF-8 without NUL)."""
    if tuples is None:
        return None
    for i, (event_type, state_key) in enumerate(tuples):
        for what, value in (("type", event_type), ("state key", state_key)):
            if len(value) > MAX_STATE_STRING or not _storable(value):
                raise _bad(f"{field}[{i}]", f"the {what} is not valid UTF-8 text without NUL")
    return list(tuples)
