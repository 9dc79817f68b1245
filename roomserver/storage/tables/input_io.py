"""The input pipeline's reads and writes in two steps: :meth:`InputIO.prepare` and
:meth:`InputIO.write`.

An input request touches six tables; statement by statement that is a dozen round trips, and
on PostgreSQL a round trip costs more than deciding a one-event request. So the pipeline
reads everything in one step after locking its rooms, decides in memory, and writes
everything in one step. On PostgreSQL each step is one call of a function (migration 0002);
on SQLite, where statements cost no round trip, each runs as the tables' own statements.
Both backends give the same answers; the tests run both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from roomserver.types import EventNID, RoomNID, StateSnapshotNID

from ..codec import encode_event_json, pack_nids
from ._base import Table, unique
from .events import EventInfo, Events, NewEvent, event_info_of
from .graph import PreviousEvents
from .output_log import OutputLog
from .rooms import RoomInfo, Rooms, room_info_of


@dataclass(slots=True)
class Prepared:
    """What :meth:`InputIO.prepare` read, with the request's rooms locked."""

    rooms: dict[str, RoomInfo]
    """The known rooms among those asked for, by room ID."""
    known: dict[str, EventInfo]
    """The stored events among those named, by event ID."""
    late: set[str]
    """New event IDs that stored events already cite as prev events."""
    nids: list[EventNID]
    """One fresh event NID per new event ID asked for."""


@dataclass(slots=True)
class RoomUpdate:
    room_nid: RoomNID
    latest_event_nids: Sequence[EventNID]
    last_event_sent_nid: EventNID | None
    state_snapshot_nid: StateSnapshotNID | None


@dataclass(slots=True)
class InputWrite:
    """Everything one input request writes in :meth:`InputIO.write`."""

    events: list[NewEvent] = field(default_factory=list)
    """New events, each with a NID from :meth:`InputIO.prepare` (must not be stored yet)."""
    edges: list[tuple[RoomNID, EventNID, str, EventNID | None]] = field(default_factory=list)
    """prev_events edges: (room, event NID, prev event ID, prev event NID or None if missing)."""
    cited_before: bool = False
    """Some stored event cites a new one (it arrived late): move those edges."""
    rooms: list[RoomUpdate] = field(default_factory=list)
    output: list[bytes] = field(default_factory=list)
    """Output log payloads, in order."""


_PREPARE = "SELECT * FROM roomserver_input_prepare($1::text[], $2::text[], $3::text[])"
_WRITE = (
    "SELECT roomserver_input_write($1::bigint[], $2::text[], $3::integer[], $4::integer[],"
    " $5::bigint[], $6::bigint[], $7::bigint[], $8::bytea[], $9::boolean[], $10::boolean[],"
    " $11::boolean[], $12::text[], $13::bytea[], $14, $15::bigint[], $16::bigint[],"
    " $17::text[], $18::bigint[], $19::integer[], $20::integer[], $21::bytea[],"
    " $22::bigint[], $23::bigint[], $24::bytea[])"
)


class InputIO(Table):
    __slots__ = ()

    async def prepare(
        self, room_ids: Sequence[str], wanted_ids: Sequence[str], new_ids: Sequence[str]
    ) -> Prepared:
        """Lock the known rooms among ``room_ids`` (until the transaction ends, in room NID
        order), then read the stored events among ``wanted_ids``, which of ``new_ids`` stored
        events already cite, and one fresh NID per ``new_ids`` entry."""
        if not self._conn.dialect.is_postgres:
            return Prepared(
                rooms=await Rooms(self._conn).lock_many(room_ids),
                known=await Events(self._conn).lookup(wanted_ids),
                late=await PreviousEvents(self._conn).referenced_ids(new_ids),
                nids=await Events(self._conn).reserve_nids(len(new_ids)),
            )
        rows = await self._conn.fetch(_PREPARE, unique(room_ids), unique(wanted_ids), list(new_ids))
        prepared = Prepared({}, {}, set(), [])
        for row in rows:
            kind = row[0]
            if kind == 1:  # the events columns, in event_info_of's order
                info = event_info_of(row[1:])
                prepared.known[info.event_id] = info
            elif kind == 3:
                prepared.nids.append(row[1])
            elif kind == 2:
                prepared.late.add(row[2])
            else:  # a room: room_nid, room_id, version, latest, last sent, current state
                room = room_info_of((row[3], row[2], row[12], row[8], row[1], row[7]))
                prepared.rooms[room.room_id] = room
        return prepared

    async def write(self, w: InputWrite) -> list[int]:
        """Store everything in ``w``; the output positions of ``w.output``, in order."""
        if not self._conn.dialect.is_postgres:
            return await self._write_statements(w)
        events = w.events
        known = [(prev_nid, child) for _, child, _, prev_nid in w.edges if prev_nid is not None]
        missing = unique(
            [
                (prev_id, child, room)
                for room, child, prev_id, prev_nid in w.edges
                if prev_nid is None
            ]
        )
        head = await self._conn.fetchval(
            _WRITE,
            [e.event_nid for e in events],
            [e.event_id for e in events],
            [e.room_nid for e in events],
            [e.type_nid for e in events],
            [e.state_key_nid or 0 for e in events],
            [e.depth for e in events],
            [e.state_snapshot_nid or 0 for e in events],
            [pack_nids(e.auth_event_nids) for e in events],
            [e.is_outlier for e in events],
            [e.is_rejected for e in events],
            [e.is_soft_failed for e in events],
            [e.rejection_reason for e in events],
            [encode_event_json(e.json) for e in events],
            w.cited_before,
            [p for p, _ in known],
            [c for _, c in known],
            [p for p, _, _ in missing],
            [c for _, c, _ in missing],
            [r for _, _, r in missing],
            [r.room_nid for r in w.rooms],
            [pack_nids(r.latest_event_nids) for r in w.rooms],
            [r.last_event_sent_nid or 0 for r in w.rooms],
            [r.state_snapshot_nid or 0 for r in w.rooms],
            w.output,
        )
        return list(range(head + 1, head + 1 + len(w.output)))

    async def _write_statements(self, w: InputWrite) -> list[int]:
        if w.events:
            await Events(self._conn).insert(w.events, cited_before=w.cited_before)
        by_room: dict[RoomNID, list[tuple[EventNID, str, EventNID | None]]] = {}
        for room, child, prev_id, prev_nid in w.edges:
            by_room.setdefault(room, []).append((child, prev_id, prev_nid))
        graph = PreviousEvents(self._conn)
        for room, edges in by_room.items():
            await graph.add(room, edges)
        rooms = Rooms(self._conn)
        for r in w.rooms:
            await rooms.update_latest(
                r.room_nid, r.latest_event_nids, r.last_event_sent_nid, r.state_snapshot_nid
            )
        return await OutputLog(self._conn).append(w.output)
