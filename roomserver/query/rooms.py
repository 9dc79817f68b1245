"""Which rooms exist, with their NID and version, cached: neither ever changes once a room
has events, so most queries need no ``rooms`` read at all (one round trip saved per call).

Only rooms with events are cached: a stub (known from an invite) may still become a room,
and its absence must be asked again. Current state and latest events are never cached
here; queries that need them read the row.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from roomserver.matrix.room_versions import RoomVersion, room_version
from roomserver.storage.tables import RoomInfo, Tables
from roomserver.types import RoomNID


@dataclass(frozen=True, slots=True)
class RoomRef:
    """A room with events: what never changes about it."""

    room_nid: RoomNID
    room_id: str
    version: RoomVersion

    @classmethod
    def of(cls, info: RoomInfo) -> RoomRef:
        return cls(info.room_nid, info.room_id, room_version(info.room_version))


class KnownRooms:
    """A bounded cache of :class:`RoomRef` by room ID and by NID."""

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self._by_id: OrderedDict[str, RoomRef] = OrderedDict()
        self._by_nid: dict[RoomNID, RoomRef] = {}

    def _add(self, ref: RoomRef) -> RoomRef:
        self._by_id[ref.room_id] = ref
        self._by_nid[ref.room_nid] = ref
        while len(self._by_id) > self.max_size:
            _, old = self._by_id.popitem(last=False)
            self._by_nid.pop(old.room_nid, None)
        return ref

    def remember(self, info: RoomInfo) -> RoomRef | None:
        """The room as a reference, cached if it has events; None for a stub."""
        return None if info.is_stub else self._add(RoomRef.of(info))

    async def get(self, tables: Tables, room_id: str) -> RoomRef | None:
        """The room if it has events (a stub counts as unknown)."""
        ref = self._by_id.get(room_id)
        if ref is not None:
            return ref
        info = await tables.rooms.get(room_id)
        return None if info is None else self.remember(info)

    async def by_nids(self, tables: Tables, room_nids: Sequence[RoomNID]) -> dict[RoomNID, RoomRef]:
        """The rooms of stored events (events only exist in rooms with events)."""
        out = {n: r for n in set(room_nids) if (r := self._by_nid.get(n)) is not None}
        missing = sorted(set(room_nids) - set(out))
        if missing:
            room_ids = await tables.rooms.room_ids(missing)
            infos = await tables.rooms.get_many(list(room_ids.values()))
            for info in infos.values():
                out[info.room_nid] = RoomRef.of(info)
                self.remember(info)
        return out
