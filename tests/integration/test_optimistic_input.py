"""The two ways in (docs/input.md): a message of a room whose rows this process saw
committed costs one statement on PostgreSQL; when another writer changed what it was decided
on, it is redone under the room locks and ends as if it had been locked from the start.

Two ``Input`` objects on one database stand for two processes: each has its own caches of
committed rows. Both backends (SQLite always takes the locked way).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from roomserver.errors import ServiceError
from roomserver.input import Input, InputEvent, InputKind
from roomserver.input.pipeline import LOCKED_ATTEMPTS
from roomserver.input.types import Outcome, TransactionRef
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version
from roomserver.state.packing import DEFAULT_PACKING
from roomserver.storage import Storage
from roomserver.storage.postgres import PostgresConnection
from roomserver.storage.tables import InputConflict, InputIO, InputWrite

from .consistency import check_database

ALICE, BOB = "@alice:a.test", "@bob:b.test"


def new_room() -> RoomBuilder:
    room = RoomBuilder(room_version("10"), ALICE)
    room.join(ALICE)
    room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.join(BOB)
    return room


async def send(
    service: Input, *events: Event, transaction: TransactionRef | None = None
) -> list[tuple[str, Outcome, str | None]]:
    results = await service.input_room_events(
        [InputEvent(InputKind.NEW, e, transaction=transaction) for e in events]
    )
    return [(r.event_id, r.outcome, r.reason) for r in results]


async def latest(storage: Storage, room_id: str) -> tuple[int, ...]:
    async with storage.read() as r:
        info = await r.rooms.get(room_id)
        assert info is not None
        return info.latest_event_nids


async def nid(storage: Storage, event_id: str) -> int:
    async with storage.read() as r:
        return (await r.events.nids([event_id]))[event_id]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement sent to PostgreSQL (a transaction's BEGIN and COMMIT included)."""
    sent: list[str] = []
    for name in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
        original = getattr(PostgresConnection, name)

        async def counted(self: Any, sql: str, *args: Any, _original: Any = original) -> Any:
            sent.append(sql)
            return await _original(self, sql, *args)

        monkeypatch.setattr(PostgresConnection, name, counted)
    import asyncpg.transaction

    for name, word in (("start", "BEGIN"), ("commit", "COMMIT")):
        original = getattr(asyncpg.transaction.Transaction, name)

        async def marked(self: Any, _original: Any = original, _word: str = word) -> Any:
            sent.append(_word)
            return await _original(self)

        monkeypatch.setattr(asyncpg.transaction.Transaction, name, marked)
    return sent


async def test_a_message_of_a_room_seen_committed_is_one_statement(
    storage: Storage, statements: list[str]
) -> None:
    service = Input(storage)
    room = new_room()
    await send(service, *room.events, room.send("m.room.message", ALICE, {"body": "first"}))
    await storage.reserve_event_nids(1)  # a block of NIDs is reserved ahead, not per request
    statements.clear()
    msg = room.send("m.room.message", BOB, {"body": "hi"})
    assert await send(service, msg) == [(msg.event_id, Outcome.ACCEPTED, None)]
    assert await latest(storage, room.room_id) == (await nid(storage, msg.event_id),)
    if storage.backend.value == "postgres":
        assert [s.split("(")[0] for s in statements[:1]] == ["SELECT roomserver_input_write"]
        assert len(statements) == 3  # the write, then the two reads of the checks above
    statements.clear()
    assert await send(service, msg) == [(msg.event_id, Outcome.ALREADY_KNOWN, None)]
    if storage.backend.value == "postgres":
        assert statements == []  # known from the rows seen committed: nothing to write


async def test_a_room_changed_by_another_writer_is_redone_under_the_locks(
    storage: Storage, database_url: str
) -> None:
    first, second = Input(storage), Input(storage)  # two processes: two sets of caches
    room = new_room()
    await send(first, *room.events)
    one = room.send("m.room.message", BOB, {"body": "one"})
    two = room.send("m.room.message", ALICE, {"body": "two"})
    three = room.send("m.room.message", BOB, {"body": "three"})
    assert await send(first, one) == [(one.event_id, Outcome.ACCEPTED, None)]
    assert await send(second, two) == [(two.event_id, Outcome.ACCEPTED, None)]
    # first's cached room row predates `two`: its write is refused, then redone locked.
    assert await send(first, three) == [(three.event_id, Outcome.ACCEPTED, None)]
    assert await latest(storage, room.room_id) == (await nid(storage, three.event_id),)
    assert await check_database(database_url) == []  # snapshots, latest events, output log


