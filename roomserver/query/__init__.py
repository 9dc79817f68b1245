"""The query API: what other services ask the roomserver about rooms, events and state."""

from .queries import LatestEventsAndState, Query, StateAfterEvents

__all__ = ["LatestEventsAndState", "Query", "StateAfterEvents"]
