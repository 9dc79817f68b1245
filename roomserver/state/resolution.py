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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class PendingEvents:
    """Events of the batch being processed, not stored yet (their NIDs reserved).

    A batch computes the state before each of its events before writing any of them, so
    a prev event may be one of its own: its ``EventInfo`` (built by the caller, with the
    reserved NID and ``state_snapshot_nid=None``) says what it is, ``snapshots`` holds the
    state before it (unflushed), and ``events`` the parsed event for state resolution.
    """

    snapshots: Mapping[EventNID, Snapshot] = field(default_factory=dict)
    events: Mapping[EventNID, Event] = field(default_factory=dict)
    rejected: frozenset[EventNID] = frozenset()


async def state_after_events(
    session: StateSession,
    room_version: RoomVersion,
    prev_events: Sequence[EventInfo],
    *,
    pending: PendingEvents | None = None,
    resolver: Resolver | None = None,
) -> Snapshot:
    """The state after ``prev_events`` (of one room): the state before a new event.

    Each prev event contributes the state before it plus its own entry (unless it is
    rejected or not a state event). When all agree, no event is loaded and the result is
    that state (derived in memory, written by :meth:`StateSession.flush`); otherwise the
    states are resolved. Prev events of the batch itself are described by ``pending``.
    Outliers have no known state and raise :class:`MissingStateError`.
    """
    if not prev_events:
        raise ValueError("the state after no events is not defined; use StateSession.empty")
    pending = pending if pending is not None else PendingEvents()
    room_nids = {p.room_nid for p in prev_events}
    if len(room_nids) != 1:
        raise ValueError(f"prev events from several rooms: {sorted(room_nids)}")
    unknown = [
        p.event_id
        for p in prev_events
        if p.state_snapshot_nid is None and p.event_nid not in pending.snapshots
    ]
    if unknown:
        raise MissingStateError(f"no state known before {unknown}")
    stored = await session.snapshots(
        p.state_snapshot_nid or 0 for p in prev_events if p.event_nid not in pending.snapshots
    )
    befores = {
        p.event_nid: pending.snapshots[p.event_nid]
        if p.event_nid in pending.snapshots
        else stored[p.state_snapshot_nid or 0]
        for p in prev_events
    }
    contributing = [p for p in prev_events if p.is_state and not p.is_rejected]
    await session.lookup_many(  # one query for every block the derivations below read
        [(befores[p.event_nid], [p.state_key_tuple]) for p in contributing]
    )
    afters: dict[int, Snapshot] = {}
    for prev in prev_events:
        before = befores[prev.event_nid]
        if prev.is_state and not prev.is_rejected:
            after = await session.derive(before, {prev.state_key_tuple: prev.event_nid})
        else:
            after = before
        afters.setdefault(after.state_hash, after)
    if len(afters) == 1:
        return next(iter(afters.values()))
    return await _resolve(session, room_version, list(afters.values()), pending, resolver)


async def _resolve(
    session: StateSession,
    room_version: RoomVersion,
    candidates: list[Snapshot],
    pending: PendingEvents,
    resolver: Resolver | None,
) -> Snapshot:
    tables = session.tables
    states = await session.full_many(candidates)
    type_nids = {k[0] for s in states for k in s}
    key_nids = {k[1] for s in states for k in s}
    event_nids = {e for s in states for e in s.values()}
    types = await tables.event_types.strings(list(type_nids))
    keys = await tables.event_state_keys.strings(list(key_nids))
    loaded = await _load_with_auth_chains(session, room_version, event_nids, pending)
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
            more = await _load_with_auth_chains(session, room_version, set(found.values()), pending)
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
    session: StateSession,
    room_version: RoomVersion,
    event_nids: set[EventNID],
    pending: PendingEvents,
) -> dict[EventNID, tuple[str, Event, bool]]:
    """``event_nids`` and their auth chains: NID -> (event ID, parsed event, rejected)."""
    tables = session.tables
    nid_of_pending = {event.event_id: nid for nid, event in pending.events.items()}
    seen = set(event_nids)
    frontier = list(event_nids)
    while frontier:  # one light query (NIDs only) per level of the auth DAG
        stored = [nid for nid in frontier if nid not in pending.events]
        auth = await tables.events.auth_event_nids(stored) if stored else {}
        cited = [a for nids in auth.values() for a in nids]
        cited_ids = [
            a
            for nid in frontier
            if nid in pending.events
            for a in pending.events[nid].auth_event_ids
        ]
        unknown_ids = [a for a in cited_ids if a not in nid_of_pending]
        known = await tables.events.nids(unknown_ids) if unknown_ids else {}
        cited += [
            nid_of_pending.get(a) or known[a]
            for a in cited_ids
            if a in nid_of_pending or a in known
        ]
        frontier = list(dict.fromkeys(a for a in cited if a not in seen))
        seen.update(frontier)
    out = {
        nid: (event.event_id, event, nid in pending.rejected)
        for nid, event in pending.events.items()
        if nid in seen
    }
    stored_nids = [nid for nid in seen if nid not in pending.events]
    infos = await tables.events.by_nid(stored_nids)
    json = await tables.events.json(list(infos))
    for nid, info in infos.items():
        if nid in json:
            event = Event(orjson.loads(json[nid]), room_version, info.event_id)
            out[nid] = (info.event_id, event, info.is_rejected)
    return out
