"""The input API: events in, per-event outcomes out, serialised per room.

A request is all or nothing: its events are grouped by room (order kept within a room) and
decided by one :class:`~roomserver.input.room_batch.RoomBatch` per room, under each room's
asyncio lock (this process), from one read, then stored by one write (``tx.input``). There
are two ways in (docs/input.md):

* **Locked**: in one transaction, the read locks the rooms' rows (every process on the
  database waits for them), and the write commits with whatever else the batches store
  (state snapshots, invites). Always right; four round trips on PostgreSQL, more for states.
* **Optimistic** (PostgreSQL, rooms already stored): no transaction. The read comes from the
  rows this process saw committed (:class:`CommittedRows`), or one statement without locks
  when some are missing; the write is one statement that checks, under the room locks, that
  nothing the decisions rest on changed, and stores the new states (deltas over stored bases,
  under reserved NIDs) itself. If something did change, or the batches need to store more
  than that write covers (a new state base, invites), nothing was written and the request
  goes the locked way.

A refusal of any event (missing events, unknown room) leaves nothing written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from roomserver.errors import ServiceError, bad_request, not_found
from roomserver.input.committed import CommittedRows
from roomserver.input.locks import RoomLocks
from roomserver.input.room_batch import RoomBatch, implied_auth_ids
from roomserver.input.types import EventResult, InputEvent, InviteInput, Outcome
from roomserver.matrix.auth import auth_types_for_event
from roomserver.matrix.events import CREATE, MEMBER, Event
from roomserver.matrix.room_versions import RoomVersion
from roomserver.output import payloads
from roomserver.state import (
    DEFAULT_PACKING,
    NewBaseRefused,
    Resolver,
    StateCache,
    StateSession,
    retry_stale,
)
from roomserver.state.event_loader import EventLoader
from roomserver.storage import Backend, InviteInfo, Storage, Tables
from roomserver.storage.tables import EventInfo, InputConflict, InputWrite, Prepared
from roomserver.types import EventNID, Membership, StateSnapshotNID

log = logging.getLogger(__name__)

LOCKED_ATTEMPTS = 3
"""Locked attempts before a request whose write keeps conflicting is refused (each one
conflicts only if another writer stored the same event or client transaction meanwhile)."""


class _NeedsLock(Exception):
    """The optimistic way cannot take this request; nothing was written."""


@dataclass(slots=True)
class _Request:
    """One request's events, grouped by room, with what every attempt at it shares."""

    items: Sequence[InputEvent]
    groups: dict[str, list[int]]
    versions: dict[str, RoomVersion]
    type_nids: dict[str, int]
    state_key_nids: dict[str, int]
    nids: list[EventNID]
    """Reserved for the request's events, one per distinct event ID (used or not)."""
    wanted: list[str]
    """Every event ID the request names (its own, prev, auth, state events)."""
    new_ids: list[str]
    """The request's own event IDs, once each."""
    snapshot_nids: list[StateSnapshotNID]
    """Reserved for the states of the request's state events (the optimistic way)."""


@dataclass(slots=True)
class _Decided:
    results: list[EventResult]
    session: StateSession
    write: InputWrite
    made: dict[EventNID, Event]
    promoted: list[EventInfo]
    """Rows of outliers the request gave their state (updated, not in ``write``)."""
    written: bool = False
    positions: list[int] = field(default_factory=list)
    """Of the request's output rows, once written."""


