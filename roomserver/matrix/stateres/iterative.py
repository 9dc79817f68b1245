"""The iterative auth checks: replay sorted state events over a state, keeping what passes.

The resolved state is a large base map (up to the whole unconflicted state) plus a small
overlay of what the replay changed; an event is checked against a tiny map built for it
(its own auth events, then the state's entry for each key it needs), never a copy of the
whole state.

Rejected events follow Synapse: an event the caller knows as rejected is never admitted
into the state, and a rejected event is never used to authorise another one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..auth import auth_types_for_event, check_auth
from ..errors import AuthError
from ..events import Event
from .base import EventIndex, IsRejected, StateKey, fetch


def iterative_auth_checks(
    index: EventIndex,
    order: Iterable[int],
    base: Mapping[StateKey, str],
    overlay: dict[StateKey, str],
    is_rejected: IsRejected,
) -> None:
    """Replay ``order`` over ``overlay`` on top of ``base``; ``overlay`` receives the changes."""
    events = index.events
    ids = index.ids
    source = index.source
    base_get = base.get
    overlay_get = overlay.get
    for i in order:
        event = events[i]
        if event.state_key is None:
            continue  # not state: it cannot become part of the state
        auth_state: dict[StateKey, Event] = {}
        for j in index.auth_of(i):
            auth = events[j]
            if auth.state_key is not None and not is_rejected(ids[j]):
                auth_state[(auth.type, auth.state_key)] = auth
        for key in auth_types_for_event(event):
            current = overlay_get(key)
            if current is None:
                current = base_get(key)
                if current is None:
                    continue
            if not is_rejected(current):
                auth_state[key] = fetch(source, current)
        event_id = ids[i]
        if is_rejected(event_id):
            continue
        try:
            check_auth(event, auth_state)
        except AuthError:
            continue
        overlay[(event.type, event.state_key)] = event_id
