"""One room's input events, decided in order in memory, then described for the request's
single write.

The batch is handed what the request read up front (the room row, every cited event, the
client transactions already seen) and reserved NIDs, decides each event in memory (auth
against its auth events, state before it, auth against that state, soft-fail against the
current state, latest events, membership changes), then in :meth:`RoomBatch.finish` stores
what only it writes (snapshots unless the caller flushed or named them; invites and the
rows of outliers given their state: the locked way only, see
:meth:`RoomBatch.writes_beyond_input`) and adds its event rows, prev-event edges, room row,
memberships, client transaction IDs and output log rows to the request's single write
(:class:`~roomserver.storage.tables.InputWrite`). A crash anywhere leaves the request
unwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import orjson

from roomserver.errors import bad_request, missing_events
from roomserver.input.types import EventResult, InputEvent, InputKind, Outcome
from roomserver.matrix.auth import auth_types_for_event, check_auth, check_auth_events
from roomserver.matrix.errors import AuthError
from roomserver.matrix.events import CREATE, Event
from roomserver.matrix.room_versions import RoomVersion
from roomserver.output import payloads
from roomserver.state import (
    MissingStateError,
    Resolver,
    Snapshot,
    StaleStateError,
    StateSession,
    state_after_events,
)
from roomserver.state.event_loader import EventLoader
from roomserver.state.resolution import PendingEvents
from roomserver.storage.tables import (
    EventInfo,
    InputWrite,
    InviteInfo,
    MembershipInfo,
    NewEvent,
    Prepared,
    RoomInfo,
    RoomUpdate,
    Tables,
)
from roomserver.types import (
    EventNID,
    EventTypeNIDs,
    Membership,
    StateKeyTuple,
    StateMap,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Record:
    """An event of this batch as the rest of the batch sees it (stored ones use EventInfo)."""

    event: Event
    nid: EventNID
    key: StateKeyTuple | None
    state_before: Snapshot | None
    rejected: bool = False
    reason: str = ""
    soft_failed: bool = False
    state_after: Snapshot | None = None
    """Made on first use: the next event and the room's current state both need it."""
    allowed_by: frozenset[EventNID] = frozenset()
    """The auth events that allowed it (its own): the same events in a state allow it too."""
    stored_as: EventInfo | None = None
    """Its row when it was stored as an outlier and now gets its state: updated, not
    inserted (:meth:`RoomBatch.finish`)."""

    @property
    def contributes_state(self) -> bool:
        return self.key is not None and not self.rejected


