"""``transactions``: a client's (session, user, transaction ID) -> the event it sent.

Lets the input pipeline answer a retried client request with the event the first attempt
created, instead of sending the event twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._base import Table, chunks

TransactionKey = tuple[int, str, str]
"""(session ID, user ID, transaction ID)"""


class Transactions(Table):
    __slots__ = ()

    async def insert(
        self, session_id: int, user_id: str, transaction_id: str, event_id: str
    ) -> str:
        """Record the transaction; returns the event ID it maps to (the first one recorded,
        if the transaction was seen before)."""
        row = await self._conn.fetchrow(
            "INSERT INTO transactions (session_id, user_id, transaction_id, event_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING event_id",
            session_id,
            user_id,
            transaction_id,
            event_id,
        )
        if row is not None:
            return str(row[0])
        existing = await self.event_id(session_id, user_id, transaction_id)
        if existing is None:
            raise RuntimeError("transaction row vanished while being recorded")
        return existing

    async def insert_new(self, rows: Sequence[tuple[int, str, str, str]]) -> None:
        """Record transactions not seen before: (session ID, user ID, transaction ID, event
        ID) rows, a statement per chunk (one seen before keeps its first event)."""
        d = self._conn.dialect
        for part in chunks(list(rows), d.chunk_rows(4)):
            await self._conn.execute(
                "INSERT INTO transactions (session_id, user_id, transaction_id, event_id)"
                f" {d.rows(['bigint', 'text', 'text', 'text'], len(part))}"
                " ON CONFLICT DO NOTHING",
                *d.row_args(part, 4),
            )

    async def event_id(self, session_id: int, user_id: str, transaction_id: str) -> str | None:
        value = await self._conn.fetchval(
            "SELECT event_id FROM transactions"
            " WHERE session_id = $1 AND user_id = $2 AND transaction_id = $3",
            session_id,
            user_id,
            transaction_id,
        )
        return None if value is None else str(value)

    async def event_ids(self, keys: Sequence[TransactionKey]) -> dict[TransactionKey, str]:
        """The events recorded for the transactions among ``keys`` that were seen."""
        d = self._conn.dialect
        found: dict[TransactionKey, str] = {}
        for part in chunks(list(dict.fromkeys(keys)), d.chunk_rows(3)):
            rows = await self._conn.fetch(
                f"WITH k(s, u, x) AS ({d.rows(['bigint', 'text', 'text'], len(part))})"
                " SELECT t.session_id, t.user_id, t.transaction_id, t.event_id"
                " FROM transactions AS t JOIN k"
                " ON t.session_id = k.s AND t.user_id = k.u AND t.transaction_id = k.x",
                *d.row_args(part, 3),
            )
            found.update(((s, u, x), str(e)) for s, u, x, e in rows)
        return found
