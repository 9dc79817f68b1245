"""The input API: events in, per-event outcomes out, serialised per room.

Events of one request are grouped by room (order kept within a room); each room's group is
one :class:`~roomserver.input.room_batch.RoomBatch` in one transaction, under the room's
asyncio lock (this process) and its row lock (every process on the database). Rooms are
processed concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import orjson

from roomserver.errors import bad_request, not_found
from roomserver.input.locks import RoomLocks
from roomserver.input.room_batch import RoomBatch
from roomserver.input.types import EventResult, InputEvent, InviteInput, Outcome
from roomserver.matrix.auth import auth_types_for_event
from roomserver.matrix.events import CREATE, MEMBER
from roomserver.output import payloads
from roomserver.state import Resolver
from roomserver.state.event_loader import EventLoader
from roomserver.storage import Storage

log = logging.getLogger(__name__)


class Input:
    def __init__(
        self,
        storage: Storage,
        *,
        resolver: Resolver | None = None,
        on_output: Callable[[int], None] | None = None,
        loader: EventLoader | None = None,
    ) -> None:
        self.storage = storage
        self.resolver = resolver
        self.on_output = on_output
        """Called with the newest output position after a commit (wakes long-polls)."""
        self.loader = loader if loader is not None else EventLoader()
        self.locks = RoomLocks()

    async def input_room_events(self, items: Sequence[InputEvent]) -> list[EventResult]:
        """Process ``items``; one result per item, in order."""
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(item.event.room_id, []).append(index)
        results: list[EventResult | None] = [None] * len(items)

        async def run(room_id: str, indexes: list[int]) -> None:
            outcome = await self._room(room_id, [items[i] for i in indexes])
            for i, result in zip(indexes, outcome, strict=True):
                results[i] = result

        if len(groups) == 1:
            ((room_id, indexes),) = groups.items()
            await run(room_id, indexes)
        else:
            await asyncio.gather(*(run(r, ix) for r, ix in groups.items()))
        return [r for r in results if r is not None]

    async def _room(self, room_id: str, items: list[InputEvent]) -> list[EventResult]:
        version = items[0].event.room_version
        for item in items:
            if item.event.room_version is not version:
                raise bad_request(
                    f"events of room {room_id} disagree on its room version", "M_BAD_JSON"
                )
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

        async with self.locks.hold(room_id):
            reserved: list[int] = []
            try:
                async with self.storage.transaction() as tx:
                    room = await tx.rooms.get(room_id)
                    if room is None:
                        if not any(
                            i.event.type == CREATE and i.event.state_key == "" for i in items
                        ):
                            raise not_found(
                                f"room {room_id} is not known to the roomserver"
                                " (send its create event first)"
                            )
                        room = await tx.rooms.get_or_create(room_id, version.identifier)
                    elif room.room_version != version.identifier:
                        raise bad_request(
                            f"room {room_id} has room version {room.room_version},"
                            f" not {version.identifier}",
                            "M_BAD_JSON",
                        )
                    room = await tx.rooms.lock(room.room_nid)
                    batch = RoomBatch(
                        tx,
                        room,
                        version,
                        type_nids=type_nids,
                        state_key_nids=state_key_nids,
                        resolver=self.resolver,
                        loader=self.loader,
                    )
                    results = await batch.run(items)
                    reserved = list(batch.by_nid)
                    positions = batch.output_positions
            except BaseException:
                # NIDs of a rolled-back batch may be handed out again (SQLite): forget them.
                self.loader.discard(reserved)
                raise
        if positions and self.on_output is not None:
            self.on_output(positions[-1])
        return results

    async def input_invites(self, invites: Sequence[InviteInput]) -> list[EventResult]:
        """Invites for local users to rooms this server may not be in (over federation).

        Stored in the invites table and announced on the output stream, unless the user is
        already joined (the invite then lost a race with the join and is dropped).
        """
        results: list[EventResult] = []
        for invite in invites:
            ev = invite.event
            if ev.type != MEMBER or ev.state_key is None or ev.membership != "invite":
                raise bad_request(
                    f"{ev.event_id} is not an invite (m.room.member, membership invite)"
                )
            nids = await self.storage.assign_state_key_nids([ev.state_key, ev.sender])
            async with self.locks.hold(ev.room_id), self.storage.transaction() as tx:
                room = await tx.rooms.get_or_create(ev.room_id, ev.room_version.identifier)
                room = await tx.rooms.lock(room.room_nid)
                joined = await tx.memberships.get(room.room_nid, [nids[ev.state_key]])
                current = joined.get(nids[ev.state_key])
                if current is not None and current.membership.content_value == "join":
                    results.append(EventResult(ev.event_id, Outcome.REJECTED, "already joined"))
                    continue
                headered = ev.headered()
                if invite.invite_room_state:
                    unsigned = dict(headered.get("unsigned") or {})
                    unsigned["invite_room_state"] = list(invite.invite_room_state)
                    headered["unsigned"] = unsigned
                from roomserver.storage.tables import InviteInfo

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
