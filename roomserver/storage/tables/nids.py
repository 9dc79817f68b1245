"""``event_types`` and ``event_state_keys``: strings <-> NIDs, assigned once, race-safe.

Assignment inserts the missing strings with ``ON CONFLICT DO NOTHING`` and reads back every
NID: when many transactions ask for the same new string at once, the unique index lets one
insert win and the others (PostgreSQL: after waiting for the winner to commit) read its NID.
Strings are inserted sorted, so two batches never wait on each other in opposite orders.

The mappings never change once committed, so :class:`NIDCache` keeps them in memory. It is
filled only with committed rows (reads outside a transaction, and assignments after their
transaction committed, see :class:`~roomserver.storage.Storage`), never with a row a
transaction that may still roll back inserted.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import ClassVar

from ..database import Connection
from ._base import Table, chunks, unique


class NIDCache:
    """A bounded two-way LRU map between strings and NIDs."""

    __slots__ = ("_by_nid", "_by_string", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._by_string: OrderedDict[str, int] = OrderedDict()
        self._by_nid: dict[int, str] = {}

    def nid(self, string: str) -> int | None:
        nid = self._by_string.get(string)
        if nid is not None:
            self._by_string.move_to_end(string)
        return nid

    def string(self, nid: int) -> str | None:
        return self._by_nid.get(nid)

    def add(self, pairs: Iterable[tuple[str, int]]) -> None:
        for string, nid in pairs:
            self._by_string[string] = nid
            self._by_string.move_to_end(string)
            self._by_nid[nid] = string
        while len(self._by_string) > self.max_size:
            _, evicted = self._by_string.popitem(last=False)
            self._by_nid.pop(evicted, None)

    def __len__(self) -> int:
        return len(self._by_string)


class _StringNIDs(Table):
    """One string <-> NID table."""

    __slots__ = ("_cache", "_committed")

    _table: ClassVar[str]
    _nid: ClassVar[str]
    _string: ClassVar[str]

    def __init__(self, conn: Connection, cache: NIDCache, *, committed: bool) -> None:
        super().__init__(conn)
        self._cache = cache
        self._committed = committed
        """True outside a transaction: every row this connection reads is committed."""

    async def nids(self, strings: Sequence[str]) -> dict[str, int]:
        """NIDs of the ``strings`` that have one (unknown strings are left out)."""
        found: dict[str, int] = {}
        missing: list[str] = []
        for s in unique(strings):
            nid = self._cache.nid(s)
            if nid is None:
                missing.append(s)
            else:
                found[s] = nid
        if missing:
            fetched = await self._select(missing)
            if self._committed:
                self._cache.add(fetched.items())
            found.update(fetched)
        return found

    async def assign(self, strings: Sequence[str]) -> dict[str, int]:
        """NIDs of all ``strings``, assigning new ones to unknown strings."""
        found = await self.nids(strings)
        missing = sorted(s for s in unique(strings) if s not in found)
        if missing:
            d = self._conn.dialect
            for part in chunks(missing, d.chunk_rows(1)):
                await self._conn.execute(
                    f"INSERT INTO {self._table} ({self._string}) {d.rows(['text'], len(part))}"
                    f" ON CONFLICT ({self._string}) DO NOTHING",
                    *d.row_args([(s,) for s in part], 1),
                )
            found.update(await self._select(missing))
        return found

    async def strings(self, nids: Sequence[int]) -> dict[int, str]:
        """The strings of the given NIDs (unknown NIDs are left out)."""
        found: dict[int, str] = {}
        missing: list[int] = []
        for nid in unique(nids):
            s = self._cache.string(nid)
            if s is None:
                missing.append(nid)
            else:
                found[nid] = s
        if missing:
            d = self._conn.dialect
            rows = await self._conn.fetch(
                f"SELECT {self._string}, {self._nid} FROM {self._table}"
                f" WHERE {self._nid} {d.any(1, 'bigint')}",
                missing,
            )
            if self._committed:
                self._cache.add((s, n) for s, n in rows)
            found.update((n, s) for s, n in rows)
        return found

    async def _select(self, strings: Sequence[str]) -> dict[str, int]:
        d = self._conn.dialect
        rows = await self._conn.fetch(
            f"SELECT {self._string}, {self._nid} FROM {self._table}"
            f" WHERE {self._string} {d.any(1, 'text')}",
            list(strings),
        )
        return {s: n for s, n in rows}


class EventTypes(_StringNIDs):
    """Event type strings <-> NIDs (well-known types are preassigned)."""

    __slots__ = ()
    _table = "event_types"
    _nid = "event_type_nid"
    _string = "event_type"


class EventStateKeys(_StringNIDs):
    """State key strings <-> NIDs (the empty state key is NID 1)."""

    __slots__ = ()
    _table = "event_state_keys"
    _nid = "event_state_key_nid"
    _string = "event_state_key"