class RoomBatch:
    """See the module docstring. One instance per (room, transaction)."""

    def __init__(
        self,
        tables: Tables,
        room: RoomInfo,
        version: RoomVersion,
        *,
        type_nids: Mapping[str, int],
        state_key_nids: Mapping[str, int],
        resolver: Resolver | None,
        loader: EventLoader,
        session: StateSession,
        prepared: Prepared,
        nids: Iterator[EventNID],
    ) -> None:
        self.tables = tables
        self.room = room
        self.version = version
        self.type_nids = type_nids
        self.state_key_nids = state_key_nids
        self.resolver = resolver
        self.loader = loader
        self.session = session
        self.known: dict[str, EventInfo] = prepared.known
        """Stored events named by the request (all its rooms), by ID."""
        self.late = prepared.late
        self.sent = prepared.sent
        self.nids = nids
        """Fresh NIDs, shared by the request's batches."""
        self.records: dict[str, _Record] = {}
        self.by_nid: dict[EventNID, _Record] = {}
        self.pending: list[_Record] = []  # decided, not yet written
        self.edges: list[tuple[EventNID, str, EventNID | None]] = []
        self.cited: set[str] = set()
        """Prev event IDs of the batch's events so far."""
        self.latest: list[EventNID] = list(room.latest_event_nids)
        self.last_sent: EventNID | None = room.last_event_sent_nid
        self.current: Snapshot | None = None
        self.room_changed = False
        self.memberships: list[tuple[MembershipInfo, str]] = []  # sender NID set on write
        self.invites: list[tuple[InviteInfo, str]] = []
        self.retire: list[tuple[int, str, Membership, str]] = []  # target NID, user, m, by
        self.outputs: list[bytes | Callable[[Mapping[EventNID, str]], bytes]] = []
        """Output payloads, or builders of those that name events by NIDs until the end."""
        self.output_nids: set[EventNID] = set()
        self.transactions: list[tuple[int, str, str, str]] = []
        self.cited_when_outliers: set[EventNID] = set()
        """Outliers getting their state that stored events already name as a prev event."""
        self.promoted: list[EventInfo] = []
        """The rows of those outliers once :meth:`finish` has updated them."""
        # This batch's events as the state layer sees them until they are written.
        self.pending_events: dict[EventNID, Event] = {}
        self.pending_snapshots: dict[EventNID, Snapshot] = {}
        self.pending_rejected: set[EventNID] = set()

    # -- the batch --

    async def run(self, items: Sequence[InputEvent]) -> list[EventResult]:
        """Decide ``items`` (nothing is written until :meth:`finish`)."""
        self._check_cited(items)
        if self.room.state_snapshot_nid:
            self.current = await self.session.snapshot(self.room.state_snapshot_nid)
        outliers = [i.event_nid for i in map(self._outlier_getting_state, items) if i]
        if outliers:
            self.cited_when_outliers = await self.tables.previous_events.referenced(outliers)
        results: list[EventResult] = []
        for item in items:
            event_id = item.event.event_id
            stored = self._outlier_getting_state(item)
            if stored is None and (event_id in self.known or event_id in self.records):
                results.append(EventResult(event_id, Outcome.ALREADY_KNOWN))
                continue
            sent = self._sent_in_transaction(item)
            if sent is not None:  # a client retry that made a new event: answer the first one
                results.append(EventResult(sent, Outcome.ALREADY_KNOWN, "transaction ID seen"))
                continue
            nid = next(self.nids) if stored is None else stored.event_nid
            record = await self._process(item, nid, stored)
            results.append(self._result(record))
        return results

    def _outlier_getting_state(self, item: InputEvent) -> EventInfo | None:
        """The stored row of ``item``'s event if it is an outlier the item gives a state
        (sent again as new or backfilled, as the seed does): it is decided as if new, then
        its row is updated. A rejected outlier keeps its verdict (already known)."""
        info = self.known.get(item.event.event_id)
        if (
            info is None
            or not info.is_outlier
            or info.is_rejected
            or item.kind is InputKind.OUTLIER
            or item.event.event_id in self.records
        ):
            return None
        return info

    def _sent_in_transaction(self, item: InputEvent) -> str | None:
        txn = item.transaction
        if txn is None:
            return None
        for session_id, sender, txn_id, event_id in self.transactions:
            if (session_id, sender, txn_id) == (
                txn.session_id,
                item.event.sender,
                txn.transaction_id,
            ):
                return event_id
        return self.sent.get((txn.session_id, item.event.sender, txn.transaction_id))

    @staticmethod
    def _result(record: _Record) -> EventResult:
        if record.rejected:
            return EventResult(record.event.event_id, Outcome.REJECTED, record.reason)
        if record.soft_failed:
            return EventResult(record.event.event_id, Outcome.SOFT_FAILED, record.reason)
        return EventResult(record.event.event_id, Outcome.ACCEPTED)

    def _check_cited(self, items: Sequence[InputEvent]) -> None:
        """Refuse the request if the batch names events of other rooms or missing ones."""
        for item in items:
            ev = item.event
            for event_id in (
                ev.event_id,
                *ev.auth_event_ids,
                *ev.prev_event_ids,
                *(item.state_event_ids or ()),
            ):
                info = self.known.get(event_id)
                if info is not None and info.room_nid != self.room.room_nid:
                    raise bad_request(f"event {info.event_id} belongs to another room")
        seen: set[str] = set()
        stated: set[str] = set()  # outliers this request gives a state, so far
        missing_auth: list[str] = []
        missing_prev: list[str] = []
        for item in items:
            ev = item.event

            def available(event_id: str) -> bool:
                return event_id in self.known or event_id in seen

            def without_state(event_id: str) -> bool:
                info = self.known.get(event_id)
                return info is not None and info.is_outlier and event_id not in stated

            missing_auth += [
                a for a in (*ev.auth_event_ids, *self._implied_auth(ev)) if not available(a)
            ]
            if item.kind is not InputKind.OUTLIER:
                if item.state_event_ids is not None:
                    missing_prev += [s for s in item.state_event_ids if not available(s)]
                else:
                    missing_prev += [p for p in ev.prev_event_ids if not available(p)]
                    missing_prev += [p for p in ev.prev_event_ids if without_state(p)]
            seen.add(ev.event_id)
            if self._outlier_getting_state(item) is not None:
                stated.add(ev.event_id)
        if missing_auth:
            raise missing_events("auth events", sorted(set(missing_auth)))
        if missing_prev:
            raise missing_events(
                "prev events (or their state) / state events", sorted(set(missing_prev))
            )

    def _implied_auth(self, event: Event) -> tuple[str, ...]:
        return implied_auth_ids(self.version, event)

    # -- one event --

    async def _process(
        self, item: InputEvent, nid: EventNID, stored: EventInfo | None = None
    ) -> _Record:
        ev = item.event
        key = None
        if ev.state_key is not None:
            key = StateKeyTuple(self.type_nids[ev.type], self.state_key_nids[ev.state_key])
        record = _Record(ev, nid, key, None, stored_as=stored)
        self.records[ev.event_id] = record
        self.by_nid[nid] = record
        self.pending_events[nid] = ev
        if item.pre_rejection:
            record.rejected, record.reason = True, item.pre_rejection
        else:
            await self._check_against_auth_events(record)
        if item.kind is InputKind.OUTLIER:
            self.pending.append(record)
            if record.rejected:
                self.pending_rejected.add(nid)
            return record

        if item.state_event_ids is not None:
            record.state_before = await self._given_state(item.state_event_ids)
        else:
            record.state_before = await self._state_after(ev.prev_event_ids)
        if not record.rejected:
            reason = await self._auth_failure(record, record.state_before)
            if reason is not None:
                record.rejected, record.reason = True, f"against the state before it: {reason}"
        if (
            item.kind is InputKind.NEW
            and not record.rejected
            and self.current is not None
            and self.current.state_hash != record.state_before.state_hash
        ):
            reason = await self._auth_failure(record, self.current)
            if reason is not None:
                record.soft_failed = True
                record.reason = f"against the current state of the room: {reason}"
        self.pending.append(record)
        self.pending_snapshots[nid] = record.state_before
        if record.rejected:
            self.pending_rejected.add(nid)
        for prev_id in ev.prev_event_ids:
            prev_nid = self._nid_of(prev_id)
            self.edges.append((nid, prev_id, prev_nid))
            self.cited.add(prev_id)

        if item.kind is InputKind.NEW and not record.rejected and not record.soft_failed:
            await self._advance_room(record, item)
        elif item.kind is InputKind.BACKFILL and not record.rejected:
            self._output_historical(record, item)
        if item.transaction is not None and not record.rejected:
            self.transactions.append(
                (
                    item.transaction.session_id,
                    ev.sender,
                    item.transaction.transaction_id,
                    ev.event_id,
                )
            )
        return record

    def _nid_of(self, event_id: str) -> EventNID | None:
        record = self.records.get(event_id)
        if record is not None:
            return record.nid
        info = self.known.get(event_id)
        return None if info is None else info.event_nid

    async def _events(self, event_ids: Iterable[str]) -> list[Event]:
        """Parsed events by ID, from this batch or storage."""
        out: list[Event] = []
        stored: list[EventNID] = []
        for event_id in event_ids:
            record = self.records.get(event_id)
            if record is not None:
                out.append(record.event)
            else:
                stored.append(self.known[event_id].event_nid)
        if stored:
            loaded = await self.loader.load(self.tables, self.version, stored)
            out.extend(loaded[n] for n in stored)
        return out

    def _rejected_id(self, event_id: str) -> bool:
        record = self.records.get(event_id)
        if record is not None:
            return record.rejected
        info = self.known.get(event_id)
        return info is not None and info.is_rejected

    async def _check_against_auth_events(self, record: _Record) -> None:
        ev = record.event
        cited = [*ev.auth_event_ids, *self._implied_auth(ev)]
        auth_events = await self._events(cited)
        try:
            check_auth_events(ev, auth_events, is_rejected=self._rejected_id)
            check_auth(ev, {a.state_tuple: a for a in auth_events})
        except AuthError as e:
            record.rejected, record.reason = True, f"against its auth events: {e.message}"
            return
        nids = [self._nid_of(a) for a in cited]
        if None not in nids:
            record.allowed_by = frozenset(n for n in nids if n is not None)

    async def _auth_failure(self, record: _Record, state: Snapshot) -> str | None:
        """Why the auth rules refuse the event against ``state`` (None: allowed)."""
        ev = record.event
        wanted: dict[StateKeyTuple, tuple[str, str]] = {}
        for etype, skey in auth_types_for_event(ev):
            type_nid = self.type_nids.get(etype)
            key_nid = self.state_key_nids.get(skey)
            if type_nid is not None and key_nid is not None:
                wanted[StateKeyTuple(type_nid, key_nid)] = (etype, skey)
        create_key = StateKeyTuple(EventTypeNIDs.CREATE, 1)
        wanted.setdefault(create_key, (CREATE, ""))
        found = await self.session.lookup(state, wanted)
        if record.allowed_by and record.allowed_by == set(found.values()):
            return None  # the very events its own auth events check allowed it by
        events = await self._events_by_nid(list(found.values()))
        try:
            check_auth(ev, {wanted[k]: events[n] for k, n in found.items()})
        except AuthError as e:
            return e.message
        return None

    async def _events_by_nid(self, nids: Sequence[EventNID]) -> dict[EventNID, Event]:
        out = {n: self.by_nid[n].event for n in nids if n in self.by_nid}
        stored = [n for n in nids if n not in out]
        if stored:
            out.update(await self.loader.load(self.tables, self.version, stored))
        return out

    # -- state --

    async def _given_state(self, state_event_ids: Sequence[str]) -> Snapshot:
        state: dict[StateKeyTuple, EventNID] = {}
        for event_id in state_event_ids:
            record = self.records.get(event_id)
            if record is not None:
                if record.key is None:
                    raise bad_request(f"state event {event_id} is not a state event")
                state[record.key] = record.nid
                continue
            info = self.known[event_id]
            if not info.is_state:
                raise bad_request(f"state event {event_id} is not a state event")
            state[info.state_key_tuple] = info.event_nid
        near = self.current if self.current is not None else None
        return await self.session.store(self.room.room_nid, state, near=near)

    def _info(self, event_id: str) -> EventInfo:
        """What the state layer needs of an event: stored, or of this batch (pending)."""
        record = self.records.get(event_id)
        if record is not None:
            return _info_of(record, self.room.room_nid, self.type_nids)
        return self.known[event_id]

    async def _state_after(self, event_ids: Sequence[str]) -> Snapshot:
        """The state after several events: resolved by the room version's algorithm when
        their states differ. No events: the empty state (before a create event)."""
        if not event_ids:
            return self.session.empty(self.room.room_nid)
        if (
            len(event_ids) == 1
            and self.current is not None
            and self.latest == [self._nid_of(event_ids[0])]
        ):  # the linear case: the state after the room's only latest event is its current
            return self.current
        pending = PendingEvents(
            snapshots=self.pending_snapshots,
            events=self.pending_events,
            rejected=frozenset(self.pending_rejected),
        )
        try:
            return await state_after_events(
                self.session,
                self.version,
                [self._info(e) for e in event_ids],
                pending=pending,
                resolver=self.resolver,
            )
        except StaleStateError:
            raise
        except MissingStateError:
            unknown = [e for e in event_ids if self._info(e).is_outlier]
            raise missing_events("prev events (or their state)", unknown) from None

    async def _state_after_nids(self, nids: Sequence[EventNID]) -> Snapshot:
        ids = []
        for n in nids:
            record = self.by_nid.get(n)
            ids.append(record.event.event_id if record is not None else await self._id_of(n))
        return await self._state_after(ids)

    async def _id_of(self, nid: EventNID) -> str:
        found = await self.tables.events.by_nid([nid])
        info = found[nid]
        self.known[info.event_id] = info
        return info.event_id

    # -- the room after a new event --

    async def _advance_room(self, record: _Record, item: InputEvent) -> None:
        ev = record.event
        prev_nids = {self._nid_of(p) for p in ev.prev_event_ids}
        old_latest = self.latest
        new_latest = [n for n in old_latest if n not in prev_nids]
        if record.nid not in new_latest and not self._referenced(record):
            new_latest.append(record.nid)
        old_current = self.current
        before = record.state_before
        assert before is not None
        removed: StateMap
        added: StateMap
        if new_latest == [record.nid]:
            new_current = await self._after(record)
        else:
            new_current = await self._state_after_nids(new_latest)
        if old_current is before and new_current is record.state_after:
            # The linear case: the event's own entry is the only change, both ways.
            removed, added = {}, {}
            if record.contributes_state and record.key is not None:
                replaced = (await self.session.lookup(before, [record.key])).get(record.key)
                removed = {record.key: replaced} if replaced else {}
                added = {record.key: record.nid}
            before_removes, before_adds = added, removed
        else:
            if old_current is None:
                removed, added = {}, await self.session.full(new_current)
            else:
                removed, added = await self.session.diff(old_current, new_current)
            before_removes, before_adds = await self.session.diff(new_current, before)
        await self._membership_changes(record, removed, added)

        last_sent = self.last_sent
        self.latest, self.current, self.last_sent = new_latest, new_current, record.nid
        self.room_changed = True
        latest_snapshot = list(new_latest)
        headered = ev.headered()
        self.output_nids.update(latest_snapshot)
        for m in (removed, added, before_removes, before_adds):
            self.output_nids.update(m.values())
        if last_sent:
            self.output_nids.add(last_sent)

        def build(ids: Mapping[EventNID, str]) -> bytes:
            return payloads.new_room_event(
                headered,
                latest_event_ids=[ids[n] for n in latest_snapshot],
                adds_state_event_ids=sorted(ids[n] for n in added.values()),
                removes_state_event_ids=sorted(ids[n] for n in removed.values()),
                last_sent_event_id=ids[last_sent] if last_sent else "",
                state_before_adds_event_ids=sorted(ids[n] for n in before_adds.values()),
                state_before_removes_event_ids=sorted(ids[n] for n in before_removes.values()),
                send_as_server=item.send_as_server,
                transaction_id=item.transaction.as_json() if item.transaction else None,
            )

        self.outputs.append(build)

    async def _after(self, record: _Record) -> Snapshot:
        """The state after an event of this batch (with a known state before it)."""
        if record.state_after is None:
            assert record.state_before is not None
            if record.contributes_state and record.key is not None:
                record.state_after = await self.session.derive(
                    record.state_before, {record.key: record.nid}
                )
            else:
                record.state_after = record.state_before
        return record.state_after

    def _output_historical(self, record: _Record, item: InputEvent) -> None:
        headered = record.event.headered()

        def build(ids: Mapping[EventNID, str]) -> bytes:
            return payloads.new_room_event(
                headered,
                latest_event_ids=[],
                adds_state_event_ids=[],
                removes_state_event_ids=[],
                last_sent_event_id="",
                state_before_adds_event_ids=[],
                state_before_removes_event_ids=[],
                send_as_server=item.send_as_server,
                transaction_id=item.transaction.as_json() if item.transaction else None,
                historical=True,
            )

        self.outputs.append(build)

    def _referenced(self, record: _Record) -> bool:
        """Whether a stored or earlier event already names the event as a prev event (then
        it arrived late and is not a forward extremity)."""
        event_id = record.event.event_id
        return (
            event_id in self.late
            or event_id in self.cited
            or record.nid in self.cited_when_outliers
        )

    async def _membership_changes(
        self, record: _Record, removed: StateMap, added: StateMap
    ) -> None:
        """Memberships and invites follow the current state's member events."""
        member = EventTypeNIDs.MEMBER
        changed = {k for k in (*removed, *added) if k.type_nid == member}
        if not changed:
            return
        nids = [n for k in changed for n in (removed.get(k), added.get(k)) if n]
        events = await self._events_by_nid(nids)
        for key in sorted(changed):
            new_nid = added.get(key)
            old_nid = removed.get(key)
            new_ev = events.get(new_nid) if new_nid else None
            old_ev = events.get(old_nid) if old_nid else None
            new_m = _membership(new_ev)
            old_m = _membership(old_ev)
            if new_ev is None or new_nid is None:
                continue
            self.memberships.append(
                (
                    MembershipInfo(self.room.room_nid, key.state_key_nid, 0, new_m, new_nid),
                    new_ev.sender,
                )
            )
            if new_m is Membership.INVITE and old_m is not Membership.INVITE:
                invite = InviteInfo(
                    new_ev.event_id,
                    self.room.room_nid,
                    key.state_key_nid,
                    0,
                    orjson.dumps(new_ev.headered()),
                )
                self.invites.append((invite, new_ev.sender))
                self.outputs.append(
                    payloads.new_invite_event(new_ev.headered(), self.version.identifier)
                )
            elif new_m is not Membership.INVITE and old_m is Membership.INVITE:
                self.retire.append(
                    (key.state_key_nid, new_ev.state_key or "", new_m, new_ev.event_id)
                )

    # -- writing --

    def snapshots(self) -> list[Snapshot]:
        """The states the batch's rows name (the caller may flush every batch's at once)."""
        snapshots = [r.state_before for r in self.pending if r.state_before is not None]
        if self.room_changed and self.current is not None:
            snapshots.append(self.current)
        return snapshots

    def writes_beyond_input(self) -> bool:
        """Whether :meth:`finish` stores more than the request's single write covers (new
        or retired invites, outliers given their state), besides the states it names that
        the caller did not flush or name for the write (:meth:`StateSession.name_for_caller`)."""
        return bool(self.invites or self.retire) or any(r.stored_as for r in self.pending)

    async def finish(self, write: InputWrite) -> None:
        """Add the batch's rows to ``write`` (the request's single write), after storing
        what that write does not cover (:meth:`writes_beyond_input`)."""
        snapshots = self.snapshots()
        snapshot_nids = iter(await self.session.flush(snapshots) if snapshots else ())
        for r in self.pending:
            snapshot_nid = next(snapshot_nids) if r.state_before is not None else None
            if r.stored_as is not None and snapshot_nid is not None:
                self.promoted.append(
                    replace(
                        r.stored_as,
                        state_snapshot_nid=snapshot_nid,
                        is_outlier=False,
                        is_rejected=r.rejected,
                        is_soft_failed=r.soft_failed,
                        rejection_reason=r.reason if r.rejected else "",
                    )
                )
                continue
            write.events.append(self._new_event(r, snapshot_nid))
            if r.event.event_id in self.late:
                write.late += 1
        if self.promoted:
            await self._promote(self.promoted)
        room = self.room
        write.edges.extend(
            (room.room_nid, child, prev_id, prev) for child, prev_id, prev in self.edges
        )
        if self.room_changed:
            current_nid = next(snapshot_nids) if self.current is not None else None
            write.rooms.append(RoomUpdate(room, self.latest, self.last_sent, current_nid))
        else:
            write.rooms.append(RoomUpdate.unchanged(room))
        write.transactions.extend(self.transactions)
        room_nid = room.room_nid
        senders = {s for _, s in self.memberships} | {s for _, s in self.invites}
        sender_nids = {s: n for s in senders if (n := self.state_key_nids.get(s)) is not None}
        if len(sender_nids) < len(senders):  # senders of older events a resolution brought back
            missing = sorted(senders - sender_nids.keys())
            sender_nids.update(await self.tables.event_state_keys.assign(missing))
        write.memberships.extend(replace(m, sender_nid=sender_nids[s]) for m, s in self.memberships)
        if self.invites:
            await self.tables.invites.insert(
                [replace(i, sender_nid=sender_nids[s]) for i, s in self.invites]
            )
        for target_nid, user_id, membership, by_event in self.retire:
            for invite_id in await self.tables.invites.retire(room_nid, target_nid):
                self.outputs.append(
                    payloads.retire_invite_event(
                        invite_id, user_id, by_event, membership.content_value
                    )
                )
        if self.outputs:
            ids = await self._event_ids(self.output_nids)
            write.output.extend(o if isinstance(o, bytes) else o(ids) for o in self.outputs)

    async def _promote(self, rows: Sequence[EventInfo]) -> None:
        """Update the rows of outliers that now have their state (their JSON is stored)."""
        events = self.tables.events
        await events.set_state_snapshots(
            [(i.event_nid, i.state_snapshot_nid) for i in rows if i.state_snapshot_nid]
        )
        if rejected := [(i.event_nid, i.rejection_reason) for i in rows if i.is_rejected]:
            await events.set_rejected(rejected)
        if soft_failed := [i.event_nid for i in rows if i.is_soft_failed]:
            await events.set_soft_failed(soft_failed, True)

    def _new_event(self, r: _Record, snapshot_nid: int | None) -> NewEvent:
        ev = r.event
        return NewEvent(
            event_id=ev.event_id,
            room_nid=self.room.room_nid,
            type_nid=self.type_nids[ev.type],
            state_key_nid=r.key.state_key_nid if r.key is not None else None,
            depth=ev.depth,
            auth_event_nids=[
                n
                for a in (*ev.auth_event_ids, *self._implied_auth(ev))
                if (n := self._nid_of(a)) is not None
            ],
            json=orjson.dumps(ev.pdu),
            state_snapshot_nid=snapshot_nid,
            is_outlier=r.state_before is None,
            is_rejected=r.rejected,
            rejection_reason=r.reason if r.rejected else "",
            is_soft_failed=r.soft_failed,
            event_nid=r.nid,
        )

    async def _event_ids(self, nids: Iterable[EventNID]) -> dict[EventNID, str]:
        """IDs of events by NID: this batch's, cached ones, then the database's."""
        ids: dict[EventNID, str] = {}
        stored: list[EventNID] = []
        for n in nids:
            record = self.by_nid.get(n)
            cached = record.event if record is not None else self.loader.cached(n)
            if cached is not None:
                ids[n] = cached.event_id
            else:
                stored.append(n)
        if stored:
            ids.update(await self.tables.events.event_ids(stored))
        return ids


def implied_auth_ids(version: RoomVersion, event: Event) -> tuple[str, ...]:
    """Room v12: the create event authorises every other event without being cited."""
    if version.room_id_from_create_event and event.type != CREATE:
        return ("$" + event.room_id[1:],)
    return ()


def _membership(event: Event | None) -> Membership:
    if event is None:
        return Membership.LEAVE
    try:
        return Membership.from_content(event.membership or "leave")
    except ValueError:
        return Membership.LEAVE


def _info_of(r: _Record, room_nid: int, type_nids: Mapping[str, int]) -> EventInfo:
    return EventInfo(
        event_nid=r.nid,
        event_id=r.event.event_id,
        room_nid=room_nid,
        type_nid=type_nids[r.event.type],
        state_key_nid=r.key.state_key_nid if r.key is not None else None,
        depth=r.event.depth,
        state_snapshot_nid=r.state_before.nid if r.state_before is not None else None,
        auth_event_nids=(),
        is_outlier=r.state_before is None,
        is_rejected=r.rejected,
        is_soft_failed=r.soft_failed,
        rejection_reason=r.reason,
    )
