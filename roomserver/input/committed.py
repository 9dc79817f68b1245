"""Room and event rows this process saw committed: the input pipeline's read without a
statement (:class:`CommittedRows`).

A one-event request reads its room's row and a handful of events (the prev event, the
create, power levels, join rules and sender's member events) that the previous requests of
the room wrote or read moments ago. When every row a request needs is here, the optimistic
way in (docs/input.md) decides from them and goes straight to the write.

Why a stale row never does harm: the input pipeline changes an event row once stored only
to give an outlier its state (and NIDs are never reused), so a cached row of an event with
a state is right forever. Outliers are not kept here: another process may have given one
its state since, and a request naming an outlier reads it from the database. A room row
changes with every event another process (or a request the cache did not see) stores in the
room; the write compares the room row it was decided on with the stored one under the row
lock, and a difference makes the request start again the locked way, after
:meth:`CommittedRows.forget_rooms`. The request's new events are never looked up here: if
another process stored one meanwhile, the write finds it and refuses, the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from roomserver.lru import LRU
from roomserver.storage.tables import EventInfo, Prepared, RoomInfo, RoomUpdate


class CommittedRows:
    def __init__(self, *, max_rooms: int = 10_000, max_events: int = 100_000) -> None:
        self._rooms: LRU[str, RoomInfo] = LRU(max_rooms)
        self._events: LRU[str, EventInfo] = LRU(max_events)

    def read(
        self, room_ids: Iterable[str], wanted_ids: Iterable[str], new_ids: Sequence[str]
    ) -> Prepared | None:
        """What ``InputIO.prepare(lock_rooms=False)`` would read, if every room and every
        wanted event other than the new ones is here; else None. New events not here are
        taken as not stored, and none as cited by stored events: the write checks both."""
        rooms: dict[str, RoomInfo] = {}
        for room_id in room_ids:
            room = self._rooms.get(room_id)
            if room is None:
                return None
            rooms[room_id] = room
        new = set(new_ids)
        known: dict[str, EventInfo] = {}
        for event_id in wanted_ids:
            info = self._events.get(event_id)
            if info is not None:
                known[event_id] = info
            elif event_id not in new:
                return None
        return Prepared(rooms, known, set())

    def add(
        self,
        rooms: Mapping[str, RoomInfo],
        updates: Iterable[RoomUpdate],
        events: Iterable[EventInfo],
    ) -> None:
        """After a commit: the rooms as read (``rooms``) and as written (``updates``), and
        the events read or stored."""
        for room in rooms.values():
            self._rooms.put(room.room_id, room)
        for u in updates:
            self._rooms.put(u.read.room_id, u.written())
        for info in events:
            if not info.is_outlier:  # another process may give an outlier its state
                self._events.put(info.event_id, info)

    def forget_rooms(self, room_ids: Iterable[str]) -> None:
        """Drop rooms whose rows were found changed."""
        for room_id in room_ids:
            self._rooms.pop(room_id)
