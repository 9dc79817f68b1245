"""Auth rule 1: the ``m.room.create`` event, judged on its own.

A create event has no state to be checked against, so these are its only rules: no
``prev_events``; the room ID belongs to the sender's server (v1-v11) or is absent (v12,
where the room ID is derived from the create event's ID); a known ``room_version``; a
``creator`` before v11; a well-formed ``additional_creators`` in v12.
"""

from __future__ import annotations

from ..errors import AuthError
from ..events import Event
from ..room_versions import KNOWN_ROOM_VERSIONS
from .ids import domain_of, is_valid_user_id


def check_create_event(event: Event) -> None:
    """Raise :class:`AuthError` unless ``event`` is an acceptable create event."""
    version = event.room_version
    if event.prev_event_ids:
        raise AuthError("create event: it must not have prev_events (rule 1.1)")
    if version.room_id_from_create_event:
        if "room_id" in event.pdu:
            raise AuthError("create event: it must not have a room_id in room v12 (rule 1.2)")
    elif domain_of(event.room_id) != domain_of(event.sender):
        raise AuthError("create event: the room ID's server is not the sender's (rule 1.2)")

    claimed = event.content.get("room_version", "1")
    if not isinstance(claimed, str) or claimed not in KNOWN_ROOM_VERSIONS:
        raise AuthError(f"create event: unknown content.room_version {claimed!r} (rule 1.3)")

    if not version.implicit_room_creator and "creator" not in event.content:
        raise AuthError("create event: content has no 'creator' (rule 1.4, before v11)")

    if version.privileged_creators and "additional_creators" in event.content:
        check_additional_creators(event.content["additional_creators"])


def check_additional_creators(value: object) -> None:
    """v12: ``additional_creators`` must be an array of valid user IDs."""
    if type(value) is not list:
        raise AuthError("create event: additional_creators must be an array (rule 1.4, v12)")
    for entry in value:
        if type(entry) is not str:
            raise AuthError(
                f"create event: additional_creators entry {entry!r} is not a string (rule 1.4, v12)"
            )
        if not is_valid_user_id(entry):
            raise AuthError(
                f"create event: additional_creators entry {entry!r} is not a valid user ID"
                " (rule 1.4, v12)"
            )
