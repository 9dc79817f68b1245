"""``events`` and ``event_json``: event metadata as NIDs, and the events' JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from roomserver.types import (
    EventNID,
    EventStateKeyNID,
    EventTypeNID,
    RoomNID,
    StateEntry,
    StateKeyTuple,
    StateSnapshotNID,
)

from ..codec import decode_event_json, encode_event_json, pack_nids, unpack_nids
from ..database import Row, reserve_ids
from ._base import Table, chunks, unique
from .graph import fill_backward_extremities


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store. ``json`` is the PDU's JSON (canonical, as hashed and signed)."""

    event_id: str
    room_nid: RoomNID
    type_nid: EventTypeNID
    state_key_nid: EventStateKeyNID | None
    """None for a message (non-state) event."""
    depth: int
    auth_event_nids: Sequence[EventNID]
    json: bytes
    state_snapshot_nid: StateSnapshotNID | None = None
    """The state BEFORE the event; None when unknown (an outlier)."""
    is_outlier: bool = False
    is_rejected: bool = False
    rejection_reason: str = ""
    is_soft_failed: bool = False
    event_nid: EventNID | None = None
    """A reserved NID (:meth:`Events.reserve_nids`, ``Storage.reserve_event_nids``), or
    None to have one assigned."""

    def info(self) -> EventInfo:
        """The row's metadata once stored (the event must have a reserved NID)."""
        if self.event_nid is None:
            raise ValueError(f"{self.event_id} has no reserved NID")
        return EventInfo(
            event_nid=self.event_nid,
            event_id=self.event_id,
            room_nid=self.room_nid,
            type_nid=self.type_nid,
            state_key_nid=self.state_key_nid,
            depth=self.depth,
            state_snapshot_nid=self.state_snapshot_nid,
            auth_event_nids=tuple(self.auth_event_nids),
            is_outlier=self.is_outlier,
            is_rejected=self.is_rejected,
            is_soft_failed=self.is_soft_failed,
            rejection_reason=self.rejection_reason,
        )


@dataclass(frozen=True, slots=True)
class EventInfo:
    """A stored event's metadata."""

    event_nid: EventNID
    event_id: str
    room_nid: RoomNID
    type_nid: EventTypeNID
    state_key_nid: EventStateKeyNID | None
    depth: int
    state_snapshot_nid: StateSnapshotNID | None
    auth_event_nids: tuple[EventNID, ...]
    is_outlier: bool
    is_rejected: bool
    is_soft_failed: bool
    rejection_reason: str

    @property
    def is_state(self) -> bool:
        return self.state_key_nid is not None

    @property
    def state_key_tuple(self) -> StateKeyTuple:
        """``(type NID, state key NID)``; only meaningful for state events."""
        return StateKeyTuple(self.type_nid, self.state_key_nid or 0)

    @property
    def state_entry(self) -> StateEntry:
        return StateEntry(self.type_nid, self.state_key_nid or 0, self.event_nid)


_INFO_COLUMNS = (
    "event_nid, event_id, room_nid, event_type_nid, event_state_key_nid, depth,"
    " state_snapshot_nid, auth_event_nids, is_outlier, is_rejected, is_soft_failed,"
    " rejection_reason"
)

_INSERT_COLUMNS = (
    "event_id, room_nid, event_type_nid, event_state_key_nid, depth, state_snapshot_nid,"
    " auth_event_nids, is_outlier, is_rejected, is_soft_failed, rejection_reason"
)
_INSERT_TYPES = [
    "text",
    "integer",
    "integer",
    "bigint",
    "bigint",
    "bigint",
    "bytea",
    "boolean",
    "boolean",
    "boolean",
    "text",
]


def event_info_of(row: Row) -> EventInfo:
    """An ``EventInfo`` from a row of ``_INFO_COLUMNS`` (in that order)."""
    return EventInfo(
        event_nid=row[0],
        event_id=row[1],
        room_nid=row[2],
        type_nid=row[3],
        state_key_nid=row[4] or None,
        depth=row[5],
        state_snapshot_nid=row[6] or None,
        auth_event_nids=tuple(unpack_nids(row[7])),
        is_outlier=bool(row[8]),
        is_rejected=bool(row[9]),
        is_soft_failed=bool(row[10]),
        rejection_reason=row[11],
    )


