"""State resolution v1 (room version 1): the original algorithm.

Conflicts are settled key by key, in four passes (power levels, join rules, memberships,
everything else), each pass authorising against the unconflicted state plus what the
earlier passes chose. Events are ordered by depth, ties broken by the SHA-1 of the event
ID. Like Synapse (with whose answers rooms live), an auth event from the unconflicted
state is used only for keys some conflicted event needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ..auth import auth_types_for_event, check_auth
from ..errors import AuthError
from ..events import JOIN_RULES, MEMBER, Event
from .base import POWER_LEVELS_KEY, EventSource, StateKey, StateMap, fetch_all
from .partition import partition_state_v1


def resolve_v1(state_sets: Sequence[StateMap], events: EventSource) -> dict[StateKey, str]:
    """Resolve ``state_sets`` with the room v1 rules."""
    if len(state_sets) == 1:
        return dict(state_sets[0])
    unconflicted, conflicted_ids = partition_state_v1(state_sets)
    if not conflicted_ids:
        return unconflicted

    conflicted: dict[StateKey, list[Event]] = {
        key: fetch_all(events, sorted(ids)) for key, ids in conflicted_ids.items()
    }
    wanted: dict[StateKey, str] = {}
    for evs in conflicted.values():
        for event in evs:
            for key in auth_types_for_event(event):
                if key not in wanted:
                    event_id = unconflicted.get(key)
                    if event_id is not None:
                        wanted[key] = event_id
    auth_events = dict(zip(wanted, fetch_all(events, wanted.values()), strict=True))

    resolved: dict[StateKey, Event] = {}
    if POWER_LEVELS_KEY in conflicted:
        resolved[POWER_LEVELS_KEY] = _resolve_auth_conflict(
            conflicted[POWER_LEVELS_KEY], auth_events
        )
    auth_events.update(resolved)
    for key, evs in conflicted.items():
        if key[0] == JOIN_RULES:
            resolved[key] = _resolve_auth_conflict(evs, auth_events)
    auth_events.update(resolved)
    for key, evs in conflicted.items():
        if key[0] == MEMBER:
            resolved[key] = _resolve_auth_conflict(evs, auth_events)
    auth_events.update(resolved)
    for key, evs in conflicted.items():
        if key not in resolved:
            resolved[key] = _resolve_normal_conflict(evs, auth_events)

    for key, event in resolved.items():
        unconflicted[key] = event.event_id
    return unconflicted


def _ordered(events: Sequence[Event]) -> list[Event]:
    """Deepest first; equal depths by the SHA-1 of the event ID."""
    return sorted(
        events,
        key=lambda e: (-e.depth, hashlib.sha1(e.event_id.encode("utf-8")).hexdigest()),
    )


def _resolve_auth_conflict(events: Sequence[Event], auth_events: Mapping[StateKey, Event]) -> Event:
    """Replay the candidates from the shallowest; the last one each next one accepts wins.

    The auth state holds only the keys the candidates need, and the previous winner
    stands in for its own key while the next candidate is checked.
    """
    candidates = list(reversed(_ordered(events)))
    needed = {key for event in candidates for key in auth_types_for_event(event)}
    state = {key: auth_events[key] for key in needed if key in auth_events}
    winner = candidates[0]
    for event in candidates[1:]:
        state[(winner.type, winner.state_key or "")] = winner
        try:
            check_auth(event, state)
        except AuthError:
            return winner
        winner = event
    return winner


def _resolve_normal_conflict(
    events: Sequence[Event], auth_events: Mapping[StateKey, Event]
) -> Event:
    """The deepest candidate the auth rules accept; the shallowest if none is accepted."""
    ordered = _ordered(events)
    for event in ordered:
        try:
            check_auth(event, auth_events)
        except AuthError:
            continue
        return event
    return ordered[-1]
