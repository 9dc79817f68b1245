"""A consistency check of a whole roomserver database, recomputed from the DAG alone.

The input pipeline computes the state before each event incrementally, in batches, under
locks, possibly interrupted by crashes. This checker ignores all of that: it reads the
events (their JSON and their accepted / rejected / soft-failed flags) and recomputes, room
by room in topological order,

- the state before every non-outlier event: nothing for the create event, else the states
  after its prev events (the state before a prev plus the prev itself when it is a state
  event that was not rejected) resolved with :func:`roomserver.matrix.stateres.resolve_state`
  when they differ -- compared with the stored snapshot;
- the room's latest events: the forward extremities of its accepted, not soft-failed
  events (those no such event cites as a prev; rejected and soft-failed events are never
  latest and do not retire their prevs) -- compared with the room row, together with the
  room's current state (the resolved state after those extremities);
- the memberships: each member event of the room's current state is its member's row in
  the memberships table (that event, its membership);
- the output log: positions 1..N without gap, each accepted event in exactly one
  ``new_room_event`` row (rejected, soft-failed and outlier events in none), and the last
  ``new_room_event`` row of each room naming the room's latest events.

It assumes what the integration tests do: events were input as new events without a given
state (``has_state``) and nothing was backfilled. :func:`check_database` returns the problems
found, as sentences; an empty list means consistent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import RoomVersion, room_version
from roomserver.matrix.stateres import resolve_state
from roomserver.state import StateSession
from roomserver.storage import Storage, Tables
from roomserver.storage.tables import RoomInfo
from roomserver.types import Membership, StateMap

StringState = dict[tuple[str, str], str]
"""``(type, state key) -> event ID``."""

MAX_PROBLEMS_PER_ROOM = 20


@dataclass(slots=True)
class _Stored:
    nid: int
    event: Event
    snapshot_nid: int
    outlier: bool
    rejected: bool
    soft_failed: bool

    @property
    def accepted(self) -> bool:
        """Part of the room as the room's latest events see it."""
        return not (self.outlier or self.rejected or self.soft_failed)


@dataclass(slots=True)
class _RoomFacts:
    """What the output log check needs from a room."""

    room_id: str
    latest_ids: set[str]
    accepted_ids: set[str]
    event_ids: set[str]


async def check_database(url: str) -> list[str]:
    """Every problem found in the database at ``url`` (empty: consistent)."""
    storage = await Storage.open(url, migrate=False)
    try:
        async with storage.read() as tables:
            return await check_tables(tables)
    finally:
        await storage.close()


async def check_tables(tables: Tables) -> list[str]:
    """The check over an open connection (read it while nothing writes)."""
    problems: list[str] = []
    room_nids = [r[0] for r in await tables.conn.fetch("SELECT room_nid FROM rooms")]
    facts: list[_RoomFacts] = []
    for room_nid in sorted(room_nids):
        room_problems, room_facts = await _check_room(tables, room_nid)
        problems += room_problems
        if room_facts is not None:
            facts.append(room_facts)
    problems += await _check_output(tables, facts)
    return problems


# -- one room ---------------------------------------------------------------------------


async def _load_room_events(
    tables: Tables, room_nid: int, version: RoomVersion
) -> dict[str, _Stored]:
    rows = await tables.conn.fetch(
        "SELECT event_nid, event_id, state_snapshot_nid, is_outlier, is_rejected,"
        " is_soft_failed FROM events WHERE room_nid = $1 ORDER BY event_nid",
        room_nid,
    )
    json = await tables.events.json([r[0] for r in rows])
    out: dict[str, _Stored] = {}
    for nid, event_id, snapshot_nid, outlier, rejected, soft_failed in rows:
        event = Event(orjson.loads(json[nid]), version, event_id)
        out[event_id] = _Stored(
            nid, event, snapshot_nid or 0, bool(outlier), bool(rejected), bool(soft_failed)
        )
    return out


def _topological(events: Mapping[str, _Stored], problems: list[str]) -> list[_Stored]:
    """The non-outlier events, every one after its prev events (Kahn's algorithm); events
    whose prevs are missing or outliers are reported and left out with their descendants."""
    placed = {e for e, s in events.items() if not s.outlier}
    children: dict[str, list[str]] = {}
    waiting: dict[str, int] = {}
    ready: list[str] = []
    for event_id in sorted(placed):
        prevs = set(events[event_id].event.prev_event_ids)
        for prev in prevs:
            if prev not in events:
                problems.append(f"{event_id} cites a prev event that is not stored: {prev}")
            elif prev not in placed:
                problems.append(f"{event_id} (with state) cites an outlier prev event {prev}")
            children.setdefault(prev, []).append(event_id)
        waiting[event_id] = len(prevs)
        if not prevs:
            ready.append(event_id)
    order: list[_Stored] = []
    while ready:
        event_id = ready.pop()
        order.append(events[event_id])
        for child in children.get(event_id, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) != len(placed):
        stuck = len(placed) - len(order)
        problems.append(f"{stuck} events could not be ordered (missing prevs or a cycle)")
    return order


