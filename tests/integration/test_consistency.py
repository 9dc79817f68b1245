"""The consistency checker finds what it claims to find.

A forked room (with a rejected and a soft-failed event) goes in through the input pipeline;
the checker must find nothing. Then each kind of damage the crash and two-process tests look
for is done to the database inside a transaction, the checker runs on that transaction's
connection (so it sees the damage), must name it, and the transaction is rolled back.
Both backends.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest

from roomserver.input import Input, InputEvent, InputKind
from roomserver.storage import Storage, Tables
from roomserver.storage.codec import pack_nids

from .consistency import check_tables
from .streams import ACCEPTED, REJECTED, SOFT_FAILED, StreamEvent, build_stream


class _Rollback(Exception):
    pass


async def _filled(storage: Storage) -> list[StreamEvent]:
    _, stream = build_stream(random.Random(7), [("10", True)], 80)
    results = await Input(storage).input_room_events(
        [InputEvent(InputKind.NEW, e.event) for e in stream]
    )
    assert [r.outcome.value for r in results] == [e.expected for e in stream]
    assert {e.expected for e in stream} == {ACCEPTED, REJECTED, SOFT_FAILED}
    return stream


async def _problems_after(storage: Storage, damage: Callable[[Tables], Awaitable[None]]) -> str:
    found: list[str] = []
    with pytest.raises(_Rollback):
        async with storage.transaction() as tx:
            await damage(tx)
            found = await check_tables(tx)
            raise _Rollback
    return "\n".join(found)


async def _nid(tx: Tables, event_id: str) -> int:
    return int((await tx.events.nids([event_id]))[event_id])


async def test_checker_finds_each_kind_of_damage(storage: Storage) -> None:
    stream = await _filled(storage)
    async with storage.read() as r:
        assert await check_tables(r) == []
        room = await r.rooms.get(stream[0].event.room_id)
    assert room is not None and room.latest_event_nids
    conn_sql = "UPDATE rooms SET latest_event_nids = $1 WHERE room_nid = $2"
    accepted = [e for e in stream if e.expected == ACCEPTED]
    soft_failed = next(e for e in stream if e.expected == SOFT_FAILED)

    async def lose_a_latest_event(tx: Tables) -> None:  # a lost update
        await tx.conn.execute(conn_sql, pack_nids(room.latest_event_nids[1:]), room.room_nid)

    async def soft_failed_as_latest(tx: Tables) -> None:
        nids = [*room.latest_event_nids, await _nid(tx, soft_failed.event_id)]
        await tx.conn.execute(conn_sql, pack_nids(nids), room.room_nid)

    async def wrong_snapshot(tx: Tables) -> None:  # the state before the create event
        first = await _nid(tx, stream[0].event_id)
        empty = await tx.conn.fetchval(
            "SELECT state_snapshot_nid FROM events WHERE event_nid = $1", first
        )
        await tx.conn.execute(
            "UPDATE events SET state_snapshot_nid = $1 WHERE event_nid = $2",
            empty,
            await _nid(tx, accepted[-1].event_id),
        )

    async def output_gap(tx: Tables) -> None:
        await tx.conn.execute("DELETE FROM output_log WHERE position = 3")

    async def output_duplicate(tx: Tables) -> None:
        head = await tx.output.head()
        payload = await tx.conn.fetchval("SELECT payload FROM output_log WHERE position = 5")
        await tx.conn.execute(
            "INSERT INTO output_log (position, payload) VALUES ($1, $2)", head + 1, payload
        )

    async def accepted_marked_soft_failed(tx: Tables) -> None:
        await tx.events.set_soft_failed([await _nid(tx, accepted[-1].event_id)], True)

    async def membership_lost(tx: Tables) -> None:
        await tx.conn.execute(
            "DELETE FROM memberships WHERE room_nid = $1 AND target_nid ="
            " (SELECT MAX(target_nid) FROM memberships WHERE room_nid = $1)",
            room.room_nid,
        )

    cases: list[tuple[Callable[[Tables], Awaitable[None]], str]] = [
        (lose_a_latest_event, "are not the forward extremities"),
        (soft_failed_as_latest, f"extra ['{soft_failed.event_id}']"),
        (wrong_snapshot, f"wrong state before {accepted[-1].event_id}"),
        (output_gap, "gaps [3]"),
        (output_duplicate, "in 2 new_room_event rows"),
        (accepted_marked_soft_failed, "(rejected, soft-failed or outlier) is in 1"),
        (membership_lost, "is None, expected"),
    ]
    for damage, expected in cases:
        report = await _problems_after(storage, damage)
        assert expected in report, (damage.__name__, report)
    async with storage.read() as r:  # every damage was rolled back
        assert await check_tables(r) == []
