"""Membership queries: one user's membership, a room's members, a user's pending invites.

They read the ``memberships`` and ``invites`` tables, which the input pipeline keeps in step
with each room's current state. Only for a user who has left is the member list read from
the state after their last membership event (what they saw last), as in Dendrite.
"""

from __future__ import annotations

from dataclasses import dataclass

from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version
from roomserver.state import StateCache, StateSession
from roomserver.state.event_loader import EventLoader
from roomserver.storage.tables import RoomInfo, Tables
from roomserver.types import EventTypeNIDs, Membership

from .events import load_in_order
from .rooms import RoomRef
from .state import state_after

_BEEN_IN_ROOM = (Membership.JOIN, Membership.LEAVE, Membership.BAN)
"""Memberships that mean the user was in the room once (Dendrite's "has been in room": an
invite or a knock alone does not count; a leave does, even one rejecting an invite)."""


@dataclass(frozen=True, slots=True)
class UserMembership:
    membership: Membership | None
    """The user's current membership; None if the room has never had a member event
    for them."""
    event_id: str = ""
    """The member event that set it."""

    @property
    def has_been_in_room(self) -> bool:
        return self.membership in _BEEN_IN_ROOM

    @property
    def is_in_room(self) -> bool:
        return self.membership is Membership.JOIN


@dataclass(frozen=True, slots=True)
class RoomMembers:
    has_been_in_room: bool
    member_events: list[Event] | None = None
    """None when the asking user has never been in the room."""


async def membership_for_user(tables: Tables, room: RoomInfo, user_id: str) -> UserMembership:
    nids = await tables.event_state_keys.nids([user_id])
    if user_id not in nids:
        return UserMembership(None)
    found = await tables.memberships.get(room.room_nid, [nids[user_id]])
    row = found.get(nids[user_id])
    if row is None:
        return UserMembership(None)
    ids = await tables.events.event_ids([row.event_nid])
    return UserMembership(row.membership, ids.get(row.event_nid, ""))


async def memberships_for_room(
    tables: Tables,
    loader: EventLoader,
    room: RoomInfo,
    sender: str,
    *,
    joined_only: bool,
    cache: StateCache | None = None,
) -> RoomMembers:
    """The room's member events as ``sender`` may know them: the current ones while the
    sender is joined, those of the state after their last membership event once they have
    left or been banned; nothing if they have never been in the room. ``joined_only``:
    only members with membership ``join``."""
    nids = await tables.event_state_keys.nids([sender])
    row = None
    if sender in nids:
        row = (await tables.memberships.get(room.room_nid, [nids[sender]])).get(nids[sender])
    if row is None or row.membership not in _BEEN_IN_ROOM:
        return RoomMembers(has_been_in_room=False)
    version = room_version(room.room_version)
    if row.membership is Membership.JOIN:
        rows = await tables.memberships.members(
            room.room_nid, Membership.JOIN if joined_only else None
        )
        return RoomMembers(
            True, await load_in_order(tables, loader, version, [r.event_nid for r in rows])
        )
    info = (await tables.events.by_nid([row.event_nid]))[row.event_nid]
    session = StateSession(tables, cache=cache)
    after = await state_after(tables, session, RoomRef.of(room), [info], None)
    member_nids = sorted(
        (key.state_key_nid, nid)
        for key, nid in after.items()
        if key.type_nid == EventTypeNIDs.MEMBER
    )
    events = await load_in_order(tables, loader, version, [nid for _, nid in member_nids])
    if joined_only:
        events = [e for e in events if e.membership == "join"]
    return RoomMembers(True, events)


async def invite_senders(tables: Tables, room: RoomInfo, user_id: str) -> list[str]:
    """Who sent ``user_id`` the invites to the room that are still pending."""
    nids = await tables.event_state_keys.nids([user_id])
    if user_id not in nids:
        return []
    pending = await tables.invites.pending(room.room_nid, nids[user_id])
    senders = await tables.event_state_keys.strings([i.sender_nid for i in pending])
    return sorted({senders[i.sender_nid] for i in pending if i.sender_nid in senders})
