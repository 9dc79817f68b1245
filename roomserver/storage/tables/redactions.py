"""``redactions``: which event each redaction redacts, and whether it was validated.

Kept by event ID: a redaction may arrive before the event it redacts. It is *validated* once
both are stored and the redaction was found allowed (same sender, or enough power); only then
is the redacted event served redacted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._base import Table, chunks, unique


@dataclass(frozen=True, slots=True)
class RedactionInfo:
    redaction_event_id: str
    redacts_event_id: str
    validated: bool


class Redactions(Table):
    __slots__ = ()

    async def insert(self, redactions: Sequence[tuple[str, str]]) -> None:
        """Record ``(redaction event ID, redacted event ID)`` pairs; repeats are ignored."""
        d = self._conn.dialect
        for part in chunks(unique(redactions), d.chunk_rows(2)):
            await self._conn.execute(
                "INSERT INTO redactions (redaction_event_id, redacts_event_id)"
                f" {d.rows(['text', 'text'], len(part))} ON CONFLICT DO NOTHING",
                *d.row_args(part, 2),
            )

    async def redacting(self, event_ids: Sequence[str]) -> list[RedactionInfo]:
        """The redactions of any of ``event_ids``."""
        d = self._conn.dialect
        rows = await self._conn.fetch(
            "SELECT redaction_event_id, redacts_event_id, validated FROM redactions"
            f" WHERE redacts_event_id {d.any(1, 'text')} ORDER BY redaction_event_id",
            unique(event_ids),
        )
        return [RedactionInfo(r[0], r[1], bool(r[2])) for r in rows]

    async def get(self, redaction_event_ids: Sequence[str]) -> dict[str, RedactionInfo]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            "SELECT redaction_event_id, redacts_event_id, validated FROM redactions"
            f" WHERE redaction_event_id {d.any(1, 'text')}",
            unique(redaction_event_ids),
        )
        return {r[0]: RedactionInfo(r[0], r[1], bool(r[2])) for r in rows}

    async def mark_validated(
        self, redaction_event_ids: Sequence[str], validated: bool = True
    ) -> None:
        d = self._conn.dialect
        await self._conn.execute(
            f"UPDATE redactions SET validated = $2 WHERE redaction_event_id {d.any(1, 'text')}",
            unique(redaction_event_ids),
            validated,
        )
