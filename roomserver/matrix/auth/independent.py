"""Auth rules 1-2 (v12: 1-3): the checks that need only the event and its own auth events.

They do not depend on the room state, so they run once per received event. For a create
event they are the whole of its auth; for any other event they vet the auth events it
cites: in the event's room, at most one per ``(type, state_key)``, only the expected kinds,
none rejected, and a create event among them. Room v12 events do not cite the create event
(the room ID names it): the caller adds it to ``auth_events``, and it is vetted like the
others, which covers the v12 rule that the room ID must name an accepted create event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import AuthError
from ..events import CREATE, Event
from .create import check_create_event
from .selection import auth_types_for_event


def _never_rejected(event_id: str) -> bool:
    return False


def check_auth_events(
    event: Event,
    auth_events: Sequence[Event],
    *,
    is_rejected: Callable[[str], bool] = _never_rejected,
) -> None:
    """Raise :class:`AuthError` unless ``event`` passes the state-independent auth rules.

    ``auth_events`` are the events ``event`` cites in ``auth_events`` (in room v12 plus the
    room's create event); ``is_rejected`` says whether one of them was rejected. For a
    create event the auth events are not consulted.
    """
    if event.type == CREATE:
        check_create_event(event)
        return

    room_id = event.room_id
    expected = auth_types_for_event(event)
    seen: dict[tuple[str, str | None], str] = {}
    for auth_event in auth_events:
        if auth_event.room_id != room_id:
            raise AuthError(
                f"auth event {auth_event.event_id} is in room {auth_event.room_id}, "
                f"not {room_id} (rule 2.5)"
            )
        key = (auth_event.type, auth_event.state_key)
        if key in seen:
            raise AuthError(
                f"duplicate auth events for {key}: {seen[key]} and {auth_event.event_id} (rule 2.1)"
            )
        if key not in expected:
            raise AuthError(
                f"unexpected auth event {auth_event.event_id} for {key}: not selected for "
                f"this event (rule 2.2)"
            )
        if is_rejected(auth_event.event_id):
            raise AuthError(f"auth event {auth_event.event_id} was rejected (rule 2.3)")
        seen[key] = auth_event.event_id

    if (CREATE, "") not in seen:
        raise AuthError("no m.room.create event among the auth events (rule 2.4)")

    supplied = set(seen.values())
    for cited in event.auth_event_ids:
        if cited not in supplied:
            raise AuthError(f"auth event {cited} was not supplied")
