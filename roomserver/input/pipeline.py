"""The input API: events in, per-event outcomes out, serialised per room.

A request is all or nothing: its events are grouped by room (order kept within a room) and
every group is processed in ONE transaction, one :class:`~roomserver.input.room_batch.RoomBatch`
per room, under each room's asyncio lock (this process) and row lock (every process on the
database), both taken in a fixed order so overlapping requests never deadlock. The
transaction reads in one step and writes in one step (``tx.input``; docs/input.md). A
refusal of any event (missing events, unknown room) rolls the whole request back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import orjson

from roomserver.errors import bad_request, not_found
from roomserver.input.locks import RoomLocks
from roomserver.input.room_batch import RoomBatch, implied_auth_ids
from roomserver.input.types import EventResult, InputEvent, InviteInput, Outcome
from roomserver.matrix.auth import auth_types_for_event
from roomserver.matrix.events import CREATE, MEMBER, Event
from roomserver.matrix.room_versions import RoomVersion
from roomserver.output import payloads
from roomserver.state import Resolver, StateCache, StateSession, retry_stale
from roomserver.state.event_loader import EventLoader
from roomserver.storage import InviteInfo, Storage, Tables
from roomserver.storage.tables import InputWrite, Prepared
from roomserver.types import EventNID, Membership

log = logging.getLogger(__name__)


class Input:
    def __init__(
        self,
        storage: Storage,
        *,
        resolver: Resolver | None = None,
        on_output: Callable[[int], None] | None = None,
        loader: EventLoader | None = None,
        state_cache: StateCache | None = None,
    ) -> None:
        self.storage = storage
        self.resolver = resolver
        self.on_output = on_output
        """Called with the newest output position after a commit (wakes long-polls)."""
        self.loader = loader if loader is not None else EventLoader()
        self.state_cache = state_cache if state_cache is not None else StateCache()
        """Committed snapshots and blocks: the room's current state costs no query."""
        self.locks = RoomLocks()

    @retry_stale
    async def input_room_events(self, items: Sequence[InputEvent]) -> list[EventResult]:
        """Process ``items``; one result per item, in order."""
        if not items:
            return []
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.event.room_id, []).append(index)
        versions = {r: _room_version(r, [items[i] for i in ix]) for r, ix in groups.items()}
        type_nids, state_key_nids = await self._assign_nids(items)
        results: list[EventResult | None] = [None] * len(items)
        positions: list[int] = []
        made: dict[EventNID, Event] = {}
        async with self.locks.hold_many(groups), self.storage.transaction() as tx:
            prepared = await self._prepare(tx, groups, items, versions)
            session = StateSession(tx, cache=self.state_cache)
            nids = iter(prepared.nids)
            write = InputWrite()
            await session.check(  # the current states that state events build on
                nid
                for item in items
                if item.event.state_key is not None
                and (nid := prepared.rooms[item.event.room_id].state_snapshot_nid)
            )
            batches: list[RoomBatch] = []
            for room in sorted(prepared.rooms.values(), key=lambda r: r.room_nid):
                indexes = groups[room.room_id]
                batch = RoomBatch(
                    tx,
                    room,
                    versions[room.room_id],
                    type_nids=type_nids,
                    state_key_nids=state_key_nids,
                    resolver=self.resolver,
                    loader=self.loader,
                    session=session,
                    prepared=prepared,
                    nids=nids,
                )
                outcome = await batch.run([items[i] for i in indexes])
                for i, result in zip(indexes, outcome, strict=True):
                    results[i] = result
                batches.append(batch)
            await session.flush(s for batch in batches for s in batch.snapshots())
            for batch in batches:
                await batch.finish(write)
                made.update((nid, r.event) for nid, r in batch.by_nid.items())
            positions = await tx.input.write(write)
        # Committed: share what later requests' auth, state and output will read. (Nothing
        # of a rolled-back request was shared: its rows were all written in its last step.)
        self.loader.add(made)
        session.publish()
        if positions and self.on_output is not None:
            self.on_output(max(positions))
        return [r for r in results if r is not None]

    async def _assign_nids(
        self, items: Sequence[InputEvent]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """NIDs of every type and state key the batch stores or its auth rules look up;
        assigned (and committed) before the transaction, cached after."""
        types: set[str] = {MEMBER, CREATE}
        keys: set[str] = set()
        for item in items:
            ev = item.event
            types.add(ev.type)
            keys.add(ev.sender)
            if ev.state_key is not None:
                keys.add(ev.state_key)
            for auth_type, auth_key in auth_types_for_event(ev):
                types.add(auth_type)
                keys.add(auth_key)
        type_nids = await self.storage.assign_event_type_nids(sorted(types))
        state_key_nids = await self.storage.assign_state_key_nids(sorted(keys))
        return type_nids, state_key_nids

    async def _prepare(
        self,
        tx: Tables,
        groups: dict[str, list[int]],
        items: Sequence[InputEvent],
        versions: dict[str, RoomVersion],
    ) -> Prepared:
        """The request's rooms, row-locked, and the stored events it names. A room is
        created when the request brings its create event, refused (404) when unknown
        otherwise."""
        wanted: set[str] = set()
        for item in items:
            ev = item.event
            wanted.add(ev.event_id)
            wanted.update(ev.auth_event_ids, ev.prev_event_ids, item.state_event_ids or ())
            wanted.update(implied_auth_ids(ev.room_version, ev))
        new_ids = list(dict.fromkeys(item.event.event_id for item in items))
        prepared = await tx.input.prepare(list(groups), sorted(wanted), new_ids)
        created = False
        for room_id, indexes in groups.items():
            version = versions[room_id]
            room = prepared.rooms.get(room_id)
            if room is None:
                if not any(
                    items[i].event.type == CREATE and items[i].event.state_key == ""
                    for i in indexes
                ):
                    raise not_found(
                        f"room {room_id} is not known to the roomserver"
                        " (send its create event first)"
                    )
                made = await tx.rooms.get_or_create(room_id, version.identifier)
                prepared.rooms[room_id] = await tx.rooms.lock(made.room_nid)
                created = True
            elif room.room_version != version.identifier:
                raise bad_request(
                    f"room {room_id} has room version {room.room_version},"
                    f" not {version.identifier}",
                    "M_BAD_JSON",
                )
        if created:  # read again under the new room's lock: another process may have won
            prepared.known = await tx.events.lookup(sorted(wanted))
            prepared.late = await tx.previous_events.referenced_ids(new_ids)
        return prepared

    async def input_invites(self, invites: Sequence[InviteInput]) -> list[EventResult]:
        """Invites for local users to rooms this server may not be in (over federation).

        Stored in the invites table and announced on the output stream, unless the user is
        already joined (the invite then lost a race with the join and is dropped).
        """
        for invite in invites:  # refuse a bad request before storing any of it
            ev = invite.event
            if ev.type != MEMBER or ev.state_key is None or ev.membership != "invite":
                raise bad_request(
                    f"{ev.event_id} is not an invite (m.room.member, membership invite)"
                )
        results: list[EventResult] = []
        for invite in invites:
            ev = invite.event
            assert ev.state_key is not None
            nids = await self.storage.assign_state_key_nids([ev.state_key, ev.sender])
            async with self.locks.hold(ev.room_id), self.storage.transaction() as tx:
                room = await tx.rooms.get_or_create(ev.room_id, ev.room_version.identifier)
                room = await tx.rooms.lock(room.room_nid)
                joined = await tx.memberships.get(room.room_nid, [nids[ev.state_key]])
                current = joined.get(nids[ev.state_key])
                if current is not None and current.membership is Membership.JOIN:
                    results.append(EventResult(ev.event_id, Outcome.REJECTED, "already joined"))
                    continue
                headered = ev.headered()
                if invite.invite_room_state:
                    unsigned = dict(headered.get("unsigned") or {})
                    unsigned["invite_room_state"] = list(invite.invite_room_state)
                    headered["unsigned"] = unsigned
                new = await tx.invites.insert(
                    [
                        InviteInfo(
                            ev.event_id,
                            room.room_nid,
                            nids[ev.state_key],
                            nids[ev.sender],
                            orjson.dumps(headered),
                        )
                    ]
                )
                if not new:
                    results.append(EventResult(ev.event_id, Outcome.ALREADY_KNOWN))
                    continue
                positions = await tx.output.append(
                    [payloads.new_invite_event(headered, ev.room_version.identifier)]
                )
            if self.on_output is not None:
                self.on_output(positions[-1])
            results.append(EventResult(ev.event_id, Outcome.ACCEPTED))
        return results


def _room_version(room_id: str, items: Sequence[InputEvent]) -> RoomVersion:
    version = items[0].event.room_version
    if any(item.event.room_version is not version for item in items):
        raise bad_request(f"events of room {room_id} disagree on its room version", "M_BAD_JSON")
    return version
