"""Vocabulary shared by the state resolution algorithms.

State maps go in and come out as ``(type, state_key) -> event_id``; events are fetched by
ID from an :data:`EventSource` the caller fills (the storage layer loads them). Working
sets are small (the conflicted events and their auth chains), so they are indexed with
integers once (:class:`EventIndex`) and every later step works on lists of ints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..events import CREATE, JOIN_RULES, MEMBER, POWER_LEVELS, Event

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, str]
"""One state set: ``(event type, state key) -> event ID``."""

EventSource = Mapping[str, Event]
"""Events by ID; must hold every event of the auth chains of the state sets' events."""

IsRejected = Callable[[str], bool]

CREATE_KEY: StateKey = (CREATE, "")
POWER_LEVELS_KEY: StateKey = (POWER_LEVELS, "")
JOIN_RULES_KEY: StateKey = (JOIN_RULES, "")

CREATOR_POWER_LEVEL = 2**53
"""v12 creators sort above every power level canonical JSON can carry."""


class StateResolutionError(Exception):
    """The inputs cannot be resolved (a bug or a broken invariant of the caller)."""


class MissingEventsError(StateResolutionError, LookupError):
    """The event source lacks events the algorithm needs; load them and call again."""

    def __init__(self, event_ids: Iterable[str]) -> None:
        self.event_ids = frozenset(event_ids)
        shown = ", ".join(sorted(self.event_ids)[:5])
        more = "" if len(self.event_ids) <= 5 else f" (+{len(self.event_ids) - 5} more)"
        super().__init__(f"events missing from the event source: {shown}{more}")


@dataclass(frozen=True, slots=True)
class AuthDifference:
    """What an auth-chain index answers for a resolution.

    ``auth_difference``: events in some but not all of the state sets' auth chains (each
    chain including the state events themselves). ``conflicted_subgraph`` (v2.1 only):
    events on an ``auth_events`` path between two conflicted events, endpoints included.
    """

    auth_difference: frozenset[str]
    conflicted_subgraph: frozenset[str] = field(default_factory=frozenset)


class AuthDifferenceProvider(Protocol):
    """A seam for an auth-chain index (e.g. a persisted chain cover) in the storage layer.

    Called with the state sets, the conflicted event IDs (every event ID of a conflicted
    key) and whether the v2.1 conflicted subgraph is wanted. The storage layer is async and
    this layer is not: an async index computes the answer first and passes a closure that
    returns it (:func:`~roomserver.matrix.stateres.partition_state` tells it the conflicted
    events beforehand).
    """

    def __call__(
        self,
        state_sets: Sequence[StateMap],
        conflicted_events: frozenset[str],
        *,
        subgraph: bool,
    ) -> AuthDifference: ...


def auth_ids_of(event: Event) -> tuple[str, ...]:
    """The event's auth event IDs, with the create event implied in room v12.

    v12 events never cite the create event (the room ID names it), yet it belongs to
    every auth chain and every auth check; adding it here keeps the algorithms uniform.
    """
    ids = event.auth_event_ids
    if event.room_version.room_id_from_create_event and not (
        event.type == CREATE and event.state_key == ""
    ):
        return (*ids, "$" + event.room_id[1:])
    return ids


def is_power_event(event: Event) -> bool:
    """The spec's *power events*: they may take someone's ability to act away."""
    etype = event.type
    if etype in (POWER_LEVELS, JOIN_RULES, CREATE):
        return event.state_key == ""
    if etype == MEMBER:
        membership = event.content.get("membership")
        return (membership == "leave" or membership == "ban") and event.sender != event.state_key
    return False


def never_rejected(event_id: str) -> bool:
    """The default ``is_rejected``: the caller knows of no rejected event."""
    return False


def fetch(events: EventSource, event_id: str) -> Event:
    """``events[event_id]``, or :class:`MissingEventsError`."""
    event = events.get(event_id)
    if event is None:
        raise MissingEventsError((event_id,))
    return event


def fetch_all(events: EventSource, event_ids: Iterable[str]) -> list[Event]:
    """Every event of ``event_ids`` (in order), naming all missing ones at once if any."""
    ids = list(event_ids)
    try:
        return list(map(events.__getitem__, ids))
    except KeyError:
        raise MissingEventsError(e for e in ids if e not in events) from None


class EventIndex:
    """Events of one resolution numbered ``0..n-1``, each fetched once.

    ``auth[i]`` lists the indexes of event *i*'s auth events (v12: with the create
    event); it is filled on first use by :meth:`auth_of`, so events whose auth events are
    never looked at cost nothing more than their number.
    """

    __slots__ = ("auth", "events", "ids", "pos", "source")

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.ids: list[str] = []
        self.events: list[Event] = []
        self.pos: dict[str, int] = {}
        self.auth: list[list[int] | None] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, event_id: str) -> int:
        """The index of ``event_id``, fetching the event the first time."""
        i = self.pos.get(event_id)
        if i is None:
            event = fetch(self.source, event_id)
            i = len(self.ids)
            self.pos[event_id] = i
            self.ids.append(event_id)
            self.events.append(event)
            self.auth.append(None)
        return i

    def auth_of(self, i: int) -> list[int]:
        """Indexes of event *i*'s auth events (fetching them on first use)."""
        edges = self.auth[i]
        if edges is None:
            pos = self.pos
            edges = []
            missing: list[str] = []
            for aid in auth_ids_of(self.events[i]):
                j = pos.get(aid)
                if j is None:
                    if aid not in self.source:
                        missing.append(aid)
                        continue
                    j = self.add(aid)
                if j not in edges:  # a repeated auth event is one edge
                    edges.append(j)
            if missing:
                raise MissingEventsError(missing)
            self.auth[i] = edges
        return edges
