"""State queries: the current state and latest events, the state after given events, and
the state plus auth chain that ``/state`` and ``send_join`` answer with.

All of them read the state as NIDs (a snapshot, then only the blocks holding the wanted
keys, or all blocks for a whole state) and load JSON only for the events they return. Given
the process's :class:`~roomserver.state.StateCache`, snapshots and blocks already read or
written by any session are taken from it: a repeated query reads no state rows. (The room and
event rows that name the snapshots are always read: they change, snapshots never do.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version
from roomserver.state import StateCache, StateSession
from roomserver.state import state_after_events as resolved_state_after
from roomserver.state.event_loader import EventLoader
from roomserver.storage.tables import EventInfo, RoomInfo, Tables
from roomserver.types import StateKeyTuple, StateMap

from .auth_chain import auth_chain_nids
from .events import load_in_order
from .rooms import KnownRooms, RoomRef


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
    """One more than the greatest depth of the latest events: the depth of a new event."""


@dataclass(frozen=True, slots=True)
class StateAndAuthChain:
    room_exists: bool
    room_version: str = ""
    prev_events_exist: bool = False
    state_events: list[Event] = field(default_factory=list)
    auth_chain_events: list[Event] = field(default_factory=list)


async def live_room(tables: Tables, room_id: str) -> RoomInfo | None:
    """The room row if it has events (a stub known only from an invite does not count)."""
    room = await tables.rooms.get(room_id)
    return None if room is None or room.is_stub else room


async def _prev_events(tables: Tables, room: RoomRef, ids: Sequence[str]) -> list[EventInfo] | None:
    """The rows of ``ids``, or None if one is unknown, of another room, or has no known
    state (an outlier)."""
    infos = await tables.events.lookup(list(ids)) if ids else {}
    prevs: list[EventInfo] = []
    for event_id in ids:
        info = infos.get(event_id)
        if info is None or info.state_snapshot_nid is None or info.room_nid != room.room_nid:
            return None
        prevs.append(info)
    return prevs


def _keys_of(
    types: dict[str, int], keys: dict[str, int], state_to_fetch: Sequence[tuple[str, str]]
) -> list[StateKeyTuple]:
    return [StateKeyTuple(types[t], keys[k]) for t, k in state_to_fetch if t in types and k in keys]


async def state_after(
    tables: Tables,
    session: StateSession,
    room: RoomRef,
    prevs: Sequence[EventInfo],
    state_to_fetch: Sequence[tuple[str, str]] | None,
) -> StateMap:
    """The state after ``prevs`` (the state before a new event citing them), whole or only
    the ``state_to_fetch`` pairs (empty or None: whole).

    One prev event (the usual case) is read directly: its state before, plus its own entry
    (unless rejected), in two queries (the snapshot, then only the blocks holding the wanted
    keys and its own). Several are combined by :func:`roomserver.state.state_after_events`,
    which resolves them when they differ.
    """
    if not prevs:
        return {}
    wanted: list[StateKeyTuple] | None = None
    if state_to_fetch:
        types = await tables.event_types.nids(sorted({t for t, _ in state_to_fetch}))
        keys = await tables.event_state_keys.nids(sorted({k for _, k in state_to_fetch}))
        wanted = _keys_of(types, keys, state_to_fetch)
    if len(prevs) == 1:
        prev = prevs[0]
        snapshot = await session.snapshot(prev.state_snapshot_nid or 0)
        own = (
            {prev.state_key_tuple: prev.event_nid} if prev.is_state and not prev.is_rejected else {}
        )
        if wanted is None:
            state = await session.full(snapshot)
            state.update(own)
            return state
        state = await session.lookup(snapshot, [k for k in wanted if k not in own])
        state.update((k, n) for k, n in own.items() if k in wanted)
        return state
    snapshot = await resolved_state_after(session, room.version, prevs)
    if wanted is None:
        return await session.full(snapshot)
    return await session.lookup(snapshot, wanted) if wanted else {}


async def state_after_events(
    tables: Tables,
    loader: EventLoader,
    rooms: KnownRooms,
    room_id: str,
    prev_event_ids: Sequence[str],
    state_to_fetch: Sequence[tuple[str, str]] | None = None,
    *,
    cache: StateCache | None = None,
) -> StateAfterEvents:
    """The state after ``prev_event_ids`` (the state a new event citing them would see),
    resolved when they disagree; only ``state_to_fetch`` pairs if given."""
    room = await rooms.get(tables, room_id)
    if room is None:
        return StateAfterEvents(room_exists=False)
    version = room.version.identifier
    prevs = await _prev_events(tables, room, prev_event_ids)
    if prevs is None:
        return StateAfterEvents(True, version, prev_events_exist=False)
    session = StateSession(tables, cache=cache)
    state = await state_after(tables, session, room, prevs, state_to_fetch)
    events = await load_in_order(tables, loader, room.version, sorted(set(state.values())))
    return StateAfterEvents(True, version, True, events)


async def latest_events_and_state(
    tables: Tables,
    loader: EventLoader,
    room_id: str,
    state_to_fetch: Sequence[tuple[str, str]] | None = None,
    *,
    cache: StateCache | None = None,
) -> LatestEventsAndState:
    """What a new event builds on: the forward extremities, the depth it gets, and the
    current state (all of it, or only ``state_to_fetch``)."""
    room = await live_room(tables, room_id)
    if room is None or room.state_snapshot_nid is None:
        return LatestEventsAndState(room_exists=False)
    version = room_version(room.room_version)
    session = StateSession(tables, cache=cache)
    snapshot = await session.snapshot(room.state_snapshot_nid)
    state: StateMap
    if state_to_fetch:
        types = await tables.event_types.nids(sorted({t for t, _ in state_to_fetch}))
        keys = await tables.event_state_keys.nids(sorted({k for _, k in state_to_fetch}))
        wanted = _keys_of(types, keys, state_to_fetch)
        state = await session.lookup(snapshot, wanted) if wanted else {}
    else:
        state = await session.full(snapshot)
    nids = sorted(set(state.values()))
    latest_nids = list(room.latest_event_nids)
    loaded = await loader.load(tables, version, list(dict.fromkeys([*nids, *latest_nids])))
    latest = [loaded[n] for n in latest_nids]
    depth = max((e.depth for e in latest), default=0) + 1
    return LatestEventsAndState(True, room.room_version, latest, [loaded[n] for n in nids], depth)


async def state_and_auth_chain(
    tables: Tables,
    loader: EventLoader,
    rooms: KnownRooms,
    room_id: str,
    prev_event_ids: Sequence[str],
    auth_event_ids: Sequence[str],
    *,
    cache: StateCache | None = None,
) -> StateAndAuthChain:
    """The state after ``prev_event_ids`` (resolved when they disagree) and the auth chain of
    its events and of ``auth_event_ids`` (those included; unknown ones skipped)."""
    room = await rooms.get(tables, room_id)
    if room is None:
        return StateAndAuthChain(room_exists=False)
    version = room.version.identifier
    prevs = await _prev_events(tables, room, prev_event_ids)
    if prevs is None:
        return StateAndAuthChain(True, version, prev_events_exist=False)
    state = await state_after(tables, StateSession(tables, cache=cache), room, prevs, None)
    state_nids = sorted(set(state.values()))
    given = await tables.events.lookup(list(auth_event_ids)) if auth_event_ids else {}
    chain = await auth_chain_nids(
        tables,
        auth_events_of=state_nids,
        including=[i.event_nid for i in given.values() if i.room_nid == room.room_nid],
    )
    loaded = await loader.load(tables, room.version, list(dict.fromkeys([*state_nids, *chain])))
    return StateAndAuthChain(
        True, version, True, [loaded[n] for n in state_nids], [loaded[n] for n in chain]
    )