class Input:
    def __init__(
        self,
        storage: Storage,
        *,
        resolver: Resolver | None = None,
        on_output: Callable[[int], None] | None = None,
        loader: EventLoader | None = None,
        state_cache: StateCache | None = None,
        committed: CommittedRows | None = None,
    ) -> None:
        self.storage = storage
        self.resolver = resolver
        self.on_output = on_output
        """Called with the newest output position after a commit (wakes long-polls)."""
        self.loader = loader if loader is not None else EventLoader()
        self.state_cache = state_cache if state_cache is not None else StateCache()
        """Committed snapshots and blocks: the room's current state costs no query."""
        self.committed = committed if committed is not None else CommittedRows()
        """Committed room and event rows: a request may need no read at all."""
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
        wanted: set[str] = set()
        for item in items:
            ev = item.event
            wanted.add(ev.event_id)
            wanted.update(ev.auth_event_ids, ev.prev_event_ids, item.state_event_ids or ())
            wanted.update(implied_auth_ids(ev.room_version, ev))
        new_ids = list(dict.fromkeys(item.event.event_id for item in items))
        optimistic = self.storage.backend is Backend.POSTGRES and _fits_in_deltas(items)
        states = sum(item.event.state_key is not None for item in items) if optimistic else 0
        async with self.locks.hold_many(groups):
            request = _Request(
                items,
                groups,
                versions,
                type_nids,
                state_key_nids,
                await self.storage.reserve_event_nids(len(new_ids)),
                sorted(wanted),
                new_ids,
                await self.storage.reserve_snapshot_nids(states) if states else [],
            )
            if optimistic:
                try:
                    return await self._optimistic(request)
                except (_NeedsLock, NewBaseRefused, InputConflict) as reason:
                    log.debug("input: taking the room locks (%s)", reason)
                    self.committed.forget_rooms(groups)
            attempts = 0
            while True:
                try:
                    return await self._locked(request)
                except InputConflict:
                    self.committed.forget_rooms(groups)
                    attempts += 1
                    if attempts == LOCKED_ATTEMPTS:
                        raise ServiceError(
                            409,
                            "M_UNKNOWN",
                            "the request's events or transaction IDs were being stored by"
                            " another writer at the same time; send it again",
                        ) from None

    async def _optimistic(self, request: _Request) -> list[EventResult]:
        async with self.storage.read() as tables:
            prepared = self.committed.read(request.groups, request.wanted, request.new_ids)
            if prepared is None:
                prepared = await tables.input.prepare(
                    list(request.groups), request.wanted, request.new_ids, lock_rooms=False
                )
            if any(room_id not in prepared.rooms for room_id in request.groups):
                raise _NeedsLock("a room of the request is not stored yet")
            _check_versions(request, prepared)
            decided = await self._decide(tables, request, prepared, locked=False)
            await self._write(tables, decided)
        return self._committed(prepared, decided)

    async def _locked(self, request: _Request) -> list[EventResult]:
        async with self.storage.transaction() as tx:
            prepared = await self._prepare(tx, request)
            decided = await self._decide(tx, request, prepared, locked=True)
            await self._write(tx, decided)
        return self._committed(prepared, decided)

    async def _decide(
        self, tables: Tables, request: _Request, prepared: Prepared, *, locked: bool
    ) -> _Decided:
        """Decide every event from ``prepared`` and describe the request's write; the
        locked way also stores what that write does not cover."""
        items = request.items
        # The optimistic way writes delta snapshots only: a new base stops it at once.
        session = StateSession(tables, cache=self.state_cache, new_bases=locked)
        nids = iter(request.nids)
        if locked:
            await session.check(  # the current states that state events build on
                nid
                for item in items
                if item.event.state_key is not None
                and (nid := prepared.rooms[item.event.room_id].state_snapshot_nid)
            )
        results: list[EventResult | None] = [None] * len(items)
        batches: list[RoomBatch] = []
        for room in sorted(prepared.rooms.values(), key=lambda r: r.room_nid):
            indexes = request.groups[room.room_id]
            batch = RoomBatch(
                tables,
                room,
                request.versions[room.room_id],
                type_nids=request.type_nids,
                state_key_nids=request.state_key_nids,
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
        write = InputWrite()
        if not locked:
            if any(batch.writes_beyond_input() for batch in batches):
                raise _NeedsLock("the request stores or retires invites")
            named = session.name_for_caller(
                (s for batch in batches for s in batch.snapshots()), request.snapshot_nids
            )
            if named is None:
                raise _NeedsLock("the request stores a new state base")
            write.snapshots = named
        await session.flush(s for batch in batches for s in batch.snapshots())
        made: dict[EventNID, Event] = {}
        for batch in batches:
            await batch.finish(write)
            made.update((nid, r.event) for nid, r in batch.by_nid.items())
        promoted = [info for batch in batches for info in batch.promoted]
        return _Decided([r for r in results if r is not None], session, write, made, promoted)

    @staticmethod
    async def _write(tables: Tables, decided: _Decided) -> None:
        if not decided.write.stores_nothing():
            decided.positions = await tables.input.write(decided.write)
            decided.written = True

    def _committed(self, prepared: Prepared, decided: _Decided) -> list[EventResult]:
        """Share what later requests' reads, auth, state and output will need. (Nothing of
        a request that was not written is shared: its rows all go in its last step.)"""
        write = decided.write
        latest = {nid for r in write.rooms for nid in r.latest_event_nids}
        self.committed.add(  # of the new events, those later requests may cite: the latest
            prepared.rooms,  # ones (prev events) and state events (auth events)
            write.rooms if decided.written else (),
            [
                *prepared.known.values(),
                *(
                    e.info()
                    for e in write.events
                    if e.state_key_nid is not None or e.event_nid in latest
                ),
                *decided.promoted,
            ],
        )
        self.loader.add(decided.made)
        decided.session.publish()
        if decided.positions and self.on_output is not None:
            self.on_output(max(decided.positions))
        return decided.results

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

    async def _prepare(self, tx: Tables, request: _Request) -> Prepared:
        """The request's rooms, row-locked, the stored events it names, and its client
        transactions already recorded. A room is created when the request brings its
        create event, refused (404) when unknown otherwise."""
        items, groups, versions = request.items, request.groups, request.versions
        prepared = await tx.input.prepare(list(groups), request.wanted, request.new_ids)
        created = False
        for room_id, indexes in groups.items():
            if room_id not in prepared.rooms:
                if not any(
                    items[i].event.type == CREATE and items[i].event.state_key == ""
                    for i in indexes
                ):
                    raise not_found(
                        f"room {room_id} is not known to the roomserver"
                        " (send its create event first)"
                    )
                made = await tx.rooms.get_or_create(room_id, versions[room_id].identifier)
                prepared.rooms[room_id] = await tx.rooms.lock(made.room_nid)
                created = True
        _check_versions(request, prepared)
        if created:  # read again under the new room's lock: another process may have won
            prepared.known = await tx.events.lookup(request.wanted)
            prepared.late = await tx.previous_events.referenced_ids(request.new_ids)
        transactions = [
            (item.transaction.session_id, item.event.sender, item.transaction.transaction_id)
            for item in items
            if item.transaction is not None
        ]
        if transactions:
            prepared.sent = await tx.transactions.event_ids(transactions)
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


def _fits_in_deltas(items: Sequence[InputEvent]) -> bool:
    """Whether each room's state events change few enough keys for its new states to be
    deltas over its stored base (the optimistic way writes no new base). More keys than a
    delta may hold need a new base for certain: such a request goes the locked way at once
    instead of deciding events until the first one that needs it (a join storm, say)."""
    keys: dict[str, set[tuple[str, str]]] = {}
    for item in items:
        ev = item.event
        if ev.state_key is not None:
            keys.setdefault(ev.room_id, set()).add((ev.type, ev.state_key))
    return all(len(k) <= DEFAULT_PACKING.max_delta for k in keys.values())


def _check_versions(request: _Request, prepared: Prepared) -> None:
    for room_id, room in prepared.rooms.items():
        version = request.versions[room_id]
        if room.room_version != version.identifier:
            raise bad_request(
                f"room {room_id} has room version {room.room_version}, not {version.identifier}",
                "M_BAD_JSON",
            )


def _room_version(room_id: str, items: Sequence[InputEvent]) -> RoomVersion:
    version = items[0].event.room_version
    if any(item.event.room_version is not version for item in items):
        raise bad_request(f"events of room {room_id} disagree on its room version", "M_BAD_JSON")
    return version
