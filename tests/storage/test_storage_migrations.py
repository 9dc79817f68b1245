"""Migrations on both backends: from empty, re-run, newer schema refused, concurrent starts."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from roomserver.storage import (
    Backend,
    SchemaTooNewError,
    Storage,
    available_migrations,
    migrate,
    open_database,
    schema_version,
)

TABLES = {
    "backward_extremities",
    "event_json",
    "event_state_keys",
    "event_types",
    "events",
    "invites",
    "memberships",
    "output_log",
    "previous_events",
    "redactions",
    "room_aliases",
    "rooms",
    "schema_version",
    "state_blocks",
    "state_snapshots",
    "transactions",
}


async def _tables(url: str) -> set[str]:
    db = await open_database(url)
    try:
        async with db.connection() as conn:
            if db.dialect.backend is Backend.POSTGRES:
                rows = await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            else:
                rows = await conn.fetch(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
        return {name for (name,) in rows}
    finally:
        await db.close()


def test_migrations_are_packaged_for_both_backends() -> None:
    for backend in Backend:
        found = available_migrations(backend)
        assert [m.version for m in found] == list(range(1, len(found) + 1))
        assert found[0].name == "initial" and "CREATE TABLE events" in found[0].sql
    assert len(available_migrations(Backend.POSTGRES)) == len(available_migrations(Backend.SQLITE))


async def test_migrate_from_empty_then_rerun(empty_database_url: str) -> None:
    applied = await migrate(empty_database_url)
    assert [m.version for m in applied] == [
        m.version for m in available_migrations(Backend.POSTGRES)
    ]
    assert await _tables(empty_database_url) == TABLES
    assert await migrate(empty_database_url) == []  # nothing left to do
    db = await open_database(empty_database_url)
    try:
        assert await schema_version(db) == len(applied)
        async with db.connection() as conn:
            rows = await conn.fetch("SELECT version, name FROM schema_version ORDER BY version")
        assert [(v, n) for v, n in rows] == [(m.version, m.name) for m in applied]
    finally:
        await db.close()


async def test_preassigned_rows(database_url: str) -> None:
    db = await open_database(database_url)
    try:
        async with db.connection() as conn:
            assert (
                await conn.fetchval(
                    "SELECT event_state_key_nid FROM event_state_keys WHERE event_state_key = ''"
                )
                == 1
            )
            assert (
                await conn.fetchval(
                    "SELECT event_type_nid FROM event_types WHERE event_type = 'm.room.member'"
                )
                == 5
            )
    finally:
        await db.close()


async def test_newer_schema_is_refused(database_url: str) -> None:
    db = await open_database(database_url)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 0)"
            )
    finally:
        await db.close()
    with pytest.raises(SchemaTooNewError, match="newer than this roomserver knows"):
        await migrate(database_url)
    with pytest.raises(SchemaTooNewError):
        await Storage.open(database_url)


async def test_concurrent_migrators_apply_each_file_once(empty_database_url: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database_url) for _ in range(6)))
    applied = sorted(m.version for result in results for m in result)
    assert applied == [m.version for m in available_migrations(Backend.SQLITE)]
    assert await _tables(empty_database_url) == TABLES


def test_two_processes_migrate_at_once(empty_database_url: str) -> None:
    code = (
        "import asyncio, sys\n"
        "from roomserver.storage import migrate\n"
        "print(len(asyncio.run(migrate(sys.argv[1]))))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, empty_database_url], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    counts = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        counts.append(int(out.strip()))
    # Each migration runs in its own transaction: the two may share the work, never repeat it.
    assert sum(counts) == len(available_migrations(Backend.SQLITE))
