"""State resolution: the room state after a fork, for room versions 1-12.

:func:`resolve_state` is the entry point. It is pure and synchronous: the caller (the
storage layer) hands it the state sets as ``(type, state_key) -> event_id`` maps and an
:data:`EventSource` holding their events and auth chains, and gets the resolved state
map back. The answer does not depend on the order of the state sets.

- v1 (room 1): :mod:`.v1`;
- v2 (rooms 2-11) and v2.1 (room 12, MSC4297): :mod:`.v2`;
- auth difference and conflicted subgraph from the events: :mod:`.authchain`, replaceable
  by a persisted index through ``auth_difference`` (:class:`AuthDifferenceProvider`).

See ``docs/stateres.md`` for the design and its measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..room_versions import RoomVersion, StateResAlgorithm, room_version
from .authchain import auth_difference_from_events
from .base import (
    AuthDifference,
    AuthDifferenceProvider,
    EventSource,
    IsRejected,
    MissingEventsError,
    StateKey,
    StateMap,
    StateResolutionError,
    never_rejected,
)
from .partition import partition_state
from .v1 import resolve_v1
from .v2 import resolve_v2

__all__ = [
    "AuthDifference",
    "AuthDifferenceProvider",
    "EventSource",
    "IsRejected",
    "MissingEventsError",
    "StateKey",
    "StateMap",
    "StateResolutionError",
    "auth_difference_from_events",
    "partition_state",
    "resolve_state",
]


def resolve_state(
    version: RoomVersion | str,
    state_sets: Sequence[StateMap],
    events: EventSource,
    *,
    auth_difference: AuthDifferenceProvider | None = None,
    is_rejected: IsRejected | None = None,
) -> dict[StateKey, str]:
    """The resolution of ``state_sets`` by the algorithm of room ``version``.

    ``events`` must hold every event the algorithm looks at: for v1 the conflicted
    events and the unconflicted auth events they need; for v2/v2.1 every event of the
    auth chains of the state sets' events (with ``auth_difference``, only the full
    conflicted set, the auth events of its events, the power levels chain and the
    unconflicted state the replay consults). A missing event raises
    :class:`MissingEventsError` naming it.

    ``auth_difference`` replaces the computation of the auth difference (and of the
    conflicted subgraph in v2.1) from the events, e.g. by a chain cover index.
    ``is_rejected`` names events the caller rejected: v2/v2.1 never admit them into the
    state nor use them to authorise others (as Synapse does). v1 ignores both.
    """
    if isinstance(version, str):
        version = room_version(version)
    if not state_sets:
        return {}
    if version.state_res is StateResAlgorithm.V1:
        return resolve_v1(state_sets, events)
    return resolve_v2(
        version,
        state_sets,
        events,
        auth_difference=auth_difference,
        is_rejected=is_rejected if is_rejected is not None else never_rejected,
    )
