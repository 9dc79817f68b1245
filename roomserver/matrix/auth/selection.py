"""Which state an event needs for its auth (the spec's "auth events selection").

The same list serves three purposes: what a server puts in ``auth_events`` when it
creates an event, which cited auth events are *expected* (anything else is refused), and
which part of a room state to hand to :func:`~roomserver.matrix.auth.check_auth`.
"""

from __future__ import annotations

from typing import Any

from ..events import CREATE, JOIN_RULES, MEMBER, POWER_LEVELS, THIRD_PARTY_INVITE, Event

AUTHORISING_USER = "join_authorised_via_users_server"

_CREATE_KEY = (CREATE, "")
_PL_KEY = (POWER_LEVELS, "")
_JOIN_RULES_KEY = (JOIN_RULES, "")
_NEEDS_JOIN_RULES = frozenset(("join", "invite", "knock"))


def auth_types_for_event(event: Event) -> list[tuple[str, str]]:
    """The ``(type, state_key)`` pairs of the state that may be needed to authorise ``event``.

    Always the create event (also in v12, where it is implied by the room ID rather than
    cited), the power levels and the sender's membership; for ``m.room.member`` also the
    target's membership, the join rules (join, invite, knock), the third-party invite
    named by the token (invites with ``third_party_invite``) and, from v8, the authorising
    user's membership (joins with ``join_authorised_via_users_server``). A create event
    needs nothing. The list has no duplicates and a stable order.
    """
    if event.type == CREATE:
        return []
    types = [_CREATE_KEY, _PL_KEY, (MEMBER, event.sender)]
    if event.type != MEMBER:
        return types
    content = event.content
    membership = content.get("membership")
    if isinstance(membership, str) and membership in _NEEDS_JOIN_RULES:
        types.append(_JOIN_RULES_KEY)
    if event.state_key is not None and event.state_key != event.sender:
        types.append((MEMBER, event.state_key))
    if membership == "invite":
        token = _third_party_token(content)
        if token is not None:
            types.append((THIRD_PARTY_INVITE, token))
    elif membership == "join" and event.room_version.restricted_join_rule:
        authoriser = content.get(AUTHORISING_USER)
        if isinstance(authoriser, str):
            key = (MEMBER, authoriser)
            if key not in types:
                types.append(key)
    return types


def _third_party_token(content: dict[str, Any]) -> str | None:
    invite = content.get("third_party_invite")
    if not isinstance(invite, dict):
        return None
    signed = invite.get("signed")
    if not isinstance(signed, dict):
        return None
    token = signed.get("token")
    return token if isinstance(token, str) else None
