"""Power levels as the auth rules read them: users', named and per-event-type levels.

Reading follows Synapse (the reference every conformance answer came from): a value is
converted with Python's ``int()``, so before room v10 ``"50"``, ``" 50 "`` and ``true``
count as 50, 50 and 1, and a value ``int()`` refuses makes the check that needs it fail.
From v10 the rules refuse such power levels events when they are sent, so only integers
reach this module there. Nothing is converted before it is needed: a bad ``ban`` level
breaks membership changes, not messages, exactly as in Synapse.

State resolution calls the auth rules thousands of times with the same few power levels
and create events, so both are digested once and kept in a small cache keyed by the
event object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ..errors import AuthError
from ..events import CREATE, POWER_LEVELS, Event

CREATOR_POWER_LEVEL = 2**53
"""v12 creators' level: above every integer canonical JSON can carry (the spec's "infinite")."""

StateMap = Mapping[tuple[str, str], Event]

_CREATE_KEY = (CREATE, "")
_PL_KEY = (POWER_LEVELS, "")


def to_int(value: object, what: str) -> int:
    """``int(value)`` as Synapse applies it to power levels, refusing what it refuses."""
    if type(value) is int:
        return value
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError, OverflowError):
        raise AuthError(f"power level {what} is not an integer: {value!r}") from None


class _Bad:
    """A power levels field that cannot be read; raises when (and only when) it is needed."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _named(content: Mapping[str, Any], name: str, default: int) -> int | _Bad:
    value = content.get(name)
    if value is None:
        return default
    try:
        return to_int(value, name)
    except AuthError as e:
        return _Bad(e.message)


def _mapping(content: Mapping[str, Any], name: str) -> Mapping[str, Any] | _Bad:
    value = content.get(name, {})
    if isinstance(value, Mapping):
        return value
    return _Bad(f"power levels {name!r} is not an object: {value!r}")


class PowerLevels:
    """One ``m.room.power_levels`` content, digested for fast lookups."""

    __slots__ = (
        "ban",
        "content",
        "events",
        "events_default",
        "invite",
        "kick",
        "redact",
        "state_default",
        "users",
        "users_default",
    )

    def __init__(self, content: Mapping[str, Any]) -> None:
        self.content = content
        self.users = _mapping(content, "users")
        self.events = _mapping(content, "events")
        self.users_default = _named(content, "users_default", 0)
        # A null events/state default is not "absent" to Synapse: int(None) fails.
        self.events_default = _explicit(content, "events_default", 0)
        self.state_default = _explicit(content, "state_default", 50)
        self.ban = _named(content, "ban", 50)
        self.kick = _named(content, "kick", 50)
        self.invite = _named(content, "invite", 0)
        self.redact = _named(content, "redact", 50)


def _explicit(content: Mapping[str, Any], name: str, default: int) -> int | _Bad:
    if name not in content:
        return default
    try:
        return to_int(content[name], name)
    except AuthError as e:
        return _Bad(e.message)


_NO_POWER_LEVELS = PowerLevels({})


def _value(v: int | _Bad) -> int:
    if isinstance(v, _Bad):
        raise AuthError(v.message)
    return v


class EventCache:
    """A tiny FIFO cache from an event object to what was derived from it.

    Keyed by ``id(event)`` and holding the event, so the key cannot be reused while the
    entry lives; a redacted copy of an event is another object, hence another entry. Kept
    small because it keeps its events alive (a power levels event can be large).
    """

    __slots__ = ("entries", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: dict[int, tuple[Event, Any]] = {}

    def get(self, event: Event) -> Any:
        entry = self.entries.get(id(event))
        if entry is not None and entry[0] is event:
            return entry[1]
        return None

    def put(self, event: Event, value: Any) -> None:
        if len(self.entries) >= self.size:
            # another thread may change the dict meanwhile: then skip the eviction
            with contextlib.suppress(RuntimeError, StopIteration):
                self.entries.pop(next(iter(self.entries)), None)
        self.entries[id(event)] = (event, value)


_levels_cache = EventCache(128)
_creators_cache = EventCache(64)


def power_levels(state: StateMap) -> PowerLevels:
    """The power levels in force (defaults when the room has none)."""
    event = state.get(_PL_KEY)
    if event is None:
        return _NO_POWER_LEVELS
    levels: PowerLevels | None = _levels_cache.get(event)
    if levels is None:
        levels = PowerLevels(event.content)
        _levels_cache.put(event, levels)
    return levels


def creators(create: Event) -> frozenset[str]:
    """v12 room creators: the create event's sender and its ``additional_creators``."""
    found: frozenset[str] | None = _creators_cache.get(create)
    if found is None:
        extra = create.content.get("additional_creators", [])
        names = {create.sender}
        if isinstance(extra, list):
            names.update(x for x in extra if isinstance(x, str))
        found = frozenset(names)
        _creators_cache.put(create, found)
    return found


def room_creator(create: Event) -> str | None:
    """The creator the first join and the no-power-levels default refer to.

    v11+ (implicit creator): the create event's sender; before: ``content.creator``.
    """
    if create.room_version.implicit_room_creator:
        return create.sender
    if "creator" not in create.content:
        raise AuthError("the create event has no 'creator' (required before room v11)")
    creator = create.content["creator"]
    return creator if isinstance(creator, str) else None


def user_level(user_id: str, state: StateMap) -> int:
    """``user_id``'s power level; ``state`` must hold the create event."""
    create = state.get(_CREATE_KEY)
    if create is None:
        raise AuthError("no m.room.create event in the state")
    if create.room_version.privileged_creators and user_id in creators(create):
        return CREATOR_POWER_LEVEL
    event = state.get(_PL_KEY)
    if event is None:
        # No power levels yet: the creator has 100, everybody else 0.
        return 100 if room_creator(create) == user_id else 0
    levels = power_levels(state)
    users = levels.users
    if isinstance(users, _Bad):
        raise AuthError(users.message)
    level = users.get(user_id)
    if level is None:
        return _value(levels.users_default)
    return to_int(level, f"of {user_id}")


def named_level(levels: PowerLevels, name: str) -> int:
    """One of ``ban``, ``kick``, ``invite``, ``redact`` (with the spec's defaults)."""
    value: int | _Bad = getattr(levels, name)
    return _value(value)


def send_level(levels: PowerLevels, event_type: str, is_state: bool) -> int:
    """The *required power level* to send an event of ``event_type``."""
    events = levels.events
    if isinstance(events, _Bad):
        raise AuthError(events.message)
    level = events.get(event_type)
    if level is not None:
        return to_int(level, f"for {event_type}")
    return _value(levels.state_default if is_state else levels.events_default)
