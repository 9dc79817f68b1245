"""Test helpers: build rooms with real signed events and store them as the input pipeline
would (NIDs, the state before each event, snapshots), one transaction per call."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from roomserver.matrix.builder import EventBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import RoomVersion, room_version
from roomserver.state import PendingEvents, Resolver, Snapshot, StateSession, state_after_events
from roomserver.storage import EventInfo, NewEvent, Storage

V10 = room_version("10")
ROOM = "!room:example.org"


class RoomBuilder:
    """A room of ``example.org`` users, its events kept in order."""

    def __init__(self, version: RoomVersion = V10, room_id: str = ROOM) -> None:
        self.version = version
        self.room_id = room_id
        self.builder = EventBuilder("example.org")
        self.events: list[Event] = []
        self.state: dict[tuple[str, str], Event] = {}
        self.ts = 1_700_000_000_000

    def add(
        self,
        type: str,
        sender: str,
        content: dict[str, object],
        *,
        state_key: str | None = None,
        prev: Sequence[Event] | None = None,
        state: dict[tuple[str, str], Event] | None = None,
    ) -> Event:
        """An event after ``prev`` (default: the last event) authorised by ``state``
        (default: the room's linear state)."""
        state = self.state if state is None else state
        prev = list(prev) if prev is not None else self.events[-1:]
        auth_keys = [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", sender)]
        if type == "m.room.member":
            auth_keys.append(("m.room.join_rules", ""))
            if state_key is not None:
                auth_keys.append(("m.room.member", state_key))
        auth = list({state[k].event_id: state[k] for k in auth_keys if k in state}.values())
        self.ts += 1
        event = self.builder.build(
            self.version,
            type=type,
            sender=sender,
            content=content,
            room_id=self.room_id,
            state_key=state_key,
            prev_events=prev,
            auth_events=auth,
            origin_server_ts=self.ts,
        )
        self.events.append(event)
        if state is self.state and state_key is not None:
            self.state[(type, state_key)] = event
        return event

    def create_room(
        self, creator: str = "@alice:example.org", moderators: Sequence[str] = ()
    ) -> None:
        self.add("m.room.create", creator, {"creator": creator, "room_version": "10"}, state_key="")
        self.add("m.room.member", creator, {"membership": "join"}, state_key=creator)
        users = {creator: 100, **dict.fromkeys(moderators, 50)}
        self.add(
            "m.room.power_levels",
            creator,
            {"users": users, "users_default": 0, "state_default": 50, "events_default": 0},
            state_key="",
        )
        self.add("m.room.join_rules", creator, {"join_rule": "public"}, state_key="")

    def join(self, user: str) -> Event:
        return self.add("m.room.member", user, {"membership": "join"}, state_key=user)


async def store_events(
    storage: Storage, events: Sequence[Event], *, resolver: Resolver | None = None
) -> dict[str, int]:
    """Store ``events`` (each after its prev events) with the state before each; their NIDs."""
    version = events[0].room_version
    types = await storage.assign_event_type_nids([e.type for e in events])
    keys = await storage.assign_state_key_nids(
        [e.state_key for e in events if e.state_key is not None]
    )
    nids: dict[str, int] = {}
    async with storage.transaction() as tx:
        room = await tx.rooms.get_or_create(events[0].room_id, version.identifier)
        await tx.rooms.lock(room.room_nid)
        session = StateSession(tx)
        for event in events:
            if event.prev_event_ids:
                prevs = await tx.events.lookup(event.prev_event_ids)
                before = await state_after_events(
                    session, version, [prevs[p] for p in event.prev_event_ids], resolver=resolver
                )
            else:
                before = session.empty(room.room_nid)
            (snapshot_nid,) = await session.flush([before])
            stored = await tx.events.lookup(event.auth_event_ids)
            ((nid, _),) = await tx.events.insert(
                [
                    NewEvent(
                        event_id=event.event_id,
                        room_nid=room.room_nid,
                        type_nid=types[event.type],
                        state_key_nid=None if event.state_key is None else keys[event.state_key],
                        depth=event.depth,
                        auth_event_nids=[stored[a].event_nid for a in event.auth_event_ids],
                        json=orjson.dumps(event.pdu, option=orjson.OPT_SORT_KEYS),
                        state_snapshot_nid=snapshot_nid,
                    )
                ]
            )
            nids[event.event_id] = nid
    return nids


async def store_batch(
    storage: Storage, events: Sequence[Event], *, resolver: Resolver | None = None
) -> dict[str, int]:
    """Store ``events`` as ONE batch, the way the input pipeline does: one transaction, event
    NIDs reserved first, every state computed in memory (prev events of the batch described
    by :class:`PendingEvents`), then one flush and one insert. Their NIDs."""
    version = events[0].room_version
    types = await storage.assign_event_type_nids([e.type for e in events])
    keys = await storage.assign_state_key_nids(
        [e.state_key for e in events if e.state_key is not None]
    )
    async with storage.transaction() as tx:
        room = await tx.rooms.lock(
            (await tx.rooms.get_or_create(events[0].room_id, version.identifier)).room_nid
        )
        known = await tx.events.lookup(
            [i for e in events for i in (*e.prev_event_ids, *e.auth_event_ids)]
        )
        reserved = await tx.events.reserve_nids(len(events))
        nid_of = {e.event_id: n for e, n in zip(events, reserved, strict=True)}
        nid_of.update((i, info.event_nid) for i, info in known.items())
        session = StateSession(tx)
        snapshots: dict[int, Snapshot] = {}
        infos: dict[str, EventInfo] = dict(known)
        parsed: dict[int, Event] = {}
        for event, nid in zip(events, reserved, strict=True):
            if event.prev_event_ids:
                before = await state_after_events(
                    session,
                    version,
                    [infos[p] for p in event.prev_event_ids],
                    pending=PendingEvents(snapshots, parsed),
                    resolver=resolver,
                )
            else:
                before = session.empty(room.room_nid)
            snapshots[nid] = before
            parsed[nid] = event
            infos[event.event_id] = EventInfo(
                event_nid=nid,
                event_id=event.event_id,
                room_nid=room.room_nid,
                type_nid=types[event.type],
                state_key_nid=None if event.state_key is None else keys[event.state_key],
                depth=event.depth,
                state_snapshot_nid=None,
                auth_event_nids=tuple(nid_of[a] for a in event.auth_event_ids),
                is_outlier=False,
                is_rejected=False,
                is_soft_failed=False,
                rejection_reason="",
            )
        snapshot_nids = await session.flush([snapshots[n] for n in reserved])
        await tx.events.insert(
            [
                NewEvent(
                    event_id=e.event_id,
                    room_nid=room.room_nid,
                    type_nid=types[e.type],
                    state_key_nid=None if e.state_key is None else keys[e.state_key],
                    depth=e.depth,
                    auth_event_nids=[nid_of[a] for a in e.auth_event_ids],
                    json=orjson.dumps(e.pdu, option=orjson.OPT_SORT_KEYS),
                    state_snapshot_nid=snapshot_nid,
                    event_nid=nid,
                )
                for e, nid, snapshot_nid in zip(events, reserved, snapshot_nids, strict=True)
            ]
        )
    return {e.event_id: n for e, n in zip(events, reserved, strict=True)}
