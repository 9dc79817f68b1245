"""The input pipeline's cache of committed rows, and the LRU under it."""

from __future__ import annotations

import pytest

from roomserver.input.committed import CommittedRows
from roomserver.lru import LRU
from roomserver.storage.tables import EventInfo, RoomInfo, RoomUpdate

ROOM = RoomInfo(7, "!a:x", "10", (1,), 1, 3, write_count=4)


def info(event_id: str, nid: int) -> EventInfo:
    return EventInfo(nid, event_id, 7, 10, None, 1, 3, (), False, False, False, "")


def test_reads_only_when_every_row_but_the_new_events_is_here() -> None:
    rows = CommittedRows()
    assert rows.read(["!a:x"], [], []) is None  # the room is not here
    rows.add({"!a:x": ROOM}, [], [info("$prev", 1)])
    got = rows.read(["!a:x"], ["$prev", "$new"], ["$new"])
    assert got is not None
    assert got.rooms == {"!a:x": ROOM} and list(got.known) == ["$prev"] and got.late == set()
    assert rows.read(["!a:x"], ["$prev", "$other"], ["$new"]) is None  # $other: ask the db


def test_outliers_are_not_kept() -> None:
    """Another process may give an outlier its state: its row is read from the database."""
    rows = CommittedRows()
    outlier = EventInfo(2, "$out", 7, 10, None, 1, None, (), True, False, False, "")
    rows.add({"!a:x": ROOM}, [], [info("$prev", 1), outlier])
    assert rows.read(["!a:x"], ["$prev", "$out"], ["$new"]) is None
    rows.add({}, [], [info("$out", 2)])  # given its state: kept from now on
    got = rows.read(["!a:x"], ["$prev", "$out"], ["$new"])
    assert got is not None and not got.known["$out"].is_outlier


def test_a_written_room_is_kept_as_written_and_forgotten_on_demand() -> None:
    rows = CommittedRows()
    rows.add({"!a:x": ROOM}, [RoomUpdate(ROOM, [2], 2, 5)], [])
    got = rows.read(["!a:x"], [], [])
    assert got is not None
    assert got.rooms["!a:x"] == RoomInfo(7, "!a:x", "10", (2,), 2, 5, write_count=5)
    rows.forget_rooms(["!a:x"])
    assert rows.read(["!a:x"], [], []) is None


def test_lru_drops_the_least_recently_used() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "b" is now the oldest
    lru.put("c", 3)
    assert "b" not in lru and lru.get("a") == 1 and lru.get("c") == 3 and len(lru) == 2
    lru.pop("a")
    lru.pop("missing")
    assert len(lru) == 1
    with pytest.raises(ValueError):
        LRU(0)
