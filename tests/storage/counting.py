"""A connection wrapper that counts statements: how tests show a cache saves queries."""

from __future__ import annotations

from typing import Any


class CountingConnection:
    """The real connection, counting the statements that go through it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.dialect = conn.dialect
        self.flags = conn.flags
        self.statements = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._conn, name)

        async def counted(*args: Any) -> Any:
            self.statements += 1
            return await method(*args)

        return counted
