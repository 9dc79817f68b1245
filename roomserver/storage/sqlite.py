"""The SQLite backend: sqlite3 and aiosqlite connections behind the
:class:`~.database.Connection` protocol.

One writer connection, shared by every write transaction in turn (SQLite has one writer per
database anyway, and one connection is faster than several fighting for the lock), plus a few
read-only connections (aiosqlite) that WAL mode lets read while the writer writes.

Inside a write transaction, statements run directly on the event loop's thread
(:class:`SqliteWriteConnection`): the statements of an input request take microseconds each,
while handing one to another thread and back costs ~0.1 ms on a small machine (two thread
wake-ups), and a one-event request makes a dozen. Only what may wait runs on the writer's own
thread: ``BEGIN IMMEDIATE`` (for another process's write lock, up to the busy timeout),
``COMMIT`` (the fsync) and ``ROLLBACK``. The write lock keeps the two threads from using the
connection at once. The price: a long statement in a write transaction (a big migration, a
whole large state written at once) holds the event loop for its duration.

The table code's PostgreSQL-style SQL is adapted here: ``$n`` placeholders become SQLite's
``?`` (arguments reordered to match), and list arguments are bound as JSON text for
``json_each``.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import lru_cache, partial
from typing import Any

import aiosqlite
import orjson

from .database import Backend, Dialect, Row

SQLITE = Dialect(Backend.SQLITE, max_params=32766)

_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=1024)
def _translate(sql: str) -> tuple[str, tuple[int, ...]]:
    """``$n`` placeholders -> anonymous ``?`` and the argument index each one takes.

    Not SQLite's own ``?n``: its parser looks numbered parameters up linearly, which makes
    a statement of a few thousand rows take a second to prepare instead of milliseconds.
    """
    order: list[int] = []

    def anonymous(match: re.Match[str]) -> str:
        order.append(int(match[1]) - 1)
        return "?"

    return _PLACEHOLDER.sub(anonymous, sql), tuple(order)


def _value(arg: Any) -> Any:
    if isinstance(arg, (list, tuple, set, frozenset)):
        return orjson.dumps(list(arg)).decode()  # read back by json_each
    return arg


def _bind(order: tuple[int, ...], args: Sequence[Any]) -> list[Any]:
    values = [_value(a) for a in args]
    if len(order) == len(values) and all(i == n for n, i in enumerate(order)):
        return values
    return [values[i] for i in order]


def split_statements(script: str) -> list[str]:
    """The complete statements of ``script`` (``executescript`` would commit first)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement at the end of the script: {buffer[:80]!r}")
    return statements


class _Statements:
    """What both connection kinds derive from their ``fetch``."""

    __slots__ = ()
    dialect = SQLITE

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        raise NotImplementedError

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]


