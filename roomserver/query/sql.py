"""The few reads the queries need that the storage tables do not offer (yet).

Written over ``tables.conn`` in the same one-SQL-for-both-backends style as
:mod:`roomserver.storage.tables`; candidates to move there.
"""

from __future__ import annotations

from dataclasses import dataclass

from roomserver.storage.tables import Tables
from roomserver.types import EventNID, EventStateKeyNID, Membership, RoomNID


@dataclass(frozen=True, slots=True)
class ServerMember:
    """A user of one server with a membership row in the room (current membership)."""

    user_id: str
    state_key_nid: EventStateKeyNID
    membership: Membership
    event_nid: EventNID


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def server_members(tables: Tables, room_nid: RoomNID, server_name: str) -> list[ServerMember]:
    """Every user of ``server_name`` that has (or had) a membership of the room.

    The memberships table follows the room's current state, and a member key never leaves
    the state once it is there, so these are the users of the server that can appear in the
    state at any event of the room's main history. One query: the room's membership rows
    (by primary key prefix) joined to their user IDs, narrowed by a suffix match; the exact
    domain test is done here, since ``@a:b:server`` ends with ``:server`` but is not on it.
    """
    rows = await tables.conn.fetch(
        "SELECT m.target_nid, k.event_state_key, m.membership, m.event_nid"
        " FROM memberships AS m"
        " JOIN event_state_keys AS k ON k.event_state_key_nid = m.target_nid"
        " WHERE m.room_nid = $1 AND k.event_state_key LIKE $2 ESCAPE '\\'"
        " ORDER BY m.target_nid",
        room_nid,
        "%:" + _like_escape(server_name),
    )
    out: list[ServerMember] = []
    for target_nid, user_id, membership, event_nid in rows:
        if user_id.startswith("@") and user_id.partition(":")[2] == server_name:
            out.append(ServerMember(user_id, target_nid, Membership(membership), event_nid))
    return out