async def test_an_event_stored_by_another_writer_is_already_known(
    storage: Storage, database_url: str
) -> None:
    first, second = Input(storage), Input(storage)
    room = new_room()
    await send(first, *room.events)
    msg = room.send("m.room.message", BOB, {"body": "twice"})
    assert await send(second, msg) == [(msg.event_id, Outcome.ACCEPTED, None)]
    # first has never seen msg; its room row is stale too.
    assert await send(first, msg) == [(msg.event_id, Outcome.ALREADY_KNOWN, None)]
    assert await check_database(database_url) == []  # msg in exactly one output row


async def test_an_outlier_given_its_state_by_another_writer(
    storage: Storage, database_url: str
) -> None:
    """Outliers are never taken from the rows seen committed: once another writer has given
    one its state, this one's requests see it with its state, and neither writer gives it a
    state twice."""
    first, second = Input(storage), Input(storage)
    room = new_room()
    await send(first, *room.events)
    hop = room.send("m.room.topic", ALICE, {"topic": "an outlier first"}, "")
    after = room.send("m.room.message", BOB, {"body": "after it"})
    await first.input_room_events([InputEvent(InputKind.OUTLIER, hop)])
    assert await send(second, hop) == [(hop.event_id, Outcome.ACCEPTED, None)]
    # first saw hop stored as an outlier; it must not take it for one now.
    assert await send(first, after) == [(after.event_id, Outcome.ACCEPTED, None)]
    assert await send(first, hop) == [(hop.event_id, Outcome.ALREADY_KNOWN, None)]
    assert await latest(storage, room.room_id) == (await nid(storage, after.event_id),)
    assert await check_database(database_url) == []  # hop in exactly one output row


async def test_a_client_transaction_seen_by_another_writer_maps_to_its_first_event(
    storage: Storage,
) -> None:
    first, second = Input(storage), Input(storage)
    room = new_room()
    await send(first, *room.events)
    txn = TransactionRef(session_id=7, transaction_id="m1")
    original = room.send("m.room.message", BOB, {"body": "once"})
    retry = room.event("m.room.message", BOB, {"body": "once"})  # the client's retry
    assert await send(first, original, transaction=txn) == [
        (original.event_id, Outcome.ACCEPTED, None)
    ]
    for service in (second, first):  # a fresh process, then the one that stored it
        answer = await send(service, retry, transaction=txn)
        assert answer == [(original.event_id, Outcome.ALREADY_KNOWN, "transaction ID seen")]
    async with storage.read() as r:
        assert not await r.events.nids([retry.event_id])


async def test_an_event_id_stored_meanwhile_in_another_room_is_a_400(storage: Storage) -> None:
    """Room versions 1 and 2 let a sender choose event IDs: the same ID arrives for two
    rooms. The second writer decided without seeing the first one's row (its read came from
    its cache); its write is refused, and the locked retry answers 400, not a 500."""
    first, second = Input(storage), Input(storage)
    room_a, room_b = RoomBuilder(room_version("1"), ALICE), RoomBuilder(room_version("1"), ALICE)
    for service, room in ((first, room_a), (second, room_b)):
        room.join(ALICE)
        room.send("m.room.message", ALICE, {"body": "warm the cache"})
        await send(service, *room.events)
    same = {"event_id": "$same:a.test"}
    in_a = room_a.send("m.room.message", ALICE, {"body": "a"}, extra_fields=same)
    in_b = room_b.send("m.room.message", ALICE, {"body": "b"}, extra_fields=same)
    assert await send(first, in_a) == [(in_a.event_id, Outcome.ACCEPTED, None)]
    with pytest.raises(ServiceError) as refused:
        await send(second, in_b)
    assert refused.value.status == 400 and "another room" in refused.value.message


