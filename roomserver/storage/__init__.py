"""Storage: numeric IDs, events, state snapshots and blocks, behind one async interface.

Two backends, PostgreSQL (asyncpg) and SQLite (sqlite3 and aiosqlite), share every line of
table logic (:mod:`.tables`); they differ only in :mod:`.postgres` / :mod:`.sqlite` and the
SQL fragments of :class:`.database.Dialect`. See docs/storage.md.
"""

from .database import Backend, Connection, Database, DatabaseError, open_database, parse_url
from .migrate import (
    Migration,
    SchemaTooNewError,
    apply_migrations,
    available_migrations,
    migrate,
    schema_version,
)
from .store import Storage
from .tables import (
    EventInfo,
    InviteInfo,
    MembershipInfo,
    NewEvent,
    NewSnapshot,
    OutputRow,
    RedactionInfo,
    RoomInfo,
    SnapshotRow,
    Tables,
)

__all__ = [
    "Backend",
    "Connection",
    "Database",
    "DatabaseError",
    "EventInfo",
    "InviteInfo",
    "MembershipInfo",
    "Migration",
    "NewEvent",
    "NewSnapshot",
    "OutputRow",
    "RedactionInfo",
    "RoomInfo",
    "SchemaTooNewError",
    "SnapshotRow",
    "Storage",
    "Tables",
    "apply_migrations",
    "available_migrations",
    "migrate",
    "open_database",
    "parse_url",
    "schema_version",
]
