"""The input pipeline's reads and writes in two steps: :meth:`InputIO.prepare` and
:meth:`InputIO.write`.

An input request touches seven tables; statement by statement that is a dozen round trips,
and on PostgreSQL a round trip costs more than deciding a one-event request. So the
pipeline reads everything in one step, decides in memory, and writes everything in one
step. On PostgreSQL each step is one call of a function (migrations 0002, 0003 and 0005);
on SQLite, where statements cost no round trip, each runs as the tables' own statements.
Both backends give the same answers; the tests run both.

The write re-checks what the decisions rest on (the rooms' rows as read, the late arrivals
among the new events, that the new events and client transaction IDs are not stored yet,
that the bases of new state snapshots are still stored and their states not yet) and raises
:class:`InputConflict`, writing nothing, if any of it changed. Read under the room locks
(``prepare(lock_rooms=True)`` in the write's transaction) nothing can change; read without
them, the write alone can stand in for a transaction (docs/input.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import asyncpg

from roomserver.types import EventNID, RoomNID, StateSnapshotNID

from ..codec import encode_event_json, pack_entries, pack_nids
from ..database import DatabaseError
from ._base import Table, unique
from .events import EventInfo, Events, NewEvent, event_info_of
from .graph import PreviousEvents
from .members import MembershipInfo, Memberships
from .output_log import OutputLog
from .rooms import RoomInfo, Rooms, room_info_of
from .state import NewSnapshot, StateTables
from .transactions import TransactionKey, Transactions


class InputConflict(DatabaseError):
    """What a request was decided on changed before its write (another writer of the same
    room, or of the same event or client transaction ID); nothing was written."""


@dataclass(slots=True)
class Prepared:
    """What :meth:`InputIO.prepare` read."""

    rooms: dict[str, RoomInfo]
    """The known rooms among those asked for, by room ID."""
    known: dict[str, EventInfo]
    """The stored events among those named, by event ID."""
    late: set[str]
    """New event IDs that stored events already cite as prev events."""
    sent: dict[TransactionKey, str] = field(default_factory=dict)
    """The request's client transactions already recorded, with their events (read only
    by the locked way; the write refuses a request that records one twice)."""


@dataclass(slots=True)
class RoomUpdate:
    """A room's row after the request, and as the request read it (the write checks that
    the stored row's ``write_count`` is still the one read)."""

    read: RoomInfo
    latest_event_nids: Sequence[EventNID]
    last_event_sent_nid: EventNID | None
    state_snapshot_nid: StateSnapshotNID | None

    @classmethod
    def unchanged(cls, room: RoomInfo) -> RoomUpdate:
        return cls(room, room.latest_event_nids, room.last_event_sent_nid, room.state_snapshot_nid)

    @property
    def room_nid(self) -> RoomNID:
        return self.read.room_nid

    def changes_row(self) -> bool:
        return self.row() != self.read

    def row(self) -> RoomInfo:
        """The room's row once this is written (but for ``write_count``: see
        :meth:`written`)."""
        return replace(
            self.read,
            latest_event_nids=tuple(self.latest_event_nids),
            last_event_sent_nid=self.last_event_sent_nid or None,
            state_snapshot_nid=self.state_snapshot_nid or None,
        )

    def written(self) -> RoomInfo:
        """The room's row as :meth:`InputIO.write` leaves it (every write counts one)."""
        return replace(self.row(), write_count=self.read.write_count + 1)


@dataclass(slots=True)
class InputWrite:
    """Everything one input request writes in :meth:`InputIO.write`."""

    rooms: list[RoomUpdate] = field(default_factory=list)
    """Every room the request decided events of, changed or not."""
    late: int = 0
    """How many of ``events`` stored events already cite (they arrived late); those edges
    become ``previous_events`` edges."""
    events: list[NewEvent] = field(default_factory=list)
    """New events, each with a reserved NID (must not be stored yet)."""
    edges: list[tuple[RoomNID, EventNID, str, EventNID | None]] = field(default_factory=list)
    """prev_events edges: (room, event NID, prev event ID, prev event NID or None if missing)."""
    transactions: list[tuple[int, str, str, str]] = field(default_factory=list)
    """Client transactions: (session ID, user ID, transaction ID, event ID); new ones only."""
    output: list[bytes] = field(default_factory=list)
    """Output log payloads, in order."""
    snapshots: list[tuple[StateSnapshotNID, NewSnapshot]] = field(default_factory=list)
    """New state snapshots, each a delta over a stored base, with a reserved NID; the write
    refuses them if a base is gone or a state is stored already (the optimistic way only:
    the locked way stores its states itself, content-addressed)."""
    memberships: list[MembershipInfo] = field(default_factory=list)
    """Membership changes, in order (the last one of a room's member wins)."""

    def stores_nothing(self) -> bool:
        """No rows to add and every room as it was read (e.g. a retry of known events)."""
        return not (
            self.events
            or self.edges
            or self.transactions
            or self.output
            or self.snapshots
            or self.memberships
        ) and not any(r.changes_row() for r in self.rooms)


_PREPARE = "SELECT * FROM roomserver_input_prepare($1::text[], $2::text[], $3::text[], $4)"
_WRITE = (
    "SELECT roomserver_input_write($1::integer[], $2::bigint[], $3::bytea[], $4::bigint[],"
    " $5::bigint[], $6, $7::bigint[], $8::text[], $9::integer[], $10::integer[],"
    " $11::bigint[], $12::bigint[], $13::bigint[], $14::bytea[], $15::boolean[],"
    " $16::boolean[], $17::boolean[], $18::text[], $19::bytea[], $20::bigint[],"
    " $21::bigint[], $22::text[], $23::bigint[], $24::integer[], $25::bigint[],"
    " $26::text[], $27::text[], $28::text[], $29::bytea[], $30::bigint[], $31::integer[],"
    " $32::bytea[], $33::integer[], $34::bigint[], $35::bytea[], $36::integer[],"
    " $37::bigint[], $38::bigint[], $39::smallint[], $40::bigint[])"
)


