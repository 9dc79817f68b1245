"""State resolution v2 (room versions 2-11) and v2.1 (room version 12, MSC4297).

v2.1 differs in two places, both switched on ``version.state_res``: the full conflicted
set also holds the *conflicted state subgraph* (events on auth paths between conflicted
events), and the first iterative auth checks start from an empty state instead of the
unconflicted state, so a bogus unconflicted entry cannot authorise the replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from ..room_versions import RoomVersion, StateResAlgorithm
from .authchain import compute_auth_difference
from .base import (
    POWER_LEVELS_KEY,
    AuthDifferenceProvider,
    EventIndex,
    EventSource,
    IsRejected,
    StateKey,
    StateMap,
    StateResolutionError,
    is_power_event,
)
from .iterative import iterative_auth_checks
from .ordering import mainline_order, reverse_topological_power_order
from .partition import partition_state


def resolve_v2(
    version: RoomVersion,
    state_sets: Sequence[StateMap],
    events: EventSource,
    *,
    auth_difference: AuthDifferenceProvider | None,
    is_rejected: IsRejected,
) -> dict[StateKey, str]:
    """The spec's algorithm, steps 1-5, over integer indexes of the events it touches."""
    v21 = version.state_res is StateResAlgorithm.V2_1
    unconflicted, conflicted = partition_state(state_sets)
    if not conflicted:
        return unconflicted

    index = EventIndex(events)
    if auth_difference is None:
        diff = compute_auth_difference(index, state_sets, unconflicted, conflicted, subgraph=v21)
    else:
        conflicted_events = frozenset(chain.from_iterable(conflicted.values()))
        diff = auth_difference(state_sets, conflicted_events, subgraph=v21)
    full_ids = set(chain.from_iterable(conflicted.values()))
    full_ids |= diff.auth_difference
    if v21:
        full_ids |= diff.conflicted_subgraph
    full = {index.add(e) for e in full_ids}

    _check_one_room(index, unconflicted)

    # 1-2: power events (and their auth ancestors in the full conflicted set), replayed.
    power = [i for i in full if is_power_event(index.events[i])]
    power_order = reverse_topological_power_order(index, power, full)
    base: dict[StateKey, str] = {} if v21 else unconflicted
    overlay: dict[StateKey, str] = {}
    iterative_auth_checks(index, power_order, base, overlay, is_rejected)

    # 3-4: everything else, in mainline order of the power levels resolved so far.
    done = set(power_order)
    rest = [i for i in full if i not in done]
    power_levels = overlay.get(POWER_LEVELS_KEY) or base.get(POWER_LEVELS_KEY)
    iterative_auth_checks(
        index, mainline_order(index, rest, power_levels), base, overlay, is_rejected
    )

    # 5: the unconflicted state always wins.
    resolved = unconflicted  # a fresh dict from partition_state, ours to fill
    for key, event_id in overlay.items():
        if key not in resolved:
            resolved[key] = event_id
    return resolved


def _check_one_room(index: EventIndex, unconflicted: dict[StateKey, str]) -> None:
    """Every event looked at so far belongs to the room of the state sets."""
    events = index.events
    sample_id = next(iter(unconflicted.values()), None)
    sample = index.source.get(sample_id) if sample_id is not None else None
    room_id = (sample if sample is not None else events[0]).room_id
    for i, event in enumerate(events):
        if event.room_id != room_id:
            raise StateResolutionError(
                f"event {index.ids[i]} is in room {event.room_id}, not {room_id}"
            )
