"""May a server see these events? History visibility for one asking server, in batches.

The rule itself is :func:`roomserver.matrix.visibility.server_may_see_event`; this module
feeds it, for each event, the room's ``history_visibility`` and the memberships of the
server's users in the state at the event, and whether a user of the server is joined now.

"The state at the event" is taken on both sides of the event: the state before it, and the
state after it (the same unless the event is itself a history visibility or member event).
The server may see the event if either side allows it. So a server sees its own user's join
(after: joined) and leave (before: joined), and a ``history_visibility`` change is visible
to whoever could see the room before or after it (the spec's rule for that event).

Events without known state (outliers) count as ``shared`` with no memberships: visible to a
server in the room. Rejected events are never visible: they are not part of the room.

Cost for a batch of events (a level of a walk): one query for their snapshots, one for the
blocks holding the visibility key, and only if the setting alone does not decide, one for
the blocks of the server's member keys; plus the JSON of those few events (cached across
requests by the event loader).
"""

from __future__ import annotations

from collections.abc import Sequence

from roomserver.matrix.events import Event
from roomserver.matrix.visibility import (
    SHARED,
    WORLD_READABLE,
    effective_visibility,
    server_may_see_event,
)
from roomserver.state import StateCache, StateSession
from roomserver.state.event_loader import EventLoader
from roomserver.storage.tables import EventInfo, Tables
from roomserver.types import EMPTY_STATE_KEY_NID, EventNID, EventTypeNIDs, Membership, StateKeyTuple

from .rooms import RoomRef
from .sql import server_members

_VISIBILITY_KEY = StateKeyTuple(EventTypeNIDs.HISTORY_VISIBILITY, EMPTY_STATE_KEY_NID)


def _on_server(user_id: str | None, server_name: str) -> bool:
    return (
        user_id is not None and user_id.startswith("@") and user_id.partition(":")[2] == server_name
    )


class ServerVisibility:
    """Decides which events of one room one server may see (see the module docstring)."""

    def __init__(
        self,
        tables: Tables,
        loader: EventLoader,
        room: RoomRef,
        server_name: str,
        *,
        member_keys: Sequence[StateKeyTuple],
        in_room_now: bool,
        cache: StateCache | None = None,
    ) -> None:
        self.tables = tables
        self.loader = loader
        self.room = room
        self.server_name = server_name
        self.member_keys = list(member_keys)
        self.in_room_now = in_room_now
        self.session = StateSession(tables, cache=cache)

    @classmethod
    async def for_server(
        cls,
        tables: Tables,
        loader: EventLoader,
        room: RoomRef,
        server_name: str,
        *,
        cache: StateCache | None = None,
    ) -> ServerVisibility:
        """Read once which of the room's members are on the server, and whether one of them
        is joined now."""
        members = await server_members(tables, room.room_nid, server_name)
        return cls(
            tables,
            loader,
            room,
            server_name,
            member_keys=[StateKeyTuple(EventTypeNIDs.MEMBER, m.state_key_nid) for m in members],
            in_room_now=any(m.membership is Membership.JOIN for m in members),
            cache=cache,
        )

    def _open(self, visibility: str) -> bool:
        """Visible whatever the memberships: world readable, or shared with a server in
        the room now."""
        return visibility == WORLD_READABLE or (visibility == SHARED and self.in_room_now)

    async def _load(self, nids: set[EventNID], have: dict[EventNID, Event]) -> None:
        missing = sorted(n for n in nids if n not in have)
        if missing:
            have.update(await self.loader.load(self.tables, self.room.version, missing))

    async def visible(self, infos: Sequence[EventInfo]) -> set[EventNID]:
        """The NIDs of the events among ``infos`` (all of this room) the server may see.

        Two steps, as most events are decided by the visibility setting alone: first the
        ``history_visibility`` key of every event's state; then, only for the events still
        undecided (``joined`` / ``invited``, or ``shared`` with the server not in the room),
        the member keys of the server's users.
        """
        live = [i for i in infos if not i.is_rejected and i.room_nid == self.room.room_nid]
        with_state = [i for i in live if i.state_snapshot_nid is not None]
        snapshots = await self.session.snapshots(i.state_snapshot_nid or 0 for i in with_state)
        found = await self.session.lookup_many(
            [(snapshots[i.state_snapshot_nid or 0], [_VISIBILITY_KEY]) for i in with_state]
        )
        vis_nid = {
            i.event_nid: s.get(_VISIBILITY_KEY) for i, s in zip(with_state, found, strict=True)
        }
        # The events that change one of the keys themselves: after them the state differs.
        changing = {
            i.event_nid
            for i in live
            if i.type_nid in (EventTypeNIDs.HISTORY_VISIBILITY, EventTypeNIDs.MEMBER)
            and i.state_key_nid is not None
        }
        events: dict[EventNID, Event] = {}
        await self._load({n for n in vis_nid.values() if n is not None} | changing, events)

        allowed: set[EventNID] = set()
        sides: dict[EventNID, tuple[str, str]] = {}  # visibility before, after
        for info in live:
            before = _visibility(events, vis_nid.get(info.event_nid))
            after = before
            if (
                info.type_nid == EventTypeNIDs.HISTORY_VISIBILITY
                and info.state_key_nid == EMPTY_STATE_KEY_NID
            ):
                after = effective_visibility(
                    events[info.event_nid].content.get("history_visibility")
                )
            if self._open(before) or self._open(after):
                allowed.add(info.event_nid)
            elif self.member_keys:  # else no membership can make it visible
                sides[info.event_nid] = (before, after)
        if not sides:
            return allowed

        undecided = [i for i in live if i.event_nid in sides]
        need_state = [i for i in undecided if i.state_snapshot_nid is not None]
        states = await self.session.lookup_many(
            [(snapshots[i.state_snapshot_nid or 0], self.member_keys) for i in need_state]
        )
        members = {i.event_nid: s for i, s in zip(need_state, states, strict=True)}
        await self._load({n for s in states for n in s.values()}, events)
        for info in undecided:
            before_vis, after_vis = sides[info.event_nid]
            held = _memberships(events, members.get(info.event_nid, {}), self.member_keys)
            if server_may_see_event(before_vis, held.values(), server_in_room_now=self.in_room_now):
                allowed.add(info.event_nid)
                continue
            held_after = held
            event = events.get(info.event_nid)
            if (
                event is not None
                and info.type_nid == EventTypeNIDs.MEMBER
                and _on_server(event.state_key, self.server_name)
            ):
                held_after = {**held, info.state_key_nid or 0: event.membership or "leave"}
            if (held_after is not held or after_vis != before_vis) and server_may_see_event(
                after_vis, held_after.values(), server_in_room_now=self.in_room_now
            ):
                allowed.add(info.event_nid)
        return allowed


def _visibility(events: dict[EventNID, Event], nid: EventNID | None) -> str:
    if nid is None or nid not in events:
        return effective_visibility(None)
    return effective_visibility(events[nid].content.get("history_visibility"))


def _memberships(
    events: dict[EventNID, Event],
    state: dict[StateKeyTuple, EventNID],
    member_keys: Sequence[StateKeyTuple],
) -> dict[int, str]:
    """State key NID -> membership, for the server's users present in ``state``."""
    out: dict[int, str] = {}
    for key in member_keys:
        nid = state.get(key)
        if nid is not None and nid in events:
            out[key.state_key_nid] = events[nid].membership or "leave"
    return out
