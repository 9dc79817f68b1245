"""``room_aliases``: room alias -> room ID, and who created the alias."""

from __future__ import annotations

from ._base import Table


class RoomAliases(Table):
    __slots__ = ()

    async def set(self, alias: str, room_id: str, creator_id: str) -> bool:
        """Create the alias; False (and nothing changes) if it already exists."""
        row = await self._conn.fetchrow(
            "INSERT INTO room_aliases (alias, room_id, creator_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (alias) DO NOTHING RETURNING alias",
            alias,
            room_id,
            creator_id,
        )
        return row is not None

    async def room_id(self, alias: str) -> str | None:
        value = await self._conn.fetchval(
            "SELECT room_id FROM room_aliases WHERE alias = $1", alias
        )
        return None if value is None else str(value)

    async def creator(self, alias: str) -> str | None:
        value = await self._conn.fetchval(
            "SELECT creator_id FROM room_aliases WHERE alias = $1", alias
        )
        return None if value is None else str(value)

    async def for_room(self, room_id: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias", room_id
        )
        return [alias for (alias,) in rows]

    async def remove(self, alias: str) -> bool:
        """Delete the alias; False if there was none."""
        row = await self._conn.fetchrow(
            "DELETE FROM room_aliases WHERE alias = $1 RETURNING alias", alias
        )
        return row is not None
