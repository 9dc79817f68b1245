"""The state after a set of events: the state before each plus its own entry, resolved by
the room version's state resolution algorithm when they differ.

The resolver works on strings and parsed events (:mod:`roomserver.matrix.stateres`); this
module maps the NID states to strings, loads the events the algorithm reads (every state
event of the sets and their auth chains, walked in the database by NIDs before any JSON is
loaded), and maps the answer back. The resolver is injectable, so tests and the input
pipeline can substitute their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import orjson

from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import RoomVersion
from roomserver.storage.tables import EventInfo
from roomserver.types import EventNID, StateKeyTuple, StateMap

from .session import MissingStateError, Snapshot, StateSession

StringStateMap = Mapping[tuple[str, str], str]


class Resolver(Protocol):
    """``resolve_state(version, state_sets, events, *, is_rejected=...)`` of
    :mod:`roomserver.matrix.stateres`, or a stand-in with the same contract."""

    def __call__(
        self,
        version: RoomVersion,
        state_sets: Sequence[StringStateMap],
        events: Mapping[str, Event],
        *,
        is_rejected: Callable[[str], bool] | None = None,
    ) -> dict[tuple[str, str], str]: ...


def default_resolver() -> Resolver:
    from roomserver.matrix.stateres import resolve_state

    return resolve_state


_MAX_RETRIES = 3


async def state_after_events(
    session: StateSession,
    room_version: RoomVersion,
    prev_events: Sequence[EventInfo],
    *,
    resolver: Resolver | None = None,
) -> Snapshot:
    """The state after ``prev_events`` (of one room): the state before a new event.

    Each prev event contributes the state before it plus its own entry (unless it is
    rejected or not a state event). When all agree, no event is loaded and the result is
    that state (derived in memory, written by :meth:`StateSession.flush`); otherwise the
    states are resolved. Outliers have no known state and raise :class:`MissingStateError`.
    """
    if not prev_events:
        raise ValueError("the state after no events is not defined; use StateSession.empty")
    room_nids = {p.room_nid for p in prev_events}
    if len(room_nids) != 1:
        raise ValueError(f"prev events from several rooms: {sorted(room_nids)}")
    unknown = [p.event_id for p in prev_events if p.state_snapshot_nid is None]
    if unknown:
        raise MissingStateError(f"no state known before {unknown}")
    befores = await session.snapshots(p.state_snapshot_nid or 0 for p in prev_events)
    contributing = [p for p in prev_events if p.is_state and not p.is_rejected]
    await session.lookup_many(  # one query for every block the derivations below read
        [(befores[p.state_snapshot_nid or 0], [p.state_key_tuple]) for p in contributing]
    )
    afters: dict[int, Snapshot] = {}
    for prev in prev_events:
        before = befores[prev.state_snapshot_nid or 0]
        if prev.is_state and not prev.is_rejected:
            after = await session.derive(before, {prev.state_key_tuple: prev.event_nid})
        else:
            after = before
        afters.setdefault(after.state_hash, after)
    if len(afters) == 1:
        return next(iter(afters.values()))
    return await _resolve(session, room_version, list(afters.values()), resolver)


async def _resolve(
    session: StateSession,
    room_version: RoomVersion,
    candidates: list[Snapshot],
    resolver: Resolver | None,
) -> Snapshot:
    tables = session.tables
    states = await session.full_many(candidates)
    type_nids = {k[0] for s in states for k in s}
    key_nids = {k[1] for s in states for k in s}
    event_nids = {e for s in states for e in s.values()}
    types = await tables.event_types.strings(list(type_nids))
    keys = await tables.event_state_keys.strings(list(key_nids))
    loaded = await _load_with_auth_chains(session, room_version, event_nids)
    nid_of_id = {event_id: nid for nid, (event_id, _, _) in loaded.items()}
    ids = {nid: event_id for nid, (event_id, _, _) in loaded.items()}
    string_sets = [
        {(types[k[0]], keys[k[1]]): ids[e] for k, e in state.items()} for state in states
    ]
    events = {event_id: event for event_id, event, _ in loaded.values()}
    rejected = {event_id for event_id, _, is_rejected in loaded.values() if is_rejected}
    resolve = resolver if resolver is not None else default_resolver()
    from roomserver.matrix.stateres import MissingEventsError

    for attempt in range(_MAX_RETRIES + 1):
        try:
            resolved = resolve(room_version, string_sets, events, is_rejected=rejected.__contains__)
            break
        except MissingEventsError as e:
            if attempt == _MAX_RETRIES:
                raise
            found = await tables.events.nids(sorted(e.event_ids))
            if not found:
                raise
            more = await _load_with_auth_chains(session, room_version, set(found.values()))
            for nid, (event_id, event, is_rejected) in more.items():
                events[event_id] = event
                nid_of_id[event_id] = nid
                if is_rejected:
                    rejected.add(event_id)
    type_of = {s: n for n, s in types.items()}
    key_of = {s: n for n, s in keys.items()}
    result: StateMap = {
        StateKeyTuple(type_of[t], key_of[k]): nid_of_id[event_id]
        for (t, k), event_id in resolved.items()
    }
    # Store it as a change of the candidate closest to it.
    nearest = min(
        range(len(candidates)),
        key=lambda i: (
            sum(1 for k, v in result.items() if states[i].get(k) != v)
            + sum(1 for k in states[i] if k not in result)
        ),
    )
    return await session.store(
        candidates[nearest].room_nid, result, near=candidates[nearest], near_state=states[nearest]
    )


async def _load_with_auth_chains(
    session: StateSession, room_version: RoomVersion, event_nids: set[EventNID]
) -> dict[EventNID, tuple[str, Event, bool]]:
    """``event_nids`` and their auth chains: NID -> (event ID, parsed event, rejected)."""
    tables = session.tables
    seen = set(event_nids)
    frontier = list(event_nids)
    while frontier:  # one light query (NIDs only) per level of the auth DAG
        auth = await tables.events.auth_event_nids(frontier)
        frontier = [a for nids in auth.values() for a in nids if a not in seen]
        frontier = list(dict.fromkeys(frontier))
        seen.update(frontier)
    infos = await tables.events.by_nid(list(seen))
    json = await tables.events.json(list(infos))
    return {
        nid: (
            info.event_id,
            Event(orjson.loads(json[nid]), room_version, info.event_id),
            info.is_rejected,
        )
        for nid, info in infos.items()
        if nid in json
    }


async def resolve_snapshots(
    session: StateSession,
    room_version: RoomVersion,
    candidates: Sequence[Snapshot],
    *,
    resolver: Resolver | None = None,
) -> Snapshot:
    """The resolution of several states of one room (they must differ), stored in memory
    as a change of the nearest one. Every event of the states must be stored."""
    return await _resolve(session, room_version, list(candidates), resolver)
