"""The PostgreSQL backend: an asyncpg pool behind the :class:`~.database.Connection` protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg

from .database import Backend, Dialect, Row

POSTGRES = Dialect(Backend.POSTGRES, max_params=32767)


class PostgresConnection:
    """An acquired asyncpg connection; statements are prepared and cached by asyncpg."""

    dialect = POSTGRES

    __slots__ = ("_conn", "flags")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.flags: set[str] = set()
        """Per-transaction markers (e.g. a lock already taken), owned by the table code."""

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return cast(list[Row], await self._conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return cast(Row | None, await self._conn.fetchrow(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._conn.fetchval(sql, *args)

    async def script(self, sql: str) -> None:
        await self._conn.execute(sql)  # no arguments: the simple protocol runs every statement


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a pooled connection without asyncpg's reset statement (a round trip per
    transaction): this code keeps no session state — its advisory locks are all
    transaction-scoped, and it never LISTENs, SETs or leaves cursors open."""


class PostgresDatabase:
    dialect = POSTGRES

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 1, max_size: int = 10, **options: Any
    ) -> PostgresDatabase:
        options.setdefault("reset", _keep_session)
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, **options)
        return cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgresConnection(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PostgresConnection]:
        async with self._pool.acquire() as conn:
            yield PostgresConnection(conn)

    async def close(self) -> None:
        await self._pool.close()
