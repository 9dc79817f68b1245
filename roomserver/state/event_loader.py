"""Parsed events by NID, with a process-wide cache.

Stored events are immutable and were validated when they came in, so their parsed form can
be shared freely: the same create, power levels and member events authorise thousands of
later events, and parsing each of them once per request would dominate the input path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import orjson

from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import RoomVersion
from roomserver.storage.tables import Tables
from roomserver.types import EventNID


class EventLoader:
    """An LRU cache of parsed events in front of ``events``/``event_json``."""

    def __init__(self, max_size: int = 50_000) -> None:
        self.max_size = max_size
        self._cache: OrderedDict[EventNID, Event] = OrderedDict()

    async def load(
        self, tables: Tables, version: RoomVersion, nids: Sequence[EventNID]
    ) -> dict[EventNID, Event]:
        """The events of one room version by NID (two queries for those not cached)."""
        out: dict[EventNID, Event] = {}
        missing: list[EventNID] = []
        for nid in nids:
            event = self._cache.get(nid)
            if event is None:
                missing.append(nid)
            else:
                self._cache.move_to_end(nid)
                out[nid] = event
        if missing:
            ids = await tables.events.event_ids(missing)
            json = await tables.events.json(missing)
            for nid in missing:
                if nid not in json or nid not in ids:
                    raise LookupError(f"event NID {nid} has no stored JSON")
                event = Event(orjson.loads(json[nid]), version, ids[nid])
                out[nid] = event
                self._cache[nid] = event
            while len(self._cache) > self.max_size:
                self._cache.popitem(last=False)
        return out

    def cached(self, nid: EventNID) -> Event | None:
        """The event if it is cached (no database access, no LRU update)."""
        return self._cache.get(nid)

    def add(self, events: Mapping[EventNID, Event]) -> None:
        """Cache events just stored (their transaction committed)."""
        self._cache.update(events)
        while len(self._cache) > self.max_size:
            self._cache.popitem(last=False)

    def __len__(self) -> int:
        return len(self._cache)
