"""Auth rule 4 (v1-v5: 5, v12: 5): ``m.room.member`` events.

Who may join, invite, leave, kick, ban, unban and knock, by the room's join rule and the
sender's and target's power levels and memberships. Version switches: ``knock`` (v7), the
``restricted`` join rule with ``join_authorised_via_users_server`` (v8), ``knock_restricted``
(v10), the creator being the create event's sender (v11).
"""

from __future__ import annotations

from ..errors import AuthError
from ..events import CREATE, JOIN_RULES, MEMBER, Event
from .ids import domain_of
from .levels import StateMap, named_level, power_levels, room_creator, user_level
from .selection import AUTHORISING_USER
from .third_party import check_third_party_invite

_CREATE_KEY = (CREATE, "")
_JOIN_RULES_KEY = (JOIN_RULES, "")


def _membership_of(state: StateMap, user_id: str) -> str | None:
    member = state.get((MEMBER, user_id))
    if member is None:
        return None
    m = member.content.get("membership")
    return m if isinstance(m, str) else None


def check_membership(event: Event, state: StateMap, create: Event) -> None:
    """Raise :class:`AuthError` unless the membership change ``event`` is allowed."""
    version = event.room_version
    content = event.content
    target = event.state_key
    if target is None or "membership" not in content:
        raise AuthError("m.room.member needs a state_key and content.membership (rule 4.1)")
    membership = content["membership"]

    # The creator's own first join, straight after the create event.
    if (
        membership == "join"
        and len(event.prev_event_ids) == 1
        and event.prev_event_ids[0] == create.event_id
        and room_creator(create) == target
    ):
        return

    if domain_of(create.sender) != domain_of(target) and (
        create.content.get("m.federate", True) is not True
    ):
        raise AuthError("the room is not federated (m.federate is false) and the target is remote")

    sender = event.sender
    caller = _membership_of(state, sender)
    caller_in_room = caller == "join"
    caller_invited = caller == "invite"
    caller_knocked = version.knock_join_rule and caller == "knock"
    target_membership = caller if target == sender else _membership_of(state, target)
    target_in_room = target_membership == "join"
    target_banned = target_membership == "ban"

    join_rules = state.get(_JOIN_RULES_KEY)
    join_rule = "invite" if join_rules is None else join_rules.content.get("join_rule", "invite")

    levels = power_levels(state)
    sender_level = user_level(sender, state)
    target_level = sender_level if target == sender else user_level(target, state)
    invite_level = named_level(levels, "invite")
    ban_level = named_level(levels, "ban")

    if membership == "invite" and "third_party_invite" in content:
        check_third_party_invite(event, state)
        if target_banned:
            raise AuthError(f"invite: {target} is banned (rule 4.4.1.1)")
        return

    if membership not in ("join", "knock"):
        if (caller_invited or caller_knocked) and membership == "leave" and target == sender:
            return  # rejecting an invite, withdrawing a knock
        if not caller_in_room:
            raise AuthError(f"{membership}: the sender {sender} is not joined to the room")

    if membership == "invite":
        if target_banned:
            raise AuthError(f"invite: {target} is banned (rule 4.4.3)")
        if target_in_room:
            raise AuthError(f"invite: {target} is already joined (rule 4.4.3)")
        if sender_level < invite_level:
            raise AuthError(
                f"invite: sender level {sender_level} < invite level {invite_level} (rule 4.4.4)"
            )
    elif membership == "join":
        _check_join(event, state, join_rule, caller_in_room, caller_invited, target_banned)
        return
    elif membership == "leave":
        if target_banned and sender_level < ban_level:
            raise AuthError(
                f"unban: sender level {sender_level} < ban level {ban_level} (rule 4.5.3)"
            )
        if target != sender:
            kick_level = named_level(levels, "kick")
            if sender_level < kick_level or sender_level <= target_level:
                raise AuthError(
                    f"kick: sender level {sender_level} must be >= kick level {kick_level} and "
                    f"> target level {target_level} (rule 4.5.4)"
                )
    elif membership == "ban":
        if sender_level < ban_level:
            raise AuthError(
                f"ban: sender level {sender_level} < ban level {ban_level} (rule 4.6.2)"
            )
        if sender_level <= target_level:
            raise AuthError(
                f"ban: sender level {sender_level} <= target level {target_level} (rule 4.6.2)"
            )
    elif membership == "knock" and version.knock_join_rule:
        if join_rule != "knock" and not (
            version.knock_restricted_join_rule and join_rule == "knock_restricted"
        ):
            raise AuthError(f"knock: the join rule is {join_rule!r} (rule 4.7.1)")
        if target != sender:
            raise AuthError("knock: the sender must be the state_key (rule 4.7.2)")
        if target_in_room:
            raise AuthError("knock: the sender is already joined (rule 4.7.3)")
        if caller_invited:
            raise AuthError("knock: the sender is already invited (rule 4.7.3)")
        if target_banned:
            raise AuthError("knock: the sender is banned (rule 4.7.3)")
    else:
        raise AuthError(f"unknown membership {membership!r} in room v{version} (rule 4.8)")


def _check_join(
    event: Event,
    state: StateMap,
    join_rule: object,
    caller_in_room: bool,
    caller_invited: bool,
    banned: bool,
) -> None:
    version = event.room_version
    if event.sender != event.state_key:
        raise AuthError("join: the sender must be the state_key (rule 4.3.2)")
    if banned:
        raise AuthError("join: the sender is banned (rule 4.3.3)")
    if join_rule == "public":
        return
    if (version.restricted_join_rule and join_rule == "restricted") or (
        version.knock_restricted_join_rule and join_rule == "knock_restricted"
    ):
        if caller_in_room or caller_invited:
            return
        authoriser = event.content.get(AUTHORISING_USER)
        if authoriser is None:
            raise AuthError(f"join: {join_rule} room and no {AUTHORISING_USER} (rule 4.3.5.2)")
        if not isinstance(authoriser, str) or _membership_of(state, authoriser) != "join":
            raise AuthError(
                f"join: the authorising user {authoriser!r} is not joined (rule 4.3.5.2)"
            )
        authoriser_level = user_level(authoriser, state)
        invite_level = named_level(power_levels(state), "invite")
        if authoriser_level < invite_level:
            raise AuthError(
                f"join: the authorising user's level {authoriser_level} < invite level "
                f"{invite_level} (rule 4.3.5.2)"
            )
        return
    if (
        join_rule == "invite"
        or (version.knock_join_rule and join_rule == "knock")
        or (version.knock_restricted_join_rule and join_rule == "knock_restricted")
    ):
        if not (caller_in_room or caller_invited):
            raise AuthError(f"join: the room is {join_rule!r} and the sender is not invited")
        return
    raise AuthError(f"join: join rule {join_rule!r} does not allow joining in room v{version}")
