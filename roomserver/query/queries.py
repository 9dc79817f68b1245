"""The query service: what other services ask the roomserver, as one object.

Each method checks the identifiers it is given (400 ``M_INVALID_PARAM``), opens one read
connection and calls the module that does the work: :mod:`.state`, :mod:`.events`,
:mod:`.membership`, :mod:`.visibility` with :mod:`.walks`, and :class:`.aliases.Aliases`.
Unknown rooms and events are answered precisely: ``room_exists: false`` where the answer has
that field, else a 404 ``M_NOT_FOUND`` (:func:`roomserver.errors.not_found`).
"""

from __future__ import annotations

from collections.abc import Sequence

from roomserver.errors import bad_request, not_found
from roomserver.matrix.events import Event
from roomserver.state import StateCache, retry_stale
from roomserver.state.event_loader import EventLoader
from roomserver.storage import Storage
from roomserver.storage.tables import RoomInfo, Tables

from . import membership, state, validate, walks
from .aliases import Aliases
from .events import events_by_id
from .membership import RoomMembers, UserMembership
from .rooms import KnownRooms, RoomRef
from .state import LatestEventsAndState, StateAfterEvents, StateAndAuthChain
from .visibility import ServerVisibility

MAX_WALK_LIMIT = 10_000
"""The most events one backfill or missing-events answer holds."""