async def test_a_write_refused_again_and_again_is_a_409(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Input(storage)
    room = new_room()
    await send(service, *room.events)
    attempts: list[str] = []

    async def refuse(self: InputIO, w: InputWrite) -> list[int]:
        attempts.append("write")
        raise InputConflict("another writer stored the same event meanwhile")

    monkeypatch.setattr(InputIO, "write", refuse)
    msg = room.send("m.room.message", BOB, {"body": "contended"})
    with pytest.raises(ServiceError) as refused:
        await send(service, msg)
    assert refused.value.status == 409
    optimistic = 1 if storage.backend.value == "postgres" else 0
    assert len(attempts) == optimistic + LOCKED_ATTEMPTS
    monkeypatch.undo()
    assert await send(service, msg) == [(msg.event_id, Outcome.ACCEPTED, None)]  # then it goes in


async def test_state_events_of_a_room_seen_committed_are_one_statement(
    storage: Storage, database_url: str, statements: list[str]
) -> None:
    """A state event's new state is a delta over the room's stored base, written by the
    same statement as the event (and a member event's membership with it)."""
    service = Input(storage)
    room = new_room()
    room.send("m.room.topic", ALICE, {"topic": "first"}, "")  # event type NIDs, assigned once
    room.send("m.room.name", ALICE, {"name": "first"}, "")
    await send(service, *room.events)
    await storage.reserve_event_nids(1)  # blocks of NIDs are reserved ahead, not per request
    await storage.reserve_snapshot_nids(1)
    topic = room.send("m.room.topic", ALICE, {"topic": "one statement"}, "")
    name = room.send("m.room.name", ALICE, {"name": "still one"}, "")
    profile = room.send("m.room.member", BOB, {"membership": "join", "displayname": "B"}, BOB)
    for request in ([topic], [name, profile]):
        statements.clear()
        assert await send(service, *request) == [
            (e.event_id, Outcome.ACCEPTED, None) for e in request
        ]
        if storage.backend.value == "postgres":
            assert [s.split("(")[0] for s in statements] == ["SELECT roomserver_input_write"]
    assert await check_database(database_url) == []  # states, memberships, output log


async def test_a_state_built_on_a_base_collected_meanwhile_is_redone_under_the_locks(
    storage: Storage, database_url: str, statements: list[str]
) -> None:
    """The service's cache may name a base that state GC removed since (another process
    moved the room on, then collected): the write refuses the new state, and the locked
    way reads the base again in its transaction."""
    service = Input(storage)
    room = new_room()
    room.send("m.room.topic", ALICE, {"topic": "first"}, "")
    await send(service, *room.events)
    await storage.reserve_event_nids(1)
    await storage.reserve_snapshot_nids(1)
    async with storage.read() as r:
        current = (await r.rooms.get(room.room_id)).state_snapshot_nid  # type: ignore[union-attr]
    assert current is not None
    cached = service.state_cache.snapshot(current)
    assert cached is not None
    shared, blocks = cached
    service.state_cache.add_snapshot(current, replace(shared, base_nid=999_999), blocks)
    statements.clear()
    topic = room.send("m.room.topic", ALICE, {"topic": "on a lost base"}, "")
    assert await send(service, topic) == [(topic.event_id, Outcome.ACCEPTED, None)]
    if storage.backend.value == "postgres":
        assert statements[0].startswith("SELECT roomserver_input_write")
        assert "BEGIN" in statements[1:]  # refused, then redone locked
    assert await check_database(database_url) == []


async def test_many_state_changes_go_the_locked_way_when_a_new_base_is_due(
    storage: Storage, database_url: str, statements: list[str]
) -> None:
    """Past ``Packing.max_delta`` changed keys a state gets a new base and blocks, which
    the optimistic write does not store: that request takes the locked way, the others
    not."""
    service = Input(storage)
    room = new_room()
    room.send("m.room.topic", ALICE, {"topic": "first"}, "")  # the type's NID, assigned once
    await send(service, *room.events)
    requests = DEFAULT_PACKING.max_delta + 5
    users = [f"@user{n}:c.test" for n in range(requests)]  # a new key each time
    await storage.assign_state_key_nids(users)  # (assigned in their own transactions)
    statements.clear()
    for user in users:
        join = room.join(user)
        assert await send(service, join) == [(join.event_id, Outcome.ACCEPTED, None)]
    if storage.backend.value == "postgres":
        assert 0 < statements.count("BEGIN") < requests // 2
    assert await check_database(database_url) == []


async def test_a_request_changing_more_keys_than_a_delta_holds_goes_locked_at_once(
    storage: Storage, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A join storm: its states need a new base for certain, so it does not decide its
    events the optimistic way first only to stop at the first new base."""
    service = Input(storage)
    room = new_room()
    await send(service, *room.events, room.send("m.room.message", ALICE, {"body": "first"}))
    tried: list[int] = []
    optimistic = Input._optimistic

    async def counted(self: Input, request: Any) -> Any:
        tried.append(len(request.items))
        return await optimistic(self, request)

    monkeypatch.setattr(Input, "_optimistic", counted)
    few = [room.join(f"@few{n}:c.test") for n in range(3)]
    storm = [room.join(f"@user{n}:c.test") for n in range(DEFAULT_PACKING.max_delta + 1)]
    for request in (few, storm):
        assert await send(service, *request) == [
            (e.event_id, Outcome.ACCEPTED, None) for e in request
        ]
    expected = [len(few)] if storage.backend.value == "postgres" else []
    assert tried == expected  # SQLite always takes the locked way
    assert await check_database(database_url) == []
