"""Auth rule 9 (v1-v5: 10, v12: 10): changes to ``m.room.power_levels``.

Nobody may grant, take away or move a level above their own, nor touch the level of a user
at or above their own. Version switches: ``notifications`` is guarded like ``events`` from
v6; from v10 every level must be a real integer (no ``"50"``, no ``true``); from v12 the
room creators must not appear in ``users`` (their power is implied and absolute).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import AuthError
from ..events import CREATE, Event
from .ids import looks_like_user_id
from .levels import EventCache, StateMap, creators, to_int, user_level

NAMED_LEVELS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)
_NAMED_SET = frozenset(NAMED_LEVELS)
_MAPS = frozenset(("events", "notifications", "users"))


def _check_content(event: Event) -> None:
    """The rules on the new content alone (9.1; v10 integers): cached, they never change."""
    verdict: str | None = _content_cache.get(event)
    if verdict is None:
        try:
            _check_users(event.content)
            if event.room_version.enforce_int_power_levels:
                _check_integers_only(event.content)
            verdict = ""
        except AuthError as e:
            verdict = e.message
        _content_cache.put(event, verdict)
    if verdict:
        raise AuthError(verdict)


_content_cache = EventCache(64)


def _check_users(content: Mapping[str, Any]) -> None:
    users = content.get("users", {})
    if not isinstance(users, Mapping):
        raise AuthError(f"power levels: 'users' is not an object (rule 9.1): {users!r}")
    for user_id, level in users.items():
        if not looks_like_user_id(user_id):
            raise AuthError(f"power levels: {user_id!r} in 'users' is not a user ID (rule 9.1)")
        to_int(level, f"of {user_id}")


def _check_integers_only(content: Mapping[str, Any]) -> None:
    """v10+: levels must be JSON integers, nested ones included."""
    for key, value in content.items():
        if key in _NAMED_SET:
            if type(value) is not int:
                raise AuthError(f"power levels: {key} must be an integer in room v10+: {value!r}")
        elif key in _MAPS and (
            not isinstance(value, Mapping) or any(type(v) is not int for v in value.values())
        ):
            raise AuthError(
                f"power levels: {key} must be an object of integers in room v10+: {value!r}"
            )


def _sub_map(content: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``content[name]`` as a map; Synapse copes with an empty string or list, nothing else."""
    value = content.get(name, {})
    if isinstance(value, Mapping):
        return value
    if isinstance(value, (str, list)) and not value:
        return {}
    raise AuthError(f"power levels: {name!r} is not an object: {value!r}")


def _changed(
    old: Mapping[str, Any], new: Mapping[str, Any], keys: Iterable[str], where: str
) -> Iterator[tuple[str, int | None, int | None]]:
    """``(key, old level, new level)`` for each key among ``keys`` whose level changes."""
    for key in keys:
        o = old.get(key, _ABSENT)
        n = new.get(key, _ABSENT)
        if type(o) is int and type(n) is int and o == n:
            continue  # the common case, decided without conversions
        old_level = None if o is _ABSENT else to_int(o, f"{where}{key}")
        new_level = None if n is _ABSENT else to_int(n, f"{where}{key}")
        if old_level is not None and old_level == new_level:
            continue
        yield key, old_level, new_level


_ABSENT: Any = object()


def check_power_levels_change(event: Event, state: StateMap) -> None:
    """Raise :class:`AuthError` unless the power levels event ``event`` may replace the current."""
    _check_content(event)
    new = event.content
    version = event.room_version

    if version.privileged_creators:
        create = state.get((CREATE, ""))
        if create is None:
            raise AuthError("power levels: no create event to check creators against")
        new_users = new.get("users", {})
        for creator in creators(create):
            if creator in new_users:
                raise AuthError(
                    f"power levels: room creator {creator} must not appear in 'users' (v12)"
                )

    # Only the room's power levels (state key "") are compared with a predecessor.
    current = state.get((event.type, event.state_key)) if event.state_key == "" else None
    if current is None:
        return  # the first power levels event may set anything (rule 9.2)
    old = current.content
    sender = event.sender
    level = user_level(sender, state)

    def too_high(where: str, key: str, old_level: int | None, new_level: int | None) -> None:
        if (old_level is not None and old_level > level) or (
            new_level is not None and new_level > level
        ):
            raise AuthError(
                f"power levels: {where}{key} goes from {old_level} to {new_level}, above the "
                f"sender's level {level} (rules 9.3-9.7)"
            )

    for key, old_level, new_level in _changed(old, new, NAMED_LEVELS, ""):
        too_high("", key, old_level, new_level)
    old_users = _sub_map(old, "users")
    new_users = _sub_map(new, "users")
    for user_id, old_level, new_level in _changed(
        old_users, new_users, _union(old_users, new_users), "users."
    ):
        if user_id != sender and old_level == level:
            raise AuthError(
                f"power levels: cannot change {user_id}, whose level {old_level} equals the "
                f"sender's (rule 9.6)"
            )
        too_high("users.", user_id, old_level, new_level)
    maps = ("events", "notifications") if version.limit_notifications_power_levels else ("events",)
    for name in maps:
        old_map = _sub_map(old, name)
        new_map = _sub_map(new, name)
        for key, old_level, new_level in _changed(
            old_map, new_map, _union(old_map, new_map), f"{name}."
        ):
            too_high(f"{name}.", key, old_level, new_level)


def _union(a: Mapping[str, Any], b: Mapping[str, Any]) -> Iterator[str]:
    yield from a
    for key in b:
        if key not in a:
            yield key
