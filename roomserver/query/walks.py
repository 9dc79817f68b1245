"""Walks back through the room DAG for other servers: ``/backfill`` and ``/get_missing_events``.

Both are breadth-first over ``prev_events``, one level at a time, with a fixed number of
queries per level however wide it is: the level's event rows by ID (one query), the
visibility of the level for the asking server (see :mod:`.visibility`), and the JSON of the
events kept (they are returned; their ``prev_events`` name the next level).

Each event is visited once (no duplicates, even where branches of the DAG meet). An event
the server may not see is neither returned nor walked past, so the walk never reveals what
lies behind it and stays bounded by ``limit``. A rejected event is not returned, but the
walk goes on through it (its prev events are genuine history). Events of other rooms and
events not stored are skipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from roomserver.matrix.events import Event
from roomserver.state.event_loader import EventLoader
from roomserver.storage.tables import EventInfo, Tables
from roomserver.types import EventNID

from .rooms import RoomRef

Filter = Callable[[Sequence[EventInfo]], Awaitable[set[EventNID]]]
"""The NIDs of the events (of one level) that the asking server may see."""


async def _everything(infos: Sequence[EventInfo]) -> set[EventNID]:
    return {i.event_nid for i in infos}


async def walk_back(
    tables: Tables,
    loader: EventLoader,
    room: RoomRef,
    first_level: Sequence[str],
    *,
    visited: set[str],
    limit: int,
    may_see: Filter | None = None,
    min_depth: int = 0,
) -> list[Event]:
    """Events from ``first_level`` back through prev events, in walk order (level by level,
    deeper first within a level), at most ``limit``; IDs in ``visited`` are skipped (and it
    is updated). Events below ``min_depth`` are not returned nor walked past."""
    check = may_see if may_see is not None else _everything
    found: list[Event] = []
    level = [e for e in dict.fromkeys(first_level) if e not in visited]
    visited.update(level)
    while level and len(found) < limit:
        infos = await tables.events.lookup(level)
        candidates = sorted(
            (i for i in infos.values() if i.room_nid == room.room_nid and i.depth >= min_depth),
            key=lambda i: (-i.depth, i.event_nid),
        )
        allowed = await check(candidates)
        kept: list[EventInfo] = []
        returned = 0
        for info in candidates:
            if info.event_nid not in allowed and not info.is_rejected:
                continue
            if not info.is_rejected:
                if returned == limit - len(found):
                    break
                returned += 1
            kept.append(info)
        loaded = await loader.load(tables, room.version, [i.event_nid for i in kept])
        level = []
        for info in kept:
            event = loaded[info.event_nid]
            if not info.is_rejected:
                found.append(event)
            for prev_id in event.prev_event_ids:
                if prev_id not in visited:
                    visited.add(prev_id)
                    level.append(prev_id)
    return found


async def missing_events(
    tables: Tables,
    loader: EventLoader,
    room: RoomRef,
    latest: Sequence[EventInfo],
    earliest_event_ids: Sequence[str],
    *,
    limit: int,
    may_see: Filter | None = None,
    min_depth: int = 0,
) -> list[Event]:
    """``/get_missing_events``: the events before ``latest`` (those not included) back to
    ``earliest_event_ids`` (not included, nor walked past), at most ``limit``, oldest first."""
    visited = set(earliest_event_ids) | {i.event_id for i in latest}
    starts = await loader.load(tables, room.version, [i.event_nid for i in latest])
    first_level = [p for i in latest for p in starts[i.event_nid].prev_event_ids]
    found = await walk_back(
        tables,
        loader,
        room,
        first_level,
        visited=visited,
        limit=limit,
        may_see=may_see,
        min_depth=min_depth,
    )
    return sorted(reversed(found), key=lambda e: e.depth)  # stable: ties stay oldest first


async def backfill(
    tables: Tables,
    loader: EventLoader,
    room: RoomRef,
    earliest_event_ids: Sequence[str],
    *,
    limit: int,
    may_see: Filter | None = None,
) -> list[Event]:
    """``/backfill``: the events ``earliest_event_ids`` and those before them, breadth first,
    at most ``limit`` in all (as the spec counts), newest first."""
    return await walk_back(
        tables,
        loader,
        room,
        list(earliest_event_ids),
        visited=set(),
        limit=limit,
        may_see=may_see,
    )
