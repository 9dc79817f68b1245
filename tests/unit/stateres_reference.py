"""A plain, obviously-correct state resolution v2/v2.1, for cross-checks and benchmarks.

This was the first version: it follows the spec's text line by line on event IDs,
walks every state set's whole auth chain, re-reads power levels at every comparison and
copies the resolved state for every auth check. Where the spec leaves a choice it makes
Synapse's (the auth chain of a state set includes the set's events; the topological
sort follows auth edges inside the full conflicted set; rejected events are never
admitted). ``roomserver.matrix.stateres`` must give the same answers, faster.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence

from roomserver.matrix.auth import check_auth
from roomserver.matrix.errors import AuthError
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import RoomVersion, StateResAlgorithm

Key = tuple[str, str]
PL = ("m.room.power_levels", "")


def auth_ids(event: Event) -> list[str]:
    ids = list(event.auth_event_ids)
    if event.room_version.room_id_from_create_event and event.state_tuple != ("m.room.create", ""):
        ids.append("$" + event.room_id[1:])
    return ids


def auth_chain(event_ids: set[str], events: Mapping[str, Event]) -> set[str]:
    """The events and everything reachable through ``auth_events``."""
    seen: set[str] = set()
    stack = list(event_ids)
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        stack.extend(auth_ids(events[e]))
    return seen


def is_power(e: Event) -> bool:
    if e.state_tuple in (PL, ("m.room.join_rules", ""), ("m.room.create", "")):
        return e.state_key == ""
    return (
        e.type == "m.room.member"
        and e.content.get("membership") in ("leave", "ban")
        and e.sender != e.state_key
    )


def sender_level(e: Event, events: Mapping[str, Event]) -> int:
    auth = [events[a] for a in auth_ids(e)]
    pls = [a for a in auth if a.state_tuple == PL]
    creates = [a for a in auth if a.state_tuple == ("m.room.create", "")]
    if creates and e.room_version.privileged_creators:
        c = creates[-1]
        if e.sender == c.sender or e.sender in (c.content.get("additional_creators") or []):
            return 2**53
    if not pls:
        if creates:
            c = creates[0]
            creator = c.sender if e.room_version.implicit_room_creator else c.content.get("creator")
            if creator == e.sender:
                return 100
        return 0
    content = pls[-1].content
    users = content.get("users")
    level = users.get(e.sender) if isinstance(users, dict) else None
    if level is None:
        level = content.get("users_default", 0)
    try:
        return int(level) if level is not None else 0
    except (TypeError, ValueError):
        return 0


def first_pl(e: Event, events: Mapping[str, Event]) -> Event | None:
    for a in auth_ids(e):
        if events[a].state_tuple == PL:
            return events[a]
    return None


def iterative_auth_checks(
    order: list[str],
    state: dict[Key, str],
    events: Mapping[str, Event],
    rejected: Callable[[str], bool],
) -> dict[Key, str]:
    state = dict(state)
    for eid in order:
        e = events[eid]
        if e.state_key is None or rejected(eid):
            continue
        # The state, plus the event's own (non-rejected) auth events for keys it lacks.
        full = {k: events[v] for k, v in state.items() if not rejected(v)}
        for a in auth_ids(e):
            ev = events[a]
            if ev.state_key is not None and not rejected(a):
                full.setdefault(ev.state_tuple, ev)
        try:
            check_auth(e, full)
        except AuthError:
            continue
        state[e.state_tuple] = eid
    return state


def resolve(
    version: RoomVersion,
    state_sets: Sequence[Mapping[Key, str]],
    events: Mapping[str, Event],
    rejected: Callable[[str], bool] = lambda e: False,
) -> dict[Key, str]:
    v21 = version.state_res is StateResAlgorithm.V2_1
    keys = set().union(*state_sets)
    unconflicted: dict[Key, str] = {}
    conflicted: set[str] = set()
    for k in keys:
        values = {s[k] for s in state_sets if k in s}
        if len(values) == 1 and all(k in s for s in state_sets):
            unconflicted[k] = values.pop()
        else:
            conflicted |= values
    if not conflicted:
        return unconflicted

    chains = [auth_chain(set(s.values()), events) for s in state_sets]
    full = conflicted | (set().union(*chains) - chains[0].intersection(*chains[1:]))
    if v21:
        below = auth_chain(conflicted, events)
        full |= {e for e in below if auth_chain({e}, events) & conflicted}

    # 1. power events and their auth ancestors inside the full conflicted set
    graph: dict[str, set[str]] = {}
    todo = [e for e in full if is_power(events[e])]
    while todo:
        e = todo.pop()
        if e in graph:
            continue
        graph[e] = {a for a in auth_ids(events[e]) if a in full}
        todo.extend(graph[e])

    def power_key(e: str) -> tuple[int, int, str]:
        return (-sender_level(events[e], events), events[e].origin_server_ts, e)

    ready = [(power_key(e), e) for e, out in graph.items() if not out]
    heapq.heapify(ready)
    power_order: list[str] = []
    while ready:
        _, e = heapq.heappop(ready)
        power_order.append(e)
        for other, out in graph.items():
            if e in out:
                out.discard(e)
                if not out:
                    heapq.heappush(ready, (power_key(other), other))

    # 2. replay them
    state = iterative_auth_checks(power_order, {} if v21 else unconflicted, events, rejected)

    # 3. mainline order of the rest
    mainline: list[str] = []
    pl_id = state.get(PL)
    while pl_id is not None:
        mainline.append(pl_id)
        nxt = first_pl(events[pl_id], events)
        pl_id = nxt.event_id if nxt is not None else None

    def position(e: str) -> int:
        cur: Event | None = events[e]
        while cur is not None:
            if cur.event_id in mainline:
                return len(mainline) - mainline.index(cur.event_id)
            cur = first_pl(cur, events)
        return 0

    rest = sorted(
        (e for e in full if e not in graph),
        key=lambda e: (position(e), events[e].origin_server_ts, e),
    )
    # 4. replay them; 5. the unconflicted state wins
    state = iterative_auth_checks(rest, state, events, rejected)
    state.update(unconflicted)
    return state
