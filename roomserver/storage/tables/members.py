"""``memberships`` and ``invites``: who is in which room, and the invites not yet answered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from roomserver.types import EventNID, EventStateKeyNID, Membership, RoomNID

from ..codec import decode_event_json, encode_event_json
from ..database import Row
from ._base import Table, chunks, unique


@dataclass(frozen=True, slots=True)
class MembershipInfo:
    room_nid: RoomNID
    target_nid: EventStateKeyNID
    sender_nid: EventStateKeyNID
    membership: Membership
    event_nid: EventNID
    """The membership event that set it."""
    forgotten: bool = False


_MEMBERSHIP_COLUMNS = "room_nid, target_nid, sender_nid, membership, event_nid, forgotten"


def _membership(row: Row) -> MembershipInfo:
    return MembershipInfo(row[0], row[1], row[2], Membership(row[3]), row[4], bool(row[5]))


class Memberships(Table):
    __slots__ = ()

    async def upsert(self, memberships: Sequence[MembershipInfo]) -> None:
        """Set memberships (the last one given for a user wins). A new membership event
        clears ``forgotten``."""
        d = self._conn.dialect
        latest = {(m.room_nid, m.target_nid): m for m in memberships}
        rows = [
            (m.room_nid, m.target_nid, m.sender_nid, int(m.membership), m.event_nid)
            for m in latest.values()
        ]
        types = ["integer", "bigint", "bigint", "smallint", "bigint"]
        for part in chunks(rows, d.chunk_rows(5)):
            await self._conn.execute(
                "INSERT INTO memberships (room_nid, target_nid, sender_nid, membership, event_nid)"
                f" {d.rows(types, len(part))} ON CONFLICT (room_nid, target_nid) DO UPDATE"
                " SET sender_nid = excluded.sender_nid, membership = excluded.membership,"
                " event_nid = excluded.event_nid, forgotten = FALSE",
                *d.row_args(part, 5),
            )

    async def get(
        self, room_nid: RoomNID, target_nids: Sequence[EventStateKeyNID]
    ) -> dict[EventStateKeyNID, MembershipInfo]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships"
            f" WHERE room_nid = $1 AND target_nid {d.any(2, 'bigint')}",
            room_nid,
            unique(target_nids),
        )
        return {m.target_nid: m for m in map(_membership, rows)}

    async def members(
        self, room_nid: RoomNID, membership: Membership | None = None
    ) -> list[MembershipInfo]:
        """The room's memberships (of one kind, e.g. :attr:`Membership.JOIN`, if given)."""
        if membership is None:
            rows = await self._conn.fetch(
                f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships WHERE room_nid = $1"
                " ORDER BY target_nid",
                room_nid,
            )
        else:
            rows = await self._conn.fetch(
                f"SELECT {_MEMBERSHIP_COLUMNS} FROM memberships"
                " WHERE room_nid = $1 AND membership = $2 ORDER BY target_nid",
                room_nid,
                int(membership),
            )
        return [_membership(row) for row in rows]

    async def rooms_of(
        self, target_nid: EventStateKeyNID, membership: Membership = Membership.JOIN
    ) -> list[RoomNID]:
        rows = await self._conn.fetch(
            "SELECT room_nid FROM memberships WHERE target_nid = $1 AND membership = $2"
            " ORDER BY room_nid",
            target_nid,
            int(membership),
        )
        return [nid for (nid,) in rows]

    async def set_forgotten(
        self, room_nid: RoomNID, target_nid: EventStateKeyNID, forgotten: bool
    ) -> bool:
        """Whether a membership was there to mark."""
        row = await self._conn.fetchrow(
            "UPDATE memberships SET forgotten = $3 WHERE room_nid = $1 AND target_nid = $2"
            " RETURNING room_nid",
            room_nid,
            target_nid,
            forgotten,
        )
        return row is not None


@dataclass(frozen=True, slots=True)
class InviteInfo:
    invite_event_id: str
    room_nid: RoomNID
    target_nid: EventStateKeyNID
    sender_nid: EventStateKeyNID
    json: bytes
    """The invite event as received (headered, with its invite room state)."""
    retired: bool = False


_INVITE_COLUMNS = "invite_event_id, room_nid, target_nid, sender_nid, invite_event_json, retired"


def _invite(row: Row) -> InviteInfo:
    return InviteInfo(
        row[0], row[1], row[2], row[3], decode_event_json(bytes(row[4])), bool(row[5])
    )


class Invites(Table):
    __slots__ = ()

    async def insert(self, invites: Sequence[InviteInfo]) -> list[str]:
        """Store invites; returns the IDs of those not stored before (a retired invite stays
        retired if it comes again)."""
        d = self._conn.dialect
        types = ["text", "integer", "bigint", "bigint", "bytea"]
        rows = [
            (i.invite_event_id, i.room_nid, i.target_nid, i.sender_nid, encode_event_json(i.json))
            for i in {i.invite_event_id: i for i in invites}.values()
        ]
        new: list[str] = []
        for part in chunks(rows, d.chunk_rows(5)):
            returned = await self._conn.fetch(
                "INSERT INTO invites (invite_event_id, room_nid, target_nid, sender_nid,"
                f" invite_event_json) {d.rows(types, len(part))}"
                " ON CONFLICT (invite_event_id) DO NOTHING RETURNING invite_event_id",
                *d.row_args(part, 5),
            )
            new.extend(event_id for (event_id,) in returned)
        return new

    async def retire(self, room_nid: RoomNID, target_nid: EventStateKeyNID) -> list[str]:
        """Retire the user's pending invites to the room (they joined, left, were banned...);
        returns the IDs of the invites this retired."""
        rows = await self._conn.fetch(
            "UPDATE invites SET retired = TRUE"
            " WHERE room_nid = $1 AND target_nid = $2 AND NOT retired RETURNING invite_event_id",
            room_nid,
            target_nid,
        )
        return sorted(event_id for (event_id,) in rows)

    async def pending(self, room_nid: RoomNID, target_nid: EventStateKeyNID) -> list[InviteInfo]:
        rows = await self._conn.fetch(
            f"SELECT {_INVITE_COLUMNS} FROM invites"
            " WHERE target_nid = $2 AND room_nid = $1 AND NOT retired ORDER BY invite_event_id",
            room_nid,
            target_nid,
        )
        return [_invite(row) for row in rows]

    async def pending_for_user(self, target_nid: EventStateKeyNID) -> list[InviteInfo]:
        rows = await self._conn.fetch(
            f"SELECT {_INVITE_COLUMNS} FROM invites WHERE target_nid = $1 AND NOT retired"
            " ORDER BY room_nid, invite_event_id",
            target_nid,
        )
        return [_invite(row) for row in rows]

    async def get(self, invite_event_ids: Sequence[str]) -> dict[str, InviteInfo]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT {_INVITE_COLUMNS} FROM invites WHERE invite_event_id {d.any(1, 'text')}",
            unique(invite_event_ids),
        )
        return {i.invite_event_id: i for i in map(_invite, rows)}
