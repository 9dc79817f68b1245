"""``output_log``: the durable, ordered output stream (new room events, invites, retired
invites) that the syncserver reads.

Positions are gap-free and become visible strictly in order, so a reader that has seen
position ``p`` never later finds a new row below ``p``. Appending takes a transaction-scoped
lock (PostgreSQL advisory lock; SQLite's single writer already is one) and numbers the rows
from ``MAX(position) + 1`` in a statement that starts after the lock is granted, i.e. after
the previous appender committed. The lock is held until the appending transaction commits,
so appending is the last thing the input pipeline does before committing; appends of
different rooms serialise only for that short moment. A rolled-back append leaves no gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..database import LockKey
from ._base import Table, chunks


@dataclass(frozen=True, slots=True)
class OutputRow:
    position: int
    payload: bytes
    """JSON."""


class OutputLog(Table):
    __slots__ = ()

    async def append(self, payloads: Sequence[bytes]) -> list[int]:
        """Append JSON payloads, in order; returns their positions."""
        if not payloads:
            return []
        d = self._conn.dialect
        lock = d.xact_lock(LockKey.OUTPUT_LOG)
        if lock is not None and "output_lock" not in self._conn.flags:
            await self._conn.execute(lock)
            self._conn.flags.add("output_lock")
        positions: list[int] = []
        for chunk in chunks(payloads, d.chunk_rows(2)):
            part = list(enumerate(chunk, 1))  # numbered from the head, which each chunk moves
            rows = await self._conn.fetch(
                f"WITH r(i, payload) AS ({d.rows(['bigint', 'bytea'], len(part))})"
                " INSERT INTO output_log (position, payload)"
                " SELECT m.head + r.i, r.payload"
                " FROM r, (SELECT COALESCE(MAX(position), 0) AS head FROM output_log) AS m"
                " ORDER BY r.i RETURNING position",
                *d.row_args(part, 2),
            )
            positions.extend(sorted(p for (p,) in rows))
        return positions

    async def read(self, after: int, limit: int = 100) -> list[OutputRow]:
        """Up to ``limit`` rows with positions above ``after``, in order."""
        rows = await self._conn.fetch(
            "SELECT position, payload FROM output_log WHERE position > $1"
            " ORDER BY position LIMIT $2",
            after,
            limit,
        )
        return [OutputRow(position, bytes(payload)) for position, payload in rows]

    async def head(self) -> int:
        """The latest position (0 when the log is empty)."""
        return int(await self._conn.fetchval("SELECT COALESCE(MAX(position), 0) FROM output_log"))

    async def truncate(self, before: int) -> int:
        """Delete rows below position ``before`` (all readers are past them); how many."""
        rows = await self._conn.fetch(
            "DELETE FROM output_log WHERE position < $1 RETURNING position", before
        )
        return len(rows)
