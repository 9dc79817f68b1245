"""History visibility for servers: may a homeserver see an event of a room?

The rule (the spec's history visibility rules, applied to a server's users as a whole, as
Dendrite's roomserver does):

1. ``world_readable`` at the event: yes.
2. A user of the server was joined at the event: yes.
3. ``shared`` at the event, and the server is in the room now: yes (its users may read the
   history of rooms they are in).
4. ``invited`` at the event, and a user of the server was invited at the event: yes.
5. Otherwise no. A missing or unknown ``history_visibility`` counts as ``shared``.
"""

from __future__ import annotations

from collections.abc import Iterable

WORLD_READABLE = "world_readable"
SHARED = "shared"
INVITED = "invited"
JOINED = "joined"
_KNOWN = frozenset({WORLD_READABLE, SHARED, INVITED, JOINED})


def effective_visibility(content_value: object) -> str:
    """The ``history_visibility`` content value as a known setting (``shared`` by default)."""
    return content_value if isinstance(content_value, str) and content_value in _KNOWN else SHARED


def server_may_see_event(
    history_visibility: str,
    memberships_at_event: Iterable[str],
    *,
    server_in_room_now: bool,
) -> bool:
    """Whether a server may see an event.

    ``memberships_at_event``: the memberships, in the state at the event, of the server's users;
    ``server_in_room_now``: whether any of its users is joined in the room's current state.
    """
    if history_visibility == WORLD_READABLE:
        return True
    memberships = set(memberships_at_event)
    if "join" in memberships:
        return True
    if history_visibility == SHARED and server_in_room_now:
        return True
    return history_visibility == INVITED and "invite" in memberships
