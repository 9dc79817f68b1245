"""Room aliases: a local directory of ``#alias:server`` -> room ID, and who made each.

Unlike Dendrite's alias API this does not send an ``m.room.aliases`` event after a change:
the roomserver holds no signing key of its own, and that event type is deprecated (its
special auth rule is gone from room version 6 on; clients publish
``m.room.canonical_alias`` themselves).
"""

from __future__ import annotations

from roomserver.errors import not_found
from roomserver.storage import Storage

from .state import live_room


class Aliases:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def set(self, alias: str, room_id: str, user_id: str) -> bool:
        """Point ``alias`` at the room; True if the alias already existed (then nothing
        changes, even if it pointed elsewhere). The room must be known."""
        async with self.storage.transaction() as tx:
            if await live_room(tx, room_id) is None:
                raise not_found(f"room {room_id} is not known")
            return not await tx.aliases.set(alias, room_id, user_id)

    async def room_id(self, alias: str) -> str:
        async with self.storage.read() as r:
            room_id = await r.aliases.room_id(alias)
        if room_id is None:
            raise not_found(f"room alias {alias} is not known")
        return room_id

    async def for_room(self, room_id: str) -> list[str]:
        async with self.storage.read() as r:
            if await live_room(r, room_id) is None:
                raise not_found(f"room {room_id} is not known")
            return await r.aliases.for_room(room_id)

    async def creator(self, alias: str) -> str:
        async with self.storage.read() as r:
            creator = await r.aliases.creator(alias)
        if creator is None:
            raise not_found(f"room alias {alias} is not known")
        return creator

    async def remove(self, alias: str) -> str:
        """Delete ``alias``; returns the room it pointed at."""
        async with self.storage.transaction() as tx:
            room_id = await tx.aliases.room_id(alias)
            if room_id is None or not await tx.aliases.remove(alias):
                raise not_found(f"room alias {alias} is not known")
            return room_id
