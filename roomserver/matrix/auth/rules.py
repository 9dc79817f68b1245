"""The state-dependent auth rules: may ``event`` happen in a room whose state is ``state``?

One entry point, :func:`check_auth`, walks the rules in the spec's order and hands the
big families to their modules (memberships, power level changes, third-party invites).
It reads only the state that :func:`~.selection.auth_types_for_event` selects, so the
answer is the same whether it is given the event's auth events, the whole room state or
the selected part of it.
"""

from __future__ import annotations

from ..errors import AuthError
from ..events import (
    ALIASES,
    CREATE,
    MEMBER,
    POWER_LEVELS,
    REDACTION,
    THIRD_PARTY_INVITE,
    Event,
)
from ..room_versions import EventFormat
from .ids import domain_of
from .levels import StateMap, named_level, power_levels, send_level, user_level
from .membership import check_membership
from .power_changes import check_power_levels_change

_CREATE_KEY = (CREATE, "")


def check_auth(event: Event, state: StateMap) -> None:
    """Raise :class:`AuthError` (naming the rule) unless the auth rules allow ``event``.

    ``state`` maps ``(type, state_key)`` to events and must contain the room's create
    event (in room v12 too, where events do not cite it). Used with the event's own auth
    events, with the state before the event, and with the current state (soft failure).
    The state-independent rules are :func:`~.independent.check_auth_events`.
    """
    if event.type == CREATE:
        return  # a create event has no state to be checked against

    create = state.get(_CREATE_KEY)
    if create is None:
        raise AuthError("no m.room.create event in the state (rule 2.4)")

    sender = event.sender
    if domain_of(create.sender) != domain_of(sender) and (
        create.content.get("m.federate", True) is not True
    ):
        raise AuthError("the room is not federated (m.federate is false) and the sender is remote")

    version = event.room_version
    event_type = event.type
    if event_type == ALIASES and version.special_case_aliases_auth:
        # v1-v5: a server publishes its own aliases, whatever its users' membership.
        if not event.state_key:
            raise AuthError("m.room.aliases needs a non-empty state_key (rule 4.1, v1-v5)")
        if event.state_key != domain_of(sender):
            raise AuthError("m.room.aliases state_key is not the sender's server (rule 4.2, v1-v5)")
        return

    if event_type == MEMBER:
        check_membership(event, state, create)
        return

    member = state.get((MEMBER, sender))
    if member is None or member.content.get("membership") != "join":
        raise AuthError(f"the sender {sender} is not joined to the room (rule 5)")

    levels = power_levels(state)
    if event_type == THIRD_PARTY_INVITE:
        level = user_level(sender, state)
        invite = named_level(levels, "invite")
        if level < invite:
            raise AuthError(
                f"m.room.third_party_invite: sender level {level} < invite level {invite} (rule 6)"
            )
        return

    required = send_level(levels, event_type, event.state_key is not None)
    level = user_level(sender, state)
    if level < required:
        raise AuthError(
            f"{event_type}: sender level {level} < required power level {required} (rule 7)"
        )

    state_key = event.state_key
    if state_key is not None and state_key.startswith("@") and state_key != sender:
        raise AuthError(f"state_key {state_key} starts with @ and is not the sender (rule 8)")

    if event_type == POWER_LEVELS:
        check_power_levels_change(event, state)

    if event_type == REDACTION:
        # The redact level is computed in every version, as Synapse does.
        redact = named_level(levels, "redact")
        if version.event_format is EventFormat.V1 and level < redact:
            _check_v1_redaction(event)


def _check_v1_redaction(event: Event) -> None:
    """v1/v2 rule 11: below the redact level, a server may only redact its own events.

    From v3 the check moves out of the auth rules: the redaction is accepted and only
    applied once the redacted event is known to come from the same server.
    """
    own_server = domain_of(event.event_id)
    redacts = event.redacts
    if redacts is None:
        return  # Synapse lets a redaction that names no event through
    if domain_of(redacts) != own_server:
        raise AuthError(
            f"m.room.redaction: sender below the redact level and {redacts} is from another "
            "server (rule 11, v1-v2)"
        )
