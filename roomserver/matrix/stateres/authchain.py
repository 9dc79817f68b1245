"""Auth difference and conflicted state subgraph, computed from the events themselves.

The auth difference is ``union(C_i) - intersection(C_i)`` where ``C_i`` is the auth
chain of state set *i* (its events included). Walking every ``C_i`` of a 20,000-member
room costs 20,000 events per set, so the work is split:

- every state set holds the unconflicted events ``U``, so the auth closure ``CU`` of
  ``U`` is in every ``C_i`` and never in the difference. Membership in ``CU`` is all
  that is needed: ``U`` itself is answered by the unconflicted state map, and the auth
  events ``U`` cites are gathered in one C-level pass (no Python loop per event);
- only the auth chains of the conflicted events are walked one event at a time, with one
  shared visited set, stopping at events of ``CU``. Each event reached gets a bit mask of
  the state sets whose conflicted events reach it; those without every bit are the
  difference.

The per-event Python work is thus proportional to the conflicted events' own history,
not to the room. A persisted auth-chain index can replace all of this
(:class:`~roomserver.matrix.stateres.base.AuthDifferenceProvider`).
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from itertools import chain
from operator import attrgetter

from .base import (
    AuthDifference,
    EventIndex,
    EventSource,
    MissingEventsError,
    StateKey,
    StateMap,
)
from .partition import partition_state

_auth_ids = attrgetter("auth_event_ids")


class UnconflictedClosure:
    """Membership in ``CU``, the auth closure of the unconflicted events (them included).

    The unconflicted events themselves are not copied into a set: an event is one of
    them exactly when the unconflicted state maps its key to it. Their auth events are
    gathered in one C-level pass, in the state map's own order (iterating 20,000 events
    in hash order instead costs four times as much in cache misses); only the few cited
    events that are not themselves unconflicted are walked further.
    """

    __slots__ = ("_deeper", "_events", "_unconflicted")

    def __init__(self, unconflicted: Mapping[StateKey, str], events: EventSource) -> None:
        self._unconflicted = unconflicted
        self._events = events
        deeper: set[str] = set()
        frontier: Iterable[str] = unconflicted.values()
        getitem = events.__getitem__
        while True:
            try:
                cited = set(chain.from_iterable(map(_auth_ids, map(getitem, frontier))))
            except KeyError:
                raise MissingEventsError(e for e in frontier if e not in events) from None
            fresh = [e for e in cited if e not in deeper and not self._is_unconflicted(e)]
            if not fresh:
                break
            deeper.update(fresh)
            frontier = fresh
        if unconflicted:
            # Room v12: every non-create event implies the create event.
            sample = events[next(iter(unconflicted.values()))]
            if sample.room_version.room_id_from_create_event:
                deeper.add("$" + sample.room_id[1:])
        self._deeper = deeper

    def _is_unconflicted(self, event_id: str) -> bool:
        event = self._events.get(event_id)
        if event is None or event.state_key is None:
            return False
        return self._unconflicted.get((event.type, event.state_key)) == event_id

    def __contains__(self, event_id: object) -> bool:
        if not isinstance(event_id, str):
            return False
        return event_id in self._deeper or self._is_unconflicted(event_id)


def walk_conflicted(
    index: EventIndex, conflicted_events: Iterable[str], stop: Container[str] | None
) -> list[int]:
    """Index the auth closure of the conflicted events; return the indexes of their events.

    Events in ``stop`` are indexed but not expanded (their whole closure is known to be
    in every auth chain); with ``stop=None`` the whole closure is walked (v2.1 needs it
    for the conflicted subgraph).
    """
    starts = [index.add(e) for e in conflicted_events]
    seen = set(starts)
    stack = list(starts)
    ids = index.ids
    auth_of = index.auth_of
    while stack:
        i = stack.pop()
        if stop is not None and ids[i] in stop:
            continue
        for j in auth_of(i):
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return starts


def difference_masks(
    index: EventIndex,
    state_sets: Sequence[StateMap],
    conflicted_keys: Iterable[StateKey],
    common: Container[str],
) -> frozenset[str]:
    """The auth difference among the indexed events not in ``common`` (= ``CU``).

    Every indexed event outside ``common`` was reached from a conflicted event without
    passing through ``common``, so its membership in each ``C_i`` is decided by the
    conflicted events alone: propagate set bits down the auth edges until nothing changes.
    """
    n = len(index)
    ids = index.ids
    inside = [eid not in common for eid in ids]
    masks = [0] * n
    stack: list[int] = []
    pos = index.pos
    for bit, state in enumerate(state_sets):
        flag = 1 << bit
        for key in conflicted_keys:
            eid = state.get(key)
            if eid is not None:
                i = pos[eid]
                if inside[i] and not masks[i] & flag:
                    masks[i] |= flag
                    stack.append(i)
    auth = index.auth
    while stack:
        i = stack.pop()
        m = masks[i]
        edges = auth[i]
        if edges is None:
            continue
        for j in edges:
            if inside[j] and masks[j] | m != masks[j]:
                masks[j] |= m
                stack.append(j)
    everyone = (1 << len(state_sets)) - 1
    return frozenset(ids[i] for i in range(n) if inside[i] and masks[i] != everyone)


def conflicted_subgraph(index: EventIndex, starts: Collection[int]) -> frozenset[str]:
    """Events on an ``auth_events`` path between two conflicted events (endpoints included).

    All indexed events are in the auth closure of the conflicted events (the walk was
    complete); of those, keep the ones from which a conflicted event can be reached:
    follow the auth edges backwards from the conflicted events.
    """
    n = len(index)
    citers: list[list[int]] = [[] for _ in range(n)]
    for i, edges in enumerate(index.auth):
        if edges is not None:
            for j in edges:
                citers[j].append(i)
    reached = bytearray(n)
    stack = list(starts)
    for i in stack:
        reached[i] = 1
    while stack:
        i = stack.pop()
        for c in citers[i]:
            if not reached[c]:
                reached[c] = 1
                stack.append(c)
    ids = index.ids
    return frozenset(ids[i] for i in range(n) if reached[i])


def compute_auth_difference(
    index: EventIndex,
    state_sets: Sequence[StateMap],
    unconflicted: Mapping[StateKey, str],
    conflicted: Mapping[StateKey, Collection[str]],
    *,
    subgraph: bool,
) -> AuthDifference:
    """Both answers for one resolution, indexing the events it touches in ``index``."""
    common = UnconflictedClosure(unconflicted, index.source)
    conflicted_events = set(chain.from_iterable(conflicted.values()))
    starts = walk_conflicted(index, conflicted_events, None if subgraph else common)
    diff = difference_masks(index, state_sets, conflicted.keys(), common)
    sub = conflicted_subgraph(index, starts) if subgraph else frozenset()
    return AuthDifference(diff, sub)


def auth_difference_from_events(
    state_sets: Sequence[StateMap], events: EventSource, *, subgraph: bool = False
) -> AuthDifference:
    """The in-memory answer, standalone (tests, or a storage layer without an index)."""
    unconflicted, conflicted = partition_state(state_sets)
    return compute_auth_difference(
        EventIndex(events), state_sets, unconflicted, conflicted, subgraph=subgraph
    )


__all__ = [
    "UnconflictedClosure",
    "auth_difference_from_events",
    "compute_auth_difference",
    "conflicted_subgraph",
    "difference_masks",
    "walk_conflicted",
]
