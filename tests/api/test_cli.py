"""The operator's commands, run as a user would run them, on both backends."""

from __future__ import annotations

import pytest

from roomserver.cli import main


def test_migrate_then_gc(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROOMSERVER_DATABASE_URL", database_url)
    main(["migrate"])  # the fixture's database is migrated already
    assert "up to date" in capsys.readouterr().out
    main(["gc", "--dry-run"])
    assert "would remove 0 state snapshots" in capsys.readouterr().out


def test_bad_configuration_is_a_clear_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMSERVER_DATABASE_URL", "mysql://nope")
    with pytest.raises(SystemExit, match="bad configuration"):
        main(["migrate"])