class _Recomputer:
    """The state before and after each event, from the DAG, resolutions memoised."""

    def __init__(self, version: RoomVersion, events: Mapping[str, _Stored]) -> None:
        self.version = version
        self.events = events
        self.parsed = {event_id: s.event for event_id, s in events.items()}
        self.rejected = {event_id for event_id, s in events.items() if s.rejected}
        self.before: dict[str, StringState] = {}
        self._resolved: dict[frozenset[frozenset[tuple[tuple[str, str], str]]], StringState] = {}

    def after(self, event_id: str) -> StringState:
        stored = self.events[event_id]
        before = self.before[event_id]
        ev = stored.event
        if ev.state_key is None or stored.rejected:
            return before
        return {**before, (ev.type, ev.state_key): event_id}

    def state_after(self, event_ids: Sequence[str]) -> StringState:
        """The state after several events, resolved when they disagree."""
        if not event_ids:
            return {}
        distinct: dict[frozenset[tuple[tuple[str, str], str]], StringState] = {}
        for event_id in event_ids:
            state = self.after(event_id)
            distinct.setdefault(frozenset(state.items()), state)
        if len(distinct) == 1:
            return next(iter(distinct.values()))
        key = frozenset(distinct)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = dict(
                resolve_state(
                    self.version,
                    list(distinct.values()),
                    self.parsed,
                    is_rejected=self.rejected.__contains__,
                )
            )
            self._resolved[key] = resolved
        return resolved

    def run(self, order: Sequence[_Stored]) -> None:
        for stored in order:
            ev = stored.event
            self.before[ev.event_id] = self.state_after(ev.prev_event_ids)


class _StoredStates:
    """Stored snapshots as string states, each snapshot read once."""

    def __init__(self, tables: Tables, events: Mapping[str, _Stored]) -> None:
        self.tables = tables
        self.session = StateSession(tables)
        self.id_of = {s.nid: event_id for event_id, s in events.items()}
        self._types: dict[int, str] = {}
        self._keys: dict[int, str] = {}
        self._states: dict[int, StringState] = {}

    async def load(self, snapshot_nids: Sequence[int]) -> None:
        wanted = sorted({n for n in snapshot_nids if n and n not in self._states})
        if not wanted:
            return
        snaps = await self.session.snapshots(wanted)
        maps = await self.session.full_many([snaps[n] for n in wanted])
        type_nids = {k[0] for m in maps for k in m} - set(self._types)
        key_nids = {k[1] for m in maps for k in m} - set(self._keys)
        if type_nids:
            self._types.update(await self.tables.event_types.strings(sorted(type_nids)))
        if key_nids:
            self._keys.update(await self.tables.event_state_keys.strings(sorted(key_nids)))
        for nid, state in zip(wanted, maps, strict=True):
            self._states[nid] = self._strings(state)

    def _strings(self, state: StateMap) -> StringState:
        out: StringState = {}
        for key, event_nid in state.items():
            event_id = self.id_of.get(event_nid, f"<event NID {event_nid} not in this room>")
            out[(self._types.get(key[0], f"<type {key[0]}>"), self._keys.get(key[1], "?"))] = (
                event_id
            )
        return out

    def state(self, snapshot_nid: int) -> StringState:
        return self._states[snapshot_nid]


def _difference(stored: StringState, expected: StringState) -> str:
    keys = sorted(set(stored) | set(expected))
    parts = [
        f"{k}: stored {stored.get(k)} expected {expected.get(k)}"
        for k in keys
        if stored.get(k) != expected.get(k)
    ]
    more = f" (+{len(parts) - 3} more)" if len(parts) > 3 else ""
    return "; ".join(parts[:3]) + more


