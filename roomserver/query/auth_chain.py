"""Auth chains: every event that authorises some events, and theirs, recursively.

Walked on NIDs (each stored event keeps its auth events' NIDs in its row), one light query
per level of the auth DAG, before any JSON is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable

from roomserver.storage.tables import Tables
from roomserver.types import EventNID


async def auth_chain_nids(
    tables: Tables, *, auth_events_of: Iterable[EventNID] = (), including: Iterable[EventNID] = ()
) -> list[EventNID]:
    """The auth chain of ``auth_events_of`` (their auth events, recursively; not the events
    themselves unless one authorises another) plus ``including`` and their chains.

    Sorted by NID: events are stored after their auth events, so this lists every event
    after the events that authorise it.
    """
    seen: set[EventNID] = set()
    frontier: list[EventNID] = list(dict.fromkeys(including))
    seen.update(frontier)
    sources = list(dict.fromkeys(auth_events_of))
    if sources:
        auth = await tables.events.auth_event_nids(sources)
        for nids in auth.values():
            for nid in nids:
                if nid not in seen:
                    seen.add(nid)
                    frontier.append(nid)
    while frontier:
        auth = await tables.events.auth_event_nids(frontier)
        frontier = []
        for nids in auth.values():
            for nid in nids:
                if nid not in seen:
                    seen.add(nid)
                    frontier.append(nid)
    return sorted(seen)