class Query:
    """The query API. Methods that read room state run again once if a shared-cache entry
    turned out stale (:func:`~roomserver.state.retry_stale`)."""

    def __init__(
        self,
        storage: Storage,
        loader: EventLoader | None = None,
        *,
        server_name: str = "",
        state_cache: StateCache | None = None,
    ) -> None:
        self.storage = storage
        self.loader = loader if loader is not None else EventLoader()
        self.state_cache = state_cache if state_cache is not None else StateCache()
        """Committed state snapshots and blocks; share the input's so that a query reads
        what the last input wrote without a statement."""
        self.server_name = server_name
        """This homeserver: a backfill it asks for itself is not filtered by visibility."""
        self.rooms = KnownRooms()
        self.aliases = Aliases(storage)

    # -- state --

    @retry_stale
    async def state_after_events(
        self,
        room_id: str,
        prev_event_ids: Sequence[str],
        state_to_fetch: Sequence[tuple[str, str]] | None = None,
    ) -> StateAfterEvents:
        """The state after ``prev_event_ids`` (the state a new event citing them would see),
        resolved when they disagree; only ``state_to_fetch`` pairs if given."""
        validate.room_id(room_id)
        ids = validate.event_ids(prev_event_ids, "prev_event_ids")
        tuples = validate.state_tuples(state_to_fetch)
        async with self.storage.read() as r:
            return await state.state_after_events(
                r, self.loader, self.rooms, room_id, ids, tuples, cache=self.state_cache
            )

    @retry_stale
    async def latest_events_and_state(
        self, room_id: str, state_to_fetch: Sequence[tuple[str, str]] | None = None
    ) -> LatestEventsAndState:
        validate.room_id(room_id)
        tuples = validate.state_tuples(state_to_fetch)
        async with self.storage.read() as r:
            return await state.latest_events_and_state(
                r, self.loader, room_id, tuples, cache=self.state_cache
            )

    @retry_stale
    async def state_and_auth_chain(
        self, room_id: str, prev_event_ids: Sequence[str], auth_event_ids: Sequence[str]
    ) -> StateAndAuthChain:
        validate.room_id(room_id)
        prevs = validate.event_ids(prev_event_ids, "prev_event_ids")
        auths = validate.event_ids(auth_event_ids, "auth_event_ids")
        async with self.storage.read() as r:
            return await state.state_and_auth_chain(
                r, self.loader, self.rooms, room_id, prevs, auths, cache=self.state_cache
            )

    # -- events --

    async def events_by_id(self, event_ids: Sequence[str]) -> list[Event]:
        """The stored events among ``event_ids`` (unknown ones are left out), in order."""
        ids = validate.event_ids(event_ids, "event_ids")
        if not ids:
            return []
        async with self.storage.read() as r:
            return await events_by_id(r, self.loader, self.rooms, ids)

    async def room_version_for_room(self, room_id: str) -> str | None:
        validate.room_id(room_id)
        async with self.storage.read() as r:
            room = await r.rooms.get(room_id)
            return None if room is None else room.room_version

    # -- membership --

    async def membership_for_user(self, room_id: str, user_id: str) -> UserMembership:
        validate.room_id(room_id)
        validate.user_id(user_id)
        async with self.storage.read() as r:
            room = await _known_room(r, room_id)
            return await membership.membership_for_user(r, room, user_id)

    @retry_stale
    async def memberships_for_room(
        self, room_id: str, sender: str, *, joined_only: bool
    ) -> RoomMembers:
        validate.room_id(room_id)
        validate.user_id(sender, "sender")
        async with self.storage.read() as r:
            room = await _known_room(r, room_id)
            return await membership.memberships_for_room(
                r, self.loader, room, sender, joined_only=joined_only, cache=self.state_cache
            )

    async def invites_for_user(self, room_id: str, user_id: str) -> list[str]:
        validate.room_id(room_id)
        validate.user_id(user_id, "target_user_id")
        async with self.storage.read() as r:
            room = await _known_room(r, room_id)
            return await membership.invite_senders(r, room, user_id)

    # -- other servers --

    @retry_stale
    async def server_allowed_to_see_event(self, event_id: str, server_name: str) -> bool:
        validate.event_ids([event_id], "event_id")
        validate.server_name(server_name)
        async with self.storage.read() as r:
            info = (await r.events.lookup([event_id])).get(event_id)
            if info is None:
                raise not_found(f"event {event_id} is not known")
            room = (await self.rooms.by_nids(r, [info.room_nid]))[info.room_nid]
            visibility = await ServerVisibility.for_server(
                r, self.loader, room, server_name, cache=self.state_cache
            )
            return info.event_nid in await visibility.visible([info])

    @retry_stale
    async def missing_events(
        self,
        earliest_event_ids: Sequence[str],
        latest_event_ids: Sequence[str],
        limit: int,
        server_name: str,
        *,
        room_id: str | None = None,
        min_depth: int = 0,
    ) -> list[Event]:
        """``/get_missing_events`` for ``server_name``: see :func:`.walks.missing_events`.

        The room is the one of ``latest_event_ids`` (or ``room_id``, if given: latest events
        of other rooms then count as unknown). 404 if none of them is known.
        """
        earliest = validate.event_ids(earliest_event_ids, "earliest_events")
        latest_ids = validate.event_ids(latest_event_ids, "latest_events")
        validate.server_name(server_name)
        if room_id is not None:
            validate.room_id(room_id)
        limit = _limit(limit)
        async with self.storage.read() as r:
            infos = await r.events.lookup(latest_ids)
            if room_id is not None:
                given = await self.rooms.get(r, room_id)
                if given is None:
                    raise not_found(f"room {room_id} is not known")
                infos = {k: i for k, i in infos.items() if i.room_nid == given.room_nid}
            if not infos:
                raise not_found("none of latest_events is known")
            room_nids = {i.room_nid for i in infos.values()}
            if len(room_nids) > 1:
                raise bad_request("latest_events belong to several rooms")
            room_nid = room_nids.pop()
            room = (await self.rooms.by_nids(r, [room_nid]))[room_nid]
            latest = [infos[e] for e in dict.fromkeys(latest_ids) if e in infos]
            may_see = await self._filter(r, room, server_name)
            return await walks.missing_events(
                r,
                self.loader,
                room,
                latest,
                earliest,
                limit=limit,
                may_see=may_see,
                min_depth=min_depth,
            )

    @retry_stale
    async def backfill(
        self, room_id: str, earliest_event_ids: Sequence[str], limit: int, server_name: str
    ) -> list[Event]:
        """``/backfill`` for ``server_name``: see :func:`.walks.backfill`. 404 if the room or
        every one of ``earliest_event_ids`` is unknown."""
        validate.room_id(room_id)
        earliest = validate.event_ids(earliest_event_ids, "earliest_event_ids")
        validate.server_name(server_name)
        limit = _limit(limit)
        async with self.storage.read() as r:
            room = await self.rooms.get(r, room_id)
            if room is None:
                raise not_found(f"room {room_id} is not known")
            known = await r.events.lookup(earliest)
            if not any(i.room_nid == room.room_nid for i in known.values()):
                raise not_found("none of earliest_event_ids is known in the room")
            may_see = await self._filter(r, room, server_name)
            return await walks.backfill(
                r,
                self.loader,
                room,
                earliest,
                limit=limit,
                may_see=may_see,
            )

    async def _filter(self, r: Tables, room: RoomRef, server_name: str) -> walks.Filter | None:
        if server_name == self.server_name:
            return None
        visibility = await ServerVisibility.for_server(
            r, self.loader, room, server_name, cache=self.state_cache
        )
        return visibility.visible


async def _known_room(tables: Tables, room_id: str) -> RoomInfo:
    """The room row, stubs included (a room known from an invite has memberships too)."""
    room = await tables.rooms.get(room_id)
    if room is None:
        raise not_found(f"room {room_id} is not known")
    return room


def _limit(limit: int) -> int:
    if limit < 0:
        raise bad_request("limit must not be negative")
    return min(limit, MAX_WALK_LIMIT)
