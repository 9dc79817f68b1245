"""Shared fixtures: a fresh database for each test, on SQLite and on PostgreSQL.

- ``database_url``: a fresh, migrated database, parametrized over both backends (tests that
  use it run twice: ``[sqlite]`` and ``[postgres]``);
- ``empty_database_url``: the same without migrations (for migration tests);
- ``storage``: a :class:`~roomserver.storage.Storage` open on ``database_url``.

PostgreSQL: ``postgresql://root@127.0.0.1:5432/`` (``ROOMSERVER_TEST_POSTGRES_URL`` overrides
it). The schema is migrated once per session into a template database; each test gets a copy
(``CREATE DATABASE … TEMPLATE``), dropped afterwards. When PostgreSQL does not answer, its
tests are skipped, except with ``CI=true``, where they fail. SQLite: each test gets a copy of a
migrated file.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from databases import (
    BACKENDS,
    create_postgres_database,
    drop_postgres_database,
    postgres_url,
    require_postgres,
    run_async,
)

from roomserver.storage import Storage, migrate


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs PostgreSQL (skipped outside CI if down)")


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a database migrated once per session, to copy for each test."""
    name = create_postgres_database()
    try:
        run_async(migrate(postgres_url(name)))
        yield name
    finally:
        drop_postgres_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    run_async(migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgres"``: tests using it (or the fixtures below) run on both."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of ``backend``, deleted after the test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "roomserver.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    require_postgres()
    name = create_postgres_database(request.getfixturevalue("postgres_template"))
    try:
        yield postgres_url(name)
    finally:
        drop_postgres_database(name)


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database of ``backend`` without any table, deleted after the test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = create_postgres_database()
    try:
        yield postgres_url(name)
    finally:
        drop_postgres_database(name)


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    """Storage open on a fresh migrated database of each backend."""
    store = await Storage.open(database_url)
    try:
        yield store
    finally:
        await store.close()