async def _check_room(tables: Tables, room_nid: int) -> tuple[list[str], _RoomFacts | None]:
    room = await tables.rooms.get_by_nid(room_nid)
    if room is None:
        return [f"room NID {room_nid} vanished"], None
    problems: list[str] = []
    version = room_version(room.room_version)
    events = await _load_room_events(tables, room_nid, version)
    order = _topological(events, problems)
    recompute = _Recomputer(version, events)
    recompute.run(order)
    stored_states = _StoredStates(tables, events)
    await stored_states.load([s.snapshot_nid for s in order] + [room.state_snapshot_nid or 0])
    for stored in order:
        event_id = stored.event.event_id
        if not stored.snapshot_nid:
            problems.append(f"{room.room_id}: {event_id} is not an outlier but has no snapshot")
            continue
        have = stored_states.state(stored.snapshot_nid)
        want = recompute.before[event_id]
        if have != want:
            problems.append(
                f"{room.room_id}: wrong state before {event_id} (snapshot"
                f" {stored.snapshot_nid}): {_difference(have, want)}"
            )

    accepted = [s for s in order if s.accepted]
    retired = {p for s in accepted for p in s.event.prev_event_ids}
    extremities = {s.event.event_id for s in accepted if s.event.event_id not in retired}
    latest_ids = [stored_states.id_of.get(n, f"<NID {n}>") for n in room.latest_event_nids]
    if len(set(latest_ids)) != len(latest_ids):
        problems.append(f"{room.room_id}: duplicate latest events {latest_ids}")
    if set(latest_ids) != extremities:
        problems.append(
            f"{room.room_id}: latest events {sorted(latest_ids)} are not the forward"
            f" extremities {sorted(extremities)}"
            f" (missing {sorted(extremities - set(latest_ids))},"
            f" extra {sorted(set(latest_ids) - extremities)})"
        )
    elif extremities:
        current = recompute.state_after(sorted(extremities))
        if not room.state_snapshot_nid:
            problems.append(f"{room.room_id}: no current state snapshot")
        elif stored_states.state(room.state_snapshot_nid) != current:
            have = stored_states.state(room.state_snapshot_nid)
            problems.append(f"{room.room_id}: wrong current state: {_difference(have, current)}")
        problems += await _check_memberships(tables, room, current, events)
    if len(problems) > MAX_PROBLEMS_PER_ROOM:
        problems = [
            *problems[:MAX_PROBLEMS_PER_ROOM],
            f"{room.room_id}: … {len(problems) - MAX_PROBLEMS_PER_ROOM} more problems",
        ]
    facts = _RoomFacts(
        room.room_id,
        set(latest_ids),
        {s.event.event_id for s in accepted},
        set(events),
    )
    return problems, facts


async def _check_memberships(
    tables: Tables, room: RoomInfo, current: StringState, events: Mapping[str, _Stored]
) -> list[str]:
    rows = await tables.memberships.members(room.room_nid)
    users = await tables.event_state_keys.strings([m.target_nid for m in rows])
    id_of = {s.nid: event_id for event_id, s in events.items()}
    stored = {users.get(m.target_nid): (id_of.get(m.event_nid), m.membership) for m in rows}
    problems: list[str] = []
    for (event_type, user), event_id in sorted(current.items()):
        if event_type != "m.room.member":
            continue
        content = events[event_id].event.membership or "leave"
        want = (event_id, Membership.from_content(content))
        if stored.get(user) != want:
            problems.append(
                f"{room.room_id}: membership of {user} is {stored.get(user)}, expected {want}"
            )
    return problems


# -- the output log ---------------------------------------------------------------------


async def _check_output(tables: Tables, rooms: Sequence[_RoomFacts]) -> list[str]:
    problems: list[str] = []
    rows = await tables.conn.fetch("SELECT position, payload FROM output_log ORDER BY position")
    positions = [int(r[0]) for r in rows]
    if positions != list(range(1, len(positions) + 1)):
        gaps = sorted(set(range(1, (max(positions) if positions else 0) + 1)) - set(positions))
        dups = sorted({p for p in positions if positions.count(p) > 1})
        problems.append(
            f"output log positions are not 1..{len(positions)}: gaps {gaps[:10]},"
            f" duplicates {dups[:10]}"
        )
    room_of: dict[str, _RoomFacts] = {}
    for facts in rooms:
        for event_id in facts.event_ids:
            room_of[event_id] = facts
    counts: dict[str, int] = {}
    last_latest: dict[str, list[str]] = {}
    for position, payload in rows:
        body = orjson.loads(bytes(payload))
        if body.get("type") != "new_room_event":
            continue
        new = body["new_room_event"]
        event_id = new["event"].get("event_id", "")
        counts[event_id] = counts.get(event_id, 0) + 1
        owner = room_of.get(event_id)
        if owner is None:
            problems.append(f"output position {position} names an unknown event {event_id}")
            continue
        if not new.get("historical"):
            last_latest[owner.room_id] = list(new["latest_event_ids"])
    for facts in rooms:
        for event_id in sorted(facts.accepted_ids):
            if counts.get(event_id, 0) != 1:
                problems.append(
                    f"{facts.room_id}: accepted event {event_id} is in"
                    f" {counts.get(event_id, 0)} new_room_event rows, not 1"
                )
        for event_id in sorted(facts.event_ids - facts.accepted_ids):
            if counts.get(event_id):
                problems.append(
                    f"{facts.room_id}: {event_id} (rejected, soft-failed or outlier) is in"
                    f" {counts[event_id]} new_room_event rows"
                )
        last = last_latest.get(facts.room_id)
        if facts.accepted_ids and (last is None or set(last) != facts.latest_ids):
            problems.append(
                f"{facts.room_id}: the last new_room_event names latest events {last},"
                f" the room has {sorted(facts.latest_ids)}"
            )
    return problems
