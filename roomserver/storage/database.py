"""The thin seam between the table logic and a database driver.

Every table is written once, in PostgreSQL's SQL with ``$1`` placeholders, over the
:class:`Connection` protocol. The two backends (:mod:`.postgres`, :mod:`.sqlite`) implement
it; where SQL itself differs (list parameters, bulk row sources, locks) the table code asks
the connection's :class:`Dialect` for the fragment. Nothing else differs between them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

Row = Sequence[Any]
"""A result row: index it or unpack it (asyncpg ``Record`` and sqlite tuples both do)."""


class Backend(enum.Enum):
    POSTGRES = "postgres"
    SQLITE = "sqlite"


class LockKey(enum.IntEnum):
    """Application-wide PostgreSQL advisory lock keys (arbitrary, fixed, documented)."""

    MIGRATIONS = 0x726F6F6D_0001
    OUTPUT_LOG = 0x726F6F6D_0002
    STATE_GC = 0x726F6F6D_0003


@dataclass(frozen=True)
class Dialect:
    """The SQL fragments in which the backends differ."""

    backend: Backend
    max_params: int
    """How many bind parameters one statement may carry."""

    @property
    def is_postgres(self) -> bool:
        return self.backend is Backend.POSTGRES

    def any(self, param: int, sqltype: str) -> str:
        """``<column> {any}``: membership in the list bound at ``$param``.

        PostgreSQL binds the list as an array; SQLite gets it as JSON text (the backend
        encodes list arguments) and reads it back with ``json_each``. Only for ``sqltype``
        ``bigint``/``integer``/``text``: JSON has no bytes.
        """
        if self.is_postgres:
            return f"= ANY(${param}::{sqltype}[])"
        return f"IN (SELECT value FROM json_each(${param}))"

    def rows(self, sqltypes: Sequence[str], nrows: int, first_param: int = 1) -> str:
        """A row source of ``nrows`` rows for ``WITH name(cols) AS (...)``.

        Bind its arguments with :meth:`row_args`. PostgreSQL unnests one array per column
        (so the statement text, and its prepared plan, do not depend on the row count);
        SQLite gets a ``VALUES`` list.
        """
        if self.is_postgres:
            arrays = ", ".join(f"${first_param + i}::{t}[]" for i, t in enumerate(sqltypes))
            return f"SELECT * FROM unnest({arrays})"
        width = len(sqltypes)
        tuples = (
            "(" + ", ".join(f"${first_param + r * width + c}" for c in range(width)) + ")"
            for r in range(nrows)
        )
        return "VALUES " + ", ".join(tuples)

    def row_args(self, rows: Sequence[Sequence[Any]], width: int) -> list[Any]:
        if self.is_postgres:
            return [[row[c] for row in rows] for c in range(width)]
        return [value for row in rows for value in row]

    def chunk_rows(self, width: int) -> int:
        """How many rows of ``width`` columns one :meth:`rows` statement may take."""
        return 5000 if self.is_postgres else max(1, (self.max_params - 16) // width)

    @property
    def for_update(self) -> str:
        """Row lock suffix: SQLite has a single writer, so the transaction already is one."""
        return " FOR UPDATE" if self.is_postgres else ""

    def xact_lock(self, key: LockKey, *, shared: bool = False) -> str | None:
        """A statement taking a transaction-scoped lock, or None where writers are serial."""
        if not self.is_postgres:
            return None
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        return f"SELECT {fn}({int(key)})"


class Connection(Protocol):
    """One database connection, in or out of a transaction."""

    dialect: Dialect
    flags: set[str]
    """Markers that live as long as the connection's current use (e.g. "this transaction
    already holds lock X"), owned by the table code."""

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...

    async def script(self, sql: str) -> None:
        """Run several ``;``-separated statements (a migration file)."""
        ...


class Database(Protocol):
    """A pool of connections to one database."""

    dialect: Dialect

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A connection inside a write transaction, committed when the block exits cleanly.

        PostgreSQL: READ COMMITTED on a pooled connection. SQLite: the single writer
        connection, ``BEGIN IMMEDIATE`` (so writers of other processes wait for it).
        """
        ...

    def connection(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads outside a transaction (each statement sees the latest
        committed data)."""
        ...

    async def close(self) -> None: ...


class DatabaseError(Exception):
    """A storage operation failed in a way callers may want to name (bad URL, schema)."""


async def reserve_ids(conn: Connection, table: str, column: str, count: int) -> list[int]:
    """``count`` new values of ``table.column``'s ID sequence, for rows inserted later with
    explicit IDs (in the same transaction on SQLite, whose single writer makes this safe).

    The one place where the backends' SQL differs in kind: PostgreSQL draws from the
    column's sequence; SQLite advances the ``AUTOINCREMENT`` counter in ``sqlite_sequence``.
    """
    if count <= 0:
        return []
    if conn.dialect.is_postgres:
        rows = await conn.fetch(  # OFFSET 0: the sequence is looked up once, not per value
            f"SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence('{table}', '{column}')"
            "::regclass AS seq OFFSET 0) AS s, generate_series(1, $1)",
            count,
        )
        return [int(r[0]) for r in rows]
    await conn.execute(  # the counter's row appears with the table's first insert
        "INSERT INTO sqlite_sequence (name, seq) SELECT $1, 0"
        " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = $1)",
        table,
    )
    top = await conn.fetchval(
        "UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX("
        f"{column}), 0) FROM {table})) + $1 WHERE name = $2 RETURNING seq",
        count,
        table,
    )
    return list(range(int(top) - count + 1, int(top) + 1))


def parse_url(url: str) -> tuple[Backend, str]:
    """``postgresql://…`` or ``sqlite:///relative.db`` / ``sqlite:////absolute.db`` /
    ``sqlite://`` (in memory) -> the backend and what its driver connects to."""
    if url.startswith(("postgresql://", "postgres://")):
        return Backend.POSTGRES, url
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if rest in ("", "/", "/:memory:"):
            return Backend.SQLITE, ":memory:"
        if not rest.startswith("/"):
            raise DatabaseError(
                f"bad SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db"
            )
        return Backend.SQLITE, rest[1:].split("?", 1)[0]
    raise DatabaseError(f"unsupported database URL {url!r}: use postgresql:// or sqlite://")


async def open_database(url: str, **options: Any) -> Database:
    """Connect to ``url`` (see :func:`parse_url`); ``options`` go to the backend."""
    backend, target = parse_url(url)
    if backend is Backend.POSTGRES:
        from .postgres import PostgresDatabase

        return await PostgresDatabase.connect(target, **options)
    from .sqlite import SqliteDatabase

    return await SqliteDatabase.connect(target, **options)
