"""Read-only answers over storage: each query opens a read connection, works on NIDs and
loads event JSON only for what it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import RoomVersion, room_version
from roomserver.state import StateSession, state_after_events
from roomserver.state.event_loader import EventLoader
from roomserver.state.session import Snapshot
from roomserver.storage import Storage, Tables
from roomserver.types import EventNID, StateKeyTuple, StateMap


@dataclass(frozen=True, slots=True)
class StateAfterEvents:
    room_exists: bool
    room_version: str = ""
    prev_events_exist: bool = False
    state_events: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LatestEventsAndState:
    room_exists: bool
    room_version: str = ""
    latest_events: list[Event] = field(default_factory=list)
    state_events: list[Event] = field(default_factory=list)
    depth: int = 0


class Query:
    def __init__(self, storage: Storage, loader: EventLoader | None = None) -> None:
        self.storage = storage
        self.loader = loader if loader is not None else EventLoader()

    async def state_after_events(
        self,
        room_id: str,
        prev_event_ids: Sequence[str],
        state_to_fetch: Sequence[tuple[str, str]] | None = None,
    ) -> StateAfterEvents:
        """The state after ``prev_event_ids`` (the state a new event citing them would see),
        resolved when they disagree; only ``state_to_fetch`` pairs if given."""
        async with self.storage.read() as r:
            room = await r.rooms.get(room_id)
            if room is None or not room.latest_event_nids:
                return StateAfterEvents(room_exists=False)
            version = room_version(room.room_version)
            infos = await r.events.lookup(list(prev_event_ids))
            prevs = [infos.get(e) for e in prev_event_ids]
            if not prevs or any(
                p is None or p.state_snapshot_nid is None or p.room_nid != room.room_nid
                for p in prevs
            ):
                return StateAfterEvents(True, room.room_version, prev_events_exist=False)
            session = StateSession(r)
            snapshot = await state_after_events(session, version, [p for p in prevs if p])
            events = await self._state_events(r, session, snapshot, version, state_to_fetch)
            return StateAfterEvents(True, room.room_version, True, events)

    async def latest_events_and_state(
        self, room_id: str, state_to_fetch: Sequence[tuple[str, str]] | None = None
    ) -> LatestEventsAndState:
        async with self.storage.read() as r:
            room = await r.rooms.get(room_id)
            if room is None or not room.latest_event_nids or room.state_snapshot_nid is None:
                return LatestEventsAndState(room_exists=False)
            version = room_version(room.room_version)
            session = StateSession(r)
            snapshot = await session.snapshot(room.state_snapshot_nid)
            state = await self._state_events(r, session, snapshot, version, state_to_fetch)
            latest = await self.loader.load(r, version, list(room.latest_event_nids))
            latest_events = [latest[n] for n in room.latest_event_nids]
            depth = max((e.depth for e in latest_events), default=0)
            return LatestEventsAndState(True, room.room_version, latest_events, state, depth)

    async def events_by_id(self, event_ids: Sequence[str]) -> list[Event]:
        """The stored events among ``event_ids`` (unknown ones are left out), in order."""
        async with self.storage.read() as r:
            infos = await r.events.lookup(list(event_ids))
            if not infos:
                return []
            room_ids = await r.rooms.room_ids(sorted({i.room_nid for i in infos.values()}))
            rooms = await r.rooms.get_many(list(room_ids.values()))
            versions = {nid: room_version(rooms[rid].room_version) for nid, rid in room_ids.items()}
            by_room: dict[int, list[EventNID]] = {}
            for info in infos.values():
                by_room.setdefault(info.room_nid, []).append(info.event_nid)
            loaded: dict[EventNID, Event] = {}
            for room_nid, nids in by_room.items():
                loaded.update(await self.loader.load(r, versions[room_nid], nids))
            return [loaded[infos[e].event_nid] for e in dict.fromkeys(event_ids) if e in infos]

    async def room_version_for_room(self, room_id: str) -> str | None:
        async with self.storage.read() as r:
            room = await r.rooms.get(room_id)
            return None if room is None else room.room_version

    async def _state_events(
        self,
        r: Tables,
        session: StateSession,
        snapshot: Snapshot,
        version: RoomVersion,
        state_to_fetch: Sequence[tuple[str, str]] | None,
    ) -> list[Event]:
        state: StateMap
        if state_to_fetch:
            types = await r.event_types.nids(sorted({t for t, _ in state_to_fetch}))
            keys = await r.event_state_keys.nids(sorted({k for _, k in state_to_fetch}))
            wanted = [
                StateKeyTuple(types[t], keys[k])
                for t, k in state_to_fetch
                if t in types and k in keys
            ]
            state = await session.lookup(snapshot, wanted)
        else:
            state = await session.full(snapshot)
        nids: list[EventNID] = sorted(state.values())
        loaded = await self.loader.load(r, version, nids)
        return [loaded[n] for n in nids]
