"""The two orderings of state resolution v2: reverse topological power, and mainline.

Both follow Synapse where the spec leaves room (it computed the answers rooms live
with): a sender's power level is read from the event's own auth events, with the v12
creators first, then the room creator's 100 when no power levels are cited; the mainline
position of an event counts from the oldest power levels event (1) up, 0 when the
event's power levels chain never meets the mainline.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable

from ..events import CREATE, POWER_LEVELS, Event
from .base import CREATOR_POWER_LEVEL, EventIndex


def _is_creator(create: Event, user_id: str) -> bool:
    if create.sender == user_id:
        return True
    if not create.room_version.privileged_creators:
        return False
    extra = create.content.get("additional_creators")
    return isinstance(extra, list) and user_id in extra


def _level(value: object) -> int:
    """A power level as Synapse's ``int()`` reads it; unreadable values count as 0."""
    if type(value) is int:
        return value
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError, OverflowError):
        return 0


def sender_power_level(index: EventIndex, i: int) -> int:
    """The power level of event *i*'s sender according to its own auth events."""
    event = index.events[i]
    events = index.events
    levels: Event | None = None
    first_create: Event | None = None
    last_create: Event | None = None
    for j in index.auth_of(i):
        auth = events[j]
        if auth.state_key == "":
            if auth.type == POWER_LEVELS:
                levels = auth
            elif auth.type == CREATE:
                last_create = auth
                if first_create is None:
                    first_create = auth
    sender = event.sender
    if (
        last_create is not None
        and last_create.room_version.privileged_creators
        and _is_creator(last_create, sender)
    ):
        return CREATOR_POWER_LEVEL
    if levels is None:
        if first_create is not None:
            if event.room_version.implicit_room_creator:
                creator: object = first_create.sender
            else:
                creator = first_create.content.get("creator")
            if creator == sender:
                return 100
        return 0
    users = levels.content.get("users")
    level = users.get(sender) if isinstance(users, dict) else None
    if level is None:
        level = levels.content.get("users_default", 0)
        if level is None:
            return 0
    return _level(level)


def reverse_topological_power_order(
    index: EventIndex, power_events: Iterable[int], full_conflicted: Collection[int]
) -> list[int]:
    """The power events and their auth ancestors in the full conflicted set, sorted.

    Kahn's algorithm over the auth edges inside the full conflicted set, always taking
    the ready event with the highest sender power level, then the lowest
    ``origin_server_ts``, then the lowest event ID. Each sender level is computed once.
    """
    out_edges: dict[int, list[int]] = {}
    stack = list(power_events)
    for i in stack:
        out_edges[i] = []
    while stack:
        i = stack.pop()
        edges = [j for j in index.auth_of(i) if j in full_conflicted]
        out_edges[i] = edges
        for j in edges:
            if j not in out_edges:
                out_edges[j] = []
                stack.append(j)

    events = index.events
    ids = index.ids
    remaining: dict[int, int] = {}
    citers: dict[int, list[int]] = {i: [] for i in out_edges}
    ready: list[tuple[int, int, str, int]] = []
    for i, edges in out_edges.items():
        remaining[i] = len(edges)
        for j in edges:
            citers[j].append(i)
        if not edges:
            ready.append((-sender_power_level(index, i), events[i].origin_server_ts, ids[i], i))
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)[3]
        order.append(i)
        for c in citers[i]:
            remaining[c] -= 1
            if remaining[c] == 0:
                key = (-sender_power_level(index, c), events[c].origin_server_ts, ids[c], c)
                heapq.heappush(ready, key)
    return order


def _power_levels_parent(index: EventIndex, i: int) -> int | None:
    """The first ``m.room.power_levels`` event among event *i*'s auth events."""
    events = index.events
    for j in index.auth_of(i):
        auth = events[j]
        if auth.type == POWER_LEVELS and auth.state_key == "":
            return j
    return None


def mainline_order(
    index: EventIndex, event_ids: Iterable[int], power_levels: str | None
) -> list[int]:
    """``event_ids`` sorted by their position relative to the mainline of ``power_levels``.

    Positions are memoised per power levels event: the events of one resolution share a
    handful of power levels chains, so each chain is walked once.
    """
    todo = list(event_ids)
    if not todo:
        return []
    mainline: list[int] = []
    pl = index.add(power_levels) if power_levels is not None else None
    while pl is not None:
        mainline.append(pl)
        pl = _power_levels_parent(index, pl)
    depth_of: dict[int, int] = {i: d for d, i in enumerate(reversed(mainline), start=1)}

    def depth(i: int) -> int:
        path: list[int] = []
        cur: int | None = i
        found = 0
        while cur is not None:
            known = depth_of.get(cur)
            if known is not None:
                found = known
                break
            path.append(cur)
            cur = _power_levels_parent(index, cur)
        for p in path:
            depth_of[p] = found
        return found

    events = index.events
    ids = index.ids
    todo.sort(key=lambda i: (depth(i), events[i].origin_server_ts, ids[i]))
    return todo
