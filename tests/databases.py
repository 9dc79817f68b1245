"""Throwaway test databases on SQLite and PostgreSQL (helpers shared by the fixtures in
tests/conftest.py and by tests that start their own service processes).

PostgreSQL: ``postgresql://root@127.0.0.1:5432/`` (``ROOMSERVER_TEST_POSTGRES_URL`` overrides
it). When PostgreSQL does not answer, its tests are skipped, except with ``CI=true``, where
they fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
import pytest

POSTGRES_URL = os.environ.get(
    "ROOMSERVER_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
_PREFIX = "rs_test_"
T = TypeVar("T")
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def postgres_url(database: str) -> str:
    """``POSTGRES_URL`` pointing at another database of the same server."""
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{database}"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a private event loop in another thread, so that sync
    fixtures can use asyncpg whatever loop pytest-asyncio is running."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin_execute(*statements: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _drop_stale_databases() -> None:
    """Drop test databases left by sessions that died (their PID is in the name)."""
    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        names = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", _PREFIX + "%"
        )
        for (name,) in names:
            parts = name[len(_PREFIX) :].split("_")
            if len(parts) == 3 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _new_name(kind: str) -> str:
    return f"{_PREFIX}{kind}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


_postgres_error: list[BaseException | None] = []
"""Filled on first use: [None] if PostgreSQL answered, [the error] if not."""


def require_postgres() -> None:
    """Skip the test if PostgreSQL does not answer (fail instead when ``CI=true``)."""
    if not _postgres_error:
        try:
            run_async(_drop_stale_databases())
            _postgres_error.append(None)
        except (TimeoutError, OSError, asyncpg.PostgresError) as e:
            _postgres_error.append(e)
    error = _postgres_error[0]
    if error is not None:
        message = f"PostgreSQL is not reachable at {POSTGRES_URL}: {error!r}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)


def create_postgres_database(template: str | None = None) -> str:
    """A new database (a copy of ``template`` if given); returns its name."""
    require_postgres()
    name = _new_name("db")
    if template is None:
        run_async(_admin_execute(f'CREATE DATABASE "{name}"'))
        return name
    try:  # PostgreSQL 15+: copying the files is 5x faster than WAL-logging a small template
        run_async(
            _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        )
    except asyncpg.PostgresSyntaxError:
        run_async(_admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return name


def drop_postgres_database(name: str) -> None:
    run_async(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
