"""Events by ID, and the one way the queries turn NIDs into parsed events.

Every query works on NIDs and loads JSON last, only for the events it returns, through the
process-wide :class:`~roomserver.state.event_loader.EventLoader` (its cache serves the same
create, power levels and member events to every query).
"""

from __future__ import annotations

from collections.abc import Sequence

from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import RoomVersion
from roomserver.state.event_loader import EventLoader
from roomserver.storage.tables import Tables
from roomserver.types import EventNID, RoomNID

from .rooms import KnownRooms


async def load_in_order(
    tables: Tables, loader: EventLoader, version: RoomVersion, nids: Sequence[EventNID]
) -> list[Event]:
    """The events of one room, in the order of ``nids``."""
    if not nids:
        return []
    loaded = await loader.load(tables, version, list(dict.fromkeys(nids)))
    return [loaded[n] for n in nids]


async def events_by_id(
    tables: Tables, loader: EventLoader, rooms: KnownRooms, event_ids: Sequence[str]
) -> list[Event]:
    """The stored events among ``event_ids`` (unknown ones left out), in request order,
    each once; events of several rooms (and room versions) may be mixed."""
    infos = await tables.events.lookup(list(event_ids))
    if not infos:
        return []
    refs = await rooms.by_nids(tables, [i.room_nid for i in infos.values()])
    by_room: dict[RoomNID, list[EventNID]] = {}
    for info in infos.values():
        by_room.setdefault(info.room_nid, []).append(info.event_nid)
    loaded: dict[EventNID, Event] = {}
    for room_nid, nids in by_room.items():
        loaded.update(await loader.load(tables, refs[room_nid].version, nids))
    return [loaded[infos[e].event_nid] for e in dict.fromkeys(event_ids) if e in infos]