class InputIO(Table):
    __slots__ = ()

    async def prepare(
        self,
        room_ids: Sequence[str],
        wanted_ids: Sequence[str],
        new_ids: Sequence[str],
        *,
        lock_rooms: bool = True,
    ) -> Prepared:
        """The known rooms among ``room_ids``, the stored events among ``wanted_ids`` and
        which of ``new_ids`` stored events already cite. With ``lock_rooms`` (inside a
        transaction) the rooms are locked first, until the transaction ends, in room NID
        order, and the rest is read after the locks are granted."""
        if not self._conn.dialect.is_postgres:
            rooms = Rooms(self._conn)
            return Prepared(
                rooms=await (rooms.lock_many if lock_rooms else rooms.get_many)(room_ids),
                known=await Events(self._conn).lookup(wanted_ids),
                late=await PreviousEvents(self._conn).referenced_ids(new_ids),
            )
        rows = await self._conn.fetch(
            _PREPARE, unique(room_ids), unique(wanted_ids), list(new_ids), lock_rooms
        )
        prepared = Prepared({}, {}, set())
        for row in rows:
            kind = row[0]
            if kind == 1:  # the events columns, in event_info_of's order
                info = event_info_of(row[1:])
                prepared.known[info.event_id] = info
            elif kind == 2:
                prepared.late.add(row[2])
            else:  # a room: room_nid, id, version, latest, last sent, current state, count
                room = room_info_of((row[3], row[2], row[12], row[8], row[1], row[7], row[6]))
                prepared.rooms[room.room_id] = room
        return prepared

    async def write(self, w: InputWrite) -> list[int]:
        """Store everything in ``w`` if what it was decided on still holds (else
        :class:`InputConflict`, nothing written); the output positions of ``w.output``."""
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
        members = list({(m.room_nid, m.target_nid): m for m in w.memberships}.values())
        args = [
            [r.room_nid for r in w.rooms],
            [r.read.write_count for r in w.rooms],
            [pack_nids(r.latest_event_nids) for r in w.rooms],
            [r.last_event_sent_nid or 0 for r in w.rooms],
            [r.state_snapshot_nid or 0 for r in w.rooms],
            w.late,
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
            [p for p, _ in known],
            [c for _, c in known],
            [p for p, _, _ in missing],
            [c for _, c, _ in missing],
            [r for _, _, r in missing],
            [t[0] for t in w.transactions],
            [t[1] for t in w.transactions],
            [t[2] for t in w.transactions],
            [t[3] for t in w.transactions],
            w.output,
            [nid for nid, _ in w.snapshots],
            [s.room_nid for _, s in w.snapshots],
            [s.state_hash for _, s in w.snapshots],
            [s.entry_count for _, s in w.snapshots],
            [s.base_snapshot_nid for _, s in w.snapshots],
            [pack_entries(*s.delta) for _, s in w.snapshots],
            [m.room_nid for m in members],
            [m.target_nid for m in members],
            [m.sender_nid for m in members],
            [int(m.membership) for m in members],
            [m.event_nid for m in members],
        ]
        # An empty array goes as NULL, which asyncpg encodes for nothing (~4 µs an array
        # less): the function only unnests arrays, matches with = ANY() or tests their
        # cardinality, and NULL reads as empty in each.
        args = [None if isinstance(a, list) and not a else a for a in args]
        try:
            head = await self._conn.fetchval(_WRITE, *args)
        except asyncpg.SerializationError as e:
            raise InputConflict(str(e)) from e
        return list(range(head + 1, head + 1 + len(w.output)))

    async def _write_statements(self, w: InputWrite) -> list[int]:
        """The same write and checks as plain statements (SQLite: the caller's transaction
        holds the database's write lock, so the checks only fail on a caller's mistake)."""
        rooms = Rooms(self._conn)
        stored = await rooms.get_many([r.read.room_id for r in w.rooms])
        for r in w.rooms:
            now = stored.get(r.read.room_id)
            if now is None or now.write_count != r.read.write_count:
                raise InputConflict("a room changed since the request read it")
        new_ids = [e.event_id for e in w.events]
        if len(await PreviousEvents(self._conn).referenced_ids(new_ids)) != w.late:
            raise InputConflict("stored events began citing a new event since the request read")
        if await Events(self._conn).nids(new_ids):
            raise InputConflict("an event of the request was stored since the request read")
        transactions = Transactions(self._conn)
        if w.transactions and await transactions.event_ids([t[:3] for t in w.transactions]):
            raise InputConflict("a client transaction ID of the request was stored")
        if not await StateTables(self._conn).insert_reserved(w.snapshots):
            raise InputConflict("a state base was collected, or a state is stored already")
        for r in w.rooms:
            await rooms.update_latest(
                r.room_nid, r.latest_event_nids, r.last_event_sent_nid, r.state_snapshot_nid
            )
        if w.events:
            await Events(self._conn).insert(w.events, cited_before=w.late > 0)
        by_room: dict[RoomNID, list[tuple[EventNID, str, EventNID | None]]] = {}
        for room, child, prev_id, prev_nid in w.edges:
            by_room.setdefault(room, []).append((child, prev_id, prev_nid))
        graph = PreviousEvents(self._conn)
        for room, edges in by_room.items():
            await graph.add(room, edges)
        await Memberships(self._conn).upsert(w.memberships)
        await transactions.insert_new(w.transactions)
        return await OutputLog(self._conn).append(w.output)
