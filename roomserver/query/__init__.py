"""The query API: what other services ask the roomserver about rooms, events, state,
memberships, history visibility and aliases (see :class:`Query`)."""

from .aliases import Aliases
from .membership import RoomMembers, UserMembership
from .queries import MAX_WALK_LIMIT, Query
from .state import LatestEventsAndState, StateAfterEvents, StateAndAuthChain

__all__ = [
    "MAX_WALK_LIMIT",
    "Aliases",
    "LatestEventsAndState",
    "Query",
    "RoomMembers",
    "StateAfterEvents",
    "StateAndAuthChain",
    "UserMembership",
]
