"""The Matrix authorisation rules for room versions 1-12, as plain functions over events.

- :func:`auth_types_for_event`: the state an event needs for its auth.
- :func:`check_auth_events`: the rules that depend only on the event and the auth events
  it cites (create event rules; duplicate, unexpected, rejected or foreign auth events).
- :func:`check_auth`: the rules that depend on room state; run against the event's auth
  events, the state before it and, for soft failure, the room's current state.

Each refuses with :class:`~roomserver.matrix.errors.AuthError` naming the rule. Where the
spec and Synapse differ, these functions follow Synapse (see ``docs/auth.md``).
"""

from __future__ import annotations

from ..errors import AuthError
from .independent import check_auth_events
from .levels import CREATOR_POWER_LEVEL, user_level
from .rules import check_auth
from .selection import auth_types_for_event

__all__ = [
    "CREATOR_POWER_LEVEL",
    "AuthError",
    "auth_types_for_event",
    "check_auth",
    "check_auth_events",
    "user_level",
]