class SqliteConnection(_Statements):
    """A reader: statements run on aiosqlite's thread."""

    __slots__ = ("_conn", "flags")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.flags: set[str] = set()

    async def execute(self, sql: str, *args: Any) -> None:
        text, order = _translate(sql)
        await self._conn.execute_fetchall(text, _bind(order, args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, order = _translate(sql)
        await self._conn.executemany(text, [_bind(order, r) for r in rows])

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        text, order = _translate(sql)
        return list(await self._conn.execute_fetchall(text, _bind(order, args)))

    async def script(self, sql: str) -> None:
        for statement in split_statements(sql):
            await self._conn.execute_fetchall(statement)


class SqliteWriteConnection(_Statements):
    """The writer inside a transaction: statements run at once on the calling thread (see
    the module docstring)."""

    __slots__ = ("_conn", "flags")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.flags: set[str] = set()

    async def execute(self, sql: str, *args: Any) -> None:
        text, order = _translate(sql)
        self._conn.execute(text, _bind(order, args)).close()

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, order = _translate(sql)
        self._conn.executemany(text, [_bind(order, r) for r in rows]).close()

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        text, order = _translate(sql)
        return self._conn.execute(text, _bind(order, args)).fetchall()

    async def script(self, sql: str) -> None:
        for statement in split_statements(sql):
            self._conn.execute(statement).close()


class SqliteDatabase:
    dialect = SQLITE

    def __init__(
        self,
        writer: sqlite3.Connection,
        waits: ThreadPoolExecutor,
        readers: list[aiosqlite.Connection],
    ) -> None:
        self._writer = writer
        self._waits = waits
        """The one thread that runs the writer's statements that may wait (module docstring)."""
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers = readers
        for reader in readers:
            self._readers.put_nowait(reader)

    @classmethod
    async def connect(
        cls,
        path: str,
        *,
        readers: int = 2,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 30_000,
    ) -> SqliteDatabase:
        """``synchronous=FULL`` by default: a committed output log row survives power loss."""
        waits = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roomserver-sqlite-writer")
        loop = asyncio.get_running_loop()
        writer: sqlite3.Connection | None = None
        opened: list[aiosqlite.Connection] = []
        try:
            writer = await loop.run_in_executor(
                waits,
                partial(sqlite3.connect, path, isolation_level=None, check_same_thread=False),
            )
            for pragma in (
                f"busy_timeout = {int(busy_timeout_ms)}",
                f"synchronous = {synchronous}",
            ):
                # (a first statement may wait for another connection's lock: not on the loop)
                await loop.run_in_executor(waits, writer.execute, f"PRAGMA {pragma}")
            if path != ":memory:":
                await cls._use_wal(writer, waits, busy_timeout_ms)
                for _ in range(readers):
                    reader = await aiosqlite.connect(path, isolation_level=None)
                    opened.append(reader)
                    await reader.execute_fetchall(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                    await reader.execute_fetchall("PRAGMA query_only = ON")
        except BaseException:
            for conn in opened:  # their threads would keep the process from exiting
                await conn.close()
            if writer is not None:
                writer.close()
            waits.shutdown()
            raise
        return cls(writer, waits, opened)

    @staticmethod
    async def _use_wal(
        conn: sqlite3.Connection, waits: ThreadPoolExecutor, busy_timeout_ms: int
    ) -> None:
        """Switch a new database file to WAL (it stays so). Several processes opening a new
        file at once race for the switch, and SQLite reports that race as "locked" without
        waiting (to avoid a deadlock), so wait here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + busy_timeout_ms / 1000
        while True:
            try:
                await loop.run_in_executor(waits, conn.execute, "PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                locked = "locked" in str(e) or "busy" in str(e)
                if not locked or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.01)

    async def _on_writer_thread(self, work: Callable[[], object]) -> None:
        """Run what may wait (a lock, an fsync) on the writer's own thread, in order after
        whatever a cancelled task left queued there."""
        await asyncio.get_running_loop().run_in_executor(self._waits, work)

    def _rollback_open(self) -> None:
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")

    def _begin(self) -> None:
        self._rollback_open()  # one left open by a task cancelled mid-transaction
        self._writer.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._writer.execute("COMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteWriteConnection]:
        async with self._write_lock:
            await self._on_writer_thread(self._begin)
            try:
                yield SqliteWriteConnection(self._writer)
            except BaseException:
                await self._on_writer_thread(self._rollback_open)
                raise
            try:
                await self._on_writer_thread(self._commit)
            except BaseException:
                await self._on_writer_thread(self._rollback_open)
                raise

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SqliteConnection | SqliteWriteConnection]:
        if not self._all_readers:  # in memory: one connection, so reads wait for writes
            async with self._write_lock:
                yield SqliteWriteConnection(self._writer)
            return
        reader = await self._readers.get()
        try:
            yield SqliteConnection(reader)
        finally:
            self._readers.put_nowait(reader)

    async def close(self) -> None:
        async with self._write_lock:
            for reader in self._all_readers:
                await reader.close()
            await self._on_writer_thread(self._writer.close)
            self._waits.shutdown()
