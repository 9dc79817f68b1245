"""``previous_events`` and ``backward_extremities``: the prev_events edges of the DAG.

An edge to a stored event is kept by NIDs in ``previous_events`` (so "is this event
referenced by a later one?", the forward extremity question, is one index probe). An edge to
an event we do not have yet is kept by event ID in ``backward_extremities``: that is where
backfill goes next. Storing the missing event turns its rows into ``previous_events`` edges
(:func:`fill_backward_extremities`, called by ``Events.insert``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from roomserver.types import EventNID, RoomNID

from ..database import Connection
from ._base import Table, chunks, unique


async def _insert_edges(conn: Connection, edges: Sequence[tuple[EventNID, EventNID]]) -> None:
    d = conn.dialect
    for part in chunks(unique(edges), d.chunk_rows(2)):
        await conn.execute(
            "INSERT INTO previous_events (prev_event_nid, event_nid)"
            f" {d.rows(['bigint', 'bigint'], len(part))} ON CONFLICT DO NOTHING",
            *d.row_args(part, 2),
        )


async def fill_backward_extremities(conn: Connection, stored: Mapping[str, EventNID]) -> None:
    """``stored`` events are no longer missing: move the edges pointing at them."""
    d = conn.dialect
    rows = await conn.fetch(
        f"DELETE FROM backward_extremities WHERE prev_event_id {d.any(1, 'text')}"
        " RETURNING prev_event_id, event_nid",
        list(stored),
    )
    if rows:
        await _insert_edges(conn, [(stored[prev_id], child) for prev_id, child in rows])


class PreviousEvents(Table):
    __slots__ = ()

    async def add(
        self, room_nid: RoomNID, edges: Sequence[tuple[EventNID, str, EventNID | None]]
    ) -> None:
        """Record ``(event NID, prev event ID, prev event NID or None if not stored)`` edges."""
        known = [(prev_nid, child) for child, _, prev_nid in edges if prev_nid is not None]
        missing = unique(
            [(prev_id, child) for child, prev_id, prev_nid in edges if prev_nid is None]
        )
        if known:
            await _insert_edges(self._conn, known)
        d = self._conn.dialect
        for part in chunks(missing, d.chunk_rows(3)):
            await self._conn.execute(
                "INSERT INTO backward_extremities (prev_event_id, event_nid, room_nid)"
                f" {d.rows(['text', 'bigint', 'integer'], len(part))} ON CONFLICT DO NOTHING",
                *d.row_args([(prev_id, child, room_nid) for prev_id, child in part], 3),
            )

    async def referenced(self, event_nids: Sequence[EventNID]) -> set[EventNID]:
        """The events among ``event_nids`` that a stored event names in its prev_events."""
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT DISTINCT prev_event_nid FROM previous_events"
            f" WHERE prev_event_nid {d.any(1, 'bigint')}",
            unique(event_nids),
        )
        return {nid for (nid,) in rows}

    async def referenced_ids(self, event_ids: Sequence[str]) -> set[str]:
        """The events among ``event_ids`` (not stored yet) that a stored event already names
        in its prev_events: they arrive late and are not forward extremities."""
        if not event_ids:
            return set()
        d = self._conn.dialect
        rows = await self._conn.fetch(
            "SELECT DISTINCT prev_event_id FROM backward_extremities"
            f" WHERE prev_event_id {d.any(1, 'text')}",
            unique(event_ids),
        )
        return {event_id for (event_id,) in rows}

    async def children(self, event_nids: Sequence[EventNID]) -> dict[EventNID, list[EventNID]]:
        """The stored events naming each of ``event_nids`` in their prev_events."""
        d = self._conn.dialect
        rows = await self._conn.fetch(
            "SELECT prev_event_nid, event_nid FROM previous_events"
            f" WHERE prev_event_nid {d.any(1, 'bigint')} ORDER BY prev_event_nid, event_nid",
            unique(event_nids),
        )
        out: dict[EventNID, list[EventNID]] = {}
        for prev_nid, child in rows:
            out.setdefault(prev_nid, []).append(child)
        return out

    async def backward_extremities(self, room_nid: RoomNID) -> dict[str, list[EventNID]]:
        """Missing event ID -> the stored events that name it in their prev_events."""
        rows = await self._conn.fetch(
            "SELECT prev_event_id, event_nid FROM backward_extremities WHERE room_nid = $1"
            " ORDER BY prev_event_id, event_nid",
            room_nid,
        )
        out: dict[str, list[EventNID]] = {}
        for prev_id, child in rows:
            out.setdefault(prev_id, []).append(child)
        return out
