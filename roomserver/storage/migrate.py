"""Schema migrations: numbered SQL files, applied in order, each in its own transaction.

The files live in the top-level ``migrations/<backend>/NNNN_name.sql`` folders, shipped
inside the package as ``roomserver/storage/migrations`` (a link to them in the source tree,
package data in an installed wheel). Applied versions are recorded in ``schema_version``.

Safe when several processes start at once: every migration transaction first takes a lock
(PostgreSQL: a transaction-scoped advisory lock; SQLite: ``BEGIN IMMEDIATE``, the database's
write lock), then re-reads the applied versions, so each file runs exactly once. A database
whose schema is newer than the code knows is refused before anything runs.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable

from .database import Backend, Connection, Database, DatabaseError, LockKey, open_database

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)
"""


class SchemaTooNewError(DatabaseError):
    """The database was migrated by a newer roomserver; this one must not touch it."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)


def _migrations_root() -> Traversable:
    return resources.files("roomserver.storage").joinpath("migrations")


def available_migrations(backend: Backend) -> list[Migration]:
    """The migrations this code knows for ``backend``, in order."""
    folder = _migrations_root().joinpath(backend.value)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if not found:
        raise DatabaseError(f"no migrations found in {folder}")
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise DatabaseError(f"migrations of {backend.value} are not numbered 1..n: {versions}")
    return found


async def _applied(conn: Connection) -> dict[int, str]:
    rows = await conn.fetch("SELECT version, name FROM schema_version")
    return {int(version): str(name) for version, name in rows}


def _check_not_newer(applied: dict[int, str], known: list[Migration]) -> None:
    known_versions = {m.version for m in known}
    unknown = sorted(v for v in applied if v not in known_versions)
    if unknown:
        raise SchemaTooNewError(
            f"the database schema is at version {max(applied)}, newer than this roomserver "
            f"knows (up to {max(known_versions)}): applied migrations {unknown} are unknown. "
            "Run a roomserver at least as new as the one that migrated this database."
        )


async def schema_version(db: Database) -> int:
    """The highest applied migration (0 for an empty database)."""
    async with db.transaction() as conn:
        await conn.execute(_SCHEMA_VERSION_TABLE)
        return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def apply_migrations(db: Database) -> list[Migration]:
    """Bring ``db`` to the newest schema; returns the migrations this call applied."""
    known = available_migrations(db.dialect.backend)
    applied_now: list[Migration] = []
    for migration in known:
        async with db.transaction() as conn:
            lock = db.dialect.xact_lock(LockKey.MIGRATIONS)
            if lock is not None:
                await conn.execute(lock)
            await conn.execute(_SCHEMA_VERSION_TABLE)
            applied = await _applied(conn)
            _check_not_newer(applied, known)  # checked under the lock, before anything runs
            if migration.version in applied:
                continue
            await conn.script(migration.sql)
            await conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                int(time.time() * 1000),
            )
            applied_now.append(migration)
    return applied_now


async def migrate(url: str) -> list[Migration]:
    """``roomserver migrate``: connect to ``url``, apply what is pending, disconnect."""
    db = await open_database(url)
    try:
        return await apply_migrations(db)
    finally:
        await db.close()