class Events(Table):
    __slots__ = ()

    async def reserve_nids(self, count: int) -> list[EventNID]:
        """``count`` fresh event NIDs for :class:`NewEvent` ``event_nid``, so that a batch
        can name its events (e.g. in the state before later events of the batch) before
        inserting them all at once. Reserve only for events known not to be stored yet."""
        return await reserve_ids(self._conn, "events", "event_nid", count)

    async def insert(
        self, events: Sequence[NewEvent], *, cited_before: bool = True
    ) -> list[tuple[EventNID, bool]]:
        """Store events and their JSON; ``(event NID, newly stored)`` for each, in order.

        Idempotent on the event ID: an event stored before (or earlier in the same batch)
        keeps its row (and its JSON) and reports ``False`` -- except that an event given a
        reserved NID must be new (else ``ValueError``: states computed with that NID would
        name no event). Edges from stored events to a newly stored one that were kept as
        backward extremities become ``previous_events`` edges; a caller that knows no stored
        event cites the new ones (``cited_before=False``) saves that statement.
        """
        by_id: dict[str, NewEvent] = {}
        for event in events:
            by_id.setdefault(event.event_id, event)
        inserted: dict[str, EventNID] = {}
        given = [e for e in by_id.values() if e.event_nid is not None]
        assigned = [e for e in by_id.values() if e.event_nid is None]
        if given:
            inserted.update(await self._insert_rows(given, with_nids=True))
            clashes = [e.event_id for e in given if e.event_id not in inserted]
            if clashes:
                raise ValueError(f"events given reserved NIDs are already stored: {clashes[:5]}")
        if assigned:
            inserted.update(await self._insert_rows(assigned, with_nids=False))
        nids = dict(inserted)
        existing = [event_id for event_id in by_id if event_id not in inserted]
        if existing:
            nids.update(await self.nids(existing))
        d = self._conn.dialect
        if inserted:
            json_rows = [(nid, encode_event_json(by_id[eid].json)) for eid, nid in inserted.items()]
            for json_part in chunks(json_rows, d.chunk_rows(2)):
                await self._conn.execute(
                    "INSERT INTO event_json (event_nid, event_json)"
                    f" {d.rows(['bigint', 'bytea'], len(json_part))} ON CONFLICT DO NOTHING",
                    *d.row_args(json_part, 2),
                )
            if cited_before:
                await fill_backward_extremities(self._conn, inserted)
        out: list[tuple[EventNID, bool]] = []
        reported: set[str] = set()
        for e in events:  # a repeat within the batch is not new the second time
            out.append((nids[e.event_id], e.event_id in inserted and e.event_id not in reported))
            reported.add(e.event_id)
        return out

    async def _insert_rows(
        self, events: Sequence[NewEvent], *, with_nids: bool
    ) -> dict[str, EventNID]:
        d = self._conn.dialect
        columns, types = _INSERT_COLUMNS, _INSERT_TYPES
        if with_nids:
            columns, types = "event_nid, " + columns, ["bigint", *types]
        rows = [
            (
                *((e.event_nid,) if with_nids else ()),
                e.event_id,
                e.room_nid,
                e.type_nid,
                e.state_key_nid or 0,
                e.depth,
                e.state_snapshot_nid or 0,
                pack_nids(e.auth_event_nids),
                e.is_outlier,
                e.is_rejected,
                e.is_soft_failed,
                e.rejection_reason,
            )
            for e in events
        ]
        inserted: dict[str, EventNID] = {}
        for part in chunks(rows, d.chunk_rows(len(types))):
            returned = await self._conn.fetch(
                f"INSERT INTO events ({columns}) {d.rows(types, len(part))}"
                " ON CONFLICT (event_id) DO NOTHING RETURNING event_nid, event_id",
                *d.row_args(part, len(types)),
            )
            inserted.update((event_id, nid) for nid, event_id in returned)
        return inserted

    async def nids(self, event_ids: Sequence[str]) -> dict[str, EventNID]:
        """NIDs of the stored events among ``event_ids``."""
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT event_id, event_nid FROM events WHERE event_id {d.any(1, 'text')}",
            unique(event_ids),
        )
        return {event_id: nid for event_id, nid in rows}

    async def lookup(self, event_ids: Sequence[str]) -> dict[str, EventInfo]:
        """Metadata of the stored events among ``event_ids``, by event ID."""
        d = self._conn.dialect
        if d.is_postgres:
            # A join on the unnested IDs keeps to the event_id index: with "= ANY($1)" a
            # generic plan cached while the table was small kept scanning it as it grew.
            sql = (
                f"SELECT {_INFO_COLUMNS} FROM unnest($1::text[]) AS wanted(id)"
                " JOIN events ON events.event_id = wanted.id"
            )
        else:
            sql = f"SELECT {_INFO_COLUMNS} FROM events WHERE event_id {d.any(1, 'text')}"
        rows = await self._conn.fetch(sql, unique(event_ids))
        return {info.event_id: info for info in map(event_info_of, rows)}

    async def by_nid(self, event_nids: Sequence[EventNID]) -> dict[EventNID, EventInfo]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT {_INFO_COLUMNS} FROM events WHERE event_nid {d.any(1, 'bigint')}",
            unique(event_nids),
        )
        return {info.event_nid: info for info in map(event_info_of, rows)}

    async def event_ids(self, event_nids: Sequence[EventNID]) -> dict[EventNID, str]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT event_nid, event_id FROM events WHERE event_nid {d.any(1, 'bigint')}",
            unique(event_nids),
        )
        return {nid: event_id for nid, event_id in rows}

    async def json(self, event_nids: Sequence[EventNID]) -> dict[EventNID, bytes]:
        """The stored JSON of events, by NID."""
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT event_nid, event_json FROM event_json WHERE event_nid {d.any(1, 'bigint')}",
            unique(event_nids),
        )
        return {nid: decode_event_json(bytes(stored)) for nid, stored in rows}

    async def auth_event_nids(
        self, event_nids: Sequence[EventNID]
    ) -> dict[EventNID, list[EventNID]]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT event_nid, auth_event_nids FROM events WHERE event_nid {d.any(1, 'bigint')}",
            unique(event_nids),
        )
        return {nid: unpack_nids(packed) for nid, packed in rows}

    async def set_state_snapshots(
        self, updates: Sequence[tuple[EventNID, StateSnapshotNID]]
    ) -> None:
        """Record the state before events whose state was unknown (they stop being outliers)."""
        await self._conn.executemany(
            "UPDATE events SET state_snapshot_nid = $2, is_outlier = FALSE WHERE event_nid = $1",
            updates,
        )

    async def set_rejected(self, updates: Sequence[tuple[EventNID, str]]) -> None:
        """Mark events rejected, with the reason."""
        await self._conn.executemany(
            "UPDATE events SET is_rejected = TRUE, rejection_reason = $2 WHERE event_nid = $1",
            updates,
        )

    async def set_soft_failed(self, event_nids: Sequence[EventNID], soft_failed: bool) -> None:
        d = self._conn.dialect
        await self._conn.execute(
            f"UPDATE events SET is_soft_failed = $2 WHERE event_nid {d.any(1, 'bigint')}",
            unique(event_nids),
            soft_failed,
        )
