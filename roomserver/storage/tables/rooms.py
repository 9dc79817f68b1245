"""``rooms``: room ID -> room NID and version, and each room's forward extremities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from roomserver.types import EventNID, RoomNID, StateSnapshotNID

from ..codec import pack_nids, unpack_nids
from ..database import Row
from ._base import Table, unique


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room_nid: RoomNID
    room_id: str
    room_version: str
    latest_event_nids: tuple[EventNID, ...]
    """The forward extremities."""
    last_event_sent_nid: EventNID | None
    state_snapshot_nid: StateSnapshotNID | None
    """The state after the latest events (resolved when there are several)."""
    write_count: int = 0
    """How many times the three fields above were written: the input write's check."""

    @property
    def is_stub(self) -> bool:
        """Known by ID only (e.g. from an invite over federation): no events yet."""
        return not self.latest_event_nids


_COLUMNS = (
    "room_nid, room_id, room_version, latest_event_nids, last_event_sent_nid,"
    " state_snapshot_nid, write_count"
)


def room_info_of(row: Row) -> RoomInfo:
    """A ``RoomInfo`` from a row of ``_COLUMNS`` (in that order)."""
    return RoomInfo(
        room_nid=row[0],
        room_id=row[1],
        room_version=row[2],
        latest_event_nids=tuple(unpack_nids(row[3])),
        last_event_sent_nid=row[4] or None,
        state_snapshot_nid=row[5] or None,
        write_count=row[6],
    )


class Rooms(Table):
    __slots__ = ()

    async def get(self, room_id: str) -> RoomInfo | None:
        row = await self._conn.fetchrow(f"SELECT {_COLUMNS} FROM rooms WHERE room_id = $1", room_id)
        return None if row is None else room_info_of(row)

    async def get_by_nid(self, room_nid: RoomNID) -> RoomInfo | None:
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM rooms WHERE room_nid = $1", room_nid
        )
        return None if row is None else room_info_of(row)

    async def get_many(self, room_ids: Sequence[str]) -> dict[str, RoomInfo]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM rooms WHERE room_id {d.any(1, 'text')}", unique(room_ids)
        )
        return {info.room_id: info for info in map(room_info_of, rows)}

    async def room_ids(self, room_nids: Sequence[RoomNID]) -> dict[RoomNID, str]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT room_nid, room_id FROM rooms WHERE room_nid {d.any(1, 'integer')}",
            unique(room_nids),
        )
        return {nid: room_id for nid, room_id in rows}

    async def get_or_create(self, room_id: str, room_version: str) -> RoomInfo:
        """The room, created as a stub if new. An existing room keeps its stored version:
        callers compare it with the one they expected."""
        existing = await self.get(room_id)
        if existing is not None:
            return existing
        row = await self._conn.fetchrow(
            "INSERT INTO rooms (room_id, room_version) VALUES ($1, $2)"
            f" ON CONFLICT (room_id) DO NOTHING RETURNING {_COLUMNS}",
            room_id,
            room_version,
        )
        if row is not None:
            return room_info_of(row)
        created = await self.get(room_id)  # another transaction created it meanwhile
        if created is None:
            raise RuntimeError(f"room {room_id} vanished while being created")
        return created

    async def lock(self, room_nid: RoomNID) -> RoomInfo:
        """The room row, locked until the transaction ends: the per-room lock of the input
        pipeline (PostgreSQL ``FOR UPDATE``; on SQLite the write transaction is the lock)."""
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM rooms WHERE room_nid = $1{self._conn.dialect.for_update}",
            room_nid,
        )
        if row is None:
            raise LookupError(f"no room with NID {room_nid}")
        return room_info_of(row)

    async def lock_many(self, room_ids: Sequence[str]) -> dict[str, RoomInfo]:
        """The rows of the known rooms among ``room_ids``, locked until the transaction
        ends, in room NID order (so two transactions locking overlapping sets never
        deadlock). One statement: the existence check and the lock together."""
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM rooms WHERE room_id {d.any(1, 'text')}"
            f" ORDER BY room_nid{d.for_update}",
            unique(room_ids),
        )
        return {info.room_id: info for info in map(room_info_of, rows)}

    async def update_latest(
        self,
        room_nid: RoomNID,
        latest_event_nids: Sequence[EventNID],
        last_event_sent_nid: EventNID | None,
        state_snapshot_nid: StateSnapshotNID | None,
    ) -> None:
        """Set the forward extremities, the last event sent to the output and the current
        state snapshot. Call with the row locked (:meth:`lock`)."""
        await self._conn.execute(
            "UPDATE rooms SET latest_event_nids = $2, last_event_sent_nid = $3,"
            " state_snapshot_nid = $4, write_count = write_count + 1 WHERE room_nid = $1",
            room_nid,
            pack_nids(latest_event_nids),
            last_event_sent_nid or 0,
            state_snapshot_nid or 0,
        )
