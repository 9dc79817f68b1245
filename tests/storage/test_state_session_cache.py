"""Sessions sharing committed snapshots and blocks through a :class:`StateCache`, on SQLite and
PostgreSQL: statements saved, nothing shared before a commit, the same states as without the
cache, and no new state built on a base that was collected under the cache."""

from __future__ import annotations

import random

import pytest
from counting import CountingConnection

from roomserver.state import (
    Packing,
    StaleStateError,
    StateCache,
    StateSession,
    collect_garbage,
    load_state,
    retry_stale,
)
from roomserver.state.cache import CachedSnapshot
from roomserver.storage import Storage
from roomserver.storage.tables import Tables
from roomserver.types import StateKeyTuple, StateMap

SMALL = Packing(bucket_target=4, max_delta=5)


def counted(storage: Storage, tables: Tables) -> tuple[Tables, CountingConnection]:
    conn = CountingConnection(tables.conn)
    return Tables(
        conn,  # type: ignore[arg-type]
        in_transaction=tables.in_transaction,
        event_type_cache=storage.event_type_cache,
        state_key_cache=storage.state_key_cache,
    ), conn


def members(n: int, first_event: int = 1000) -> StateMap:
    return {StateKeyTuple(5, 10 + i): first_event + i for i in range(n)}


async def new_room(storage: Storage, name: str = "!r:x") -> int:
    async with storage.transaction() as tx:
        return (await tx.rooms.get_or_create(name, "10")).room_nid


async def test_a_committed_state_is_read_from_the_cache(storage: Storage) -> None:
    cache = StateCache()
    room_nid = await new_room(storage)
    state = members(1000)
    extra = StateKeyTuple(5, 5000)
    async with storage.transaction() as tx:
        session = StateSession(tx, cache=cache)
        base = await session.store(room_nid, state)
        child = await session.derive(base, {extra: 7})
        nids = await session.flush([base, child])
        assert len(cache) == 0  # nothing is shared before the commit
    session.publish()
    wanted = [StateKeyTuple(5, 10), extra, StateKeyTuple(5, 99999)]
    for shared in [cache, None]:
        async with storage.transaction() as tx:
            tables, conn = counted(storage, tx)
            session = StateSession(tables, cache=shared)
            snap = await session.snapshot(nids[1])
            assert await session.lookup(snap, wanted) == {wanted[0]: 1000, extra: 7}
            assert await session.full(snap) == {**state, extra: 7}
            # from the cache: not one statement; without it, the row and the blocks
            assert conn.statements == (0 if shared is not None else 3)
    async with storage.read() as r:
        tables, conn = counted(storage, r)
        assert await load_state(tables, nids[0], cache=cache) == state
        assert conn.statements == 0


async def test_reads_outside_a_transaction_are_shared_as_they_are_read(storage: Storage) -> None:
    room_nid = await new_room(storage)
    async with storage.transaction() as tx:
        session = StateSession(tx)
        (nid,) = await session.flush([await session.store(room_nid, members(300))])
    cache = StateCache()
    async with storage.read() as r:
        tables, conn = counted(storage, r)
        assert await load_state(tables, nid, cache=cache) == members(300)
        assert conn.statements == 2 and len(cache) > 0  # no publish() needed
        assert await load_state(tables, nid, cache=cache) == members(300)
        assert conn.statements == 2
    async with storage.transaction() as tx:
        session = StateSession(tx, cache=StateCache())
        await session.full(await session.snapshot(nid))
        assert session.cache is not None and len(session.cache) == 0  # inside: not before commit


async def test_a_rolled_back_session_shares_nothing(storage: Storage) -> None:
    """Rows of a rolled-back transaction, even ones read back by another session of it,
    never reach the cache; on SQLite their NIDs are handed out again."""
    cache = StateCache()
    room_nid = await new_room(storage)
    rolled_back: list[int] = []
    with pytest.raises(RuntimeError):
        async with storage.transaction() as tx:
            writer = StateSession(tx, cache=cache)
            rolled_back = await writer.flush([await writer.store(room_nid, members(200))])
            reader = StateSession(tx, cache=cache)  # reads the uncommitted rows by SELECT
            assert await reader.full(await reader.snapshot(rolled_back[0])) == members(200)
            raise RuntimeError("roll back")
    assert len(cache) == 0  # nobody called publish(): the transaction never committed
    other = members(150, first_event=5000)
    async with storage.transaction() as tx:
        session = StateSession(tx, cache=cache)
        (nid,) = await session.flush([await session.store(room_nid, other)])
    session.publish()
    if storage.backend == "sqlite":
        assert nid == rolled_back[0]  # the same NID, other content
    async with storage.read() as r:
        assert await load_state(r, nid, cache=cache) == other


@pytest.mark.parametrize("max_entries", [60, 1_000_000], ids=["tiny", "large"])
async def test_the_same_states_as_without_the_cache(storage: Storage, max_entries: int) -> None:
    """A room's state changes over many transactions, each session starting from the room's
    current state as the pipeline does (tiny packing: many rebases and re-bucketings; a tiny
    cache: evictions all the time). Every stored state reads back the same with or without
    the cache, and equal to a plain dict."""
    rng = random.Random(max_entries)
    cache = StateCache(max_entries=max_entries)
    room_nid = await new_room(storage)
    model: StateMap = {}
    history: list[tuple[int, StateMap]] = []
    current: int | None = None
    next_event = 1
    for _ in range(40):
        async with storage.transaction() as tx:
            session = StateSession(tx, SMALL, cache=cache)
            snap = session.empty(room_nid) if current is None else await session.snapshot(current)
            for _ in range(rng.choice([1, 1, 2, 4])):
                changes: dict[StateKeyTuple, int | None] = {}
                for _ in range(rng.choice([1, 1, 3])):
                    if model and rng.random() < 0.2:
                        changes[rng.choice(sorted(model))] = None
                    else:
                        changes[StateKeyTuple(rng.choice([5, 5, 2]), rng.randrange(50))] = (
                            next_event
                        )
                        next_event += 1
                snap = await session.derive(snap, changes)
                model = {k: v for k, v in {**model, **changes}.items() if v is not None}
                assert await session.full(snap) == model
            (current,) = await session.flush([snap])
            history.append((current, dict(model)))
            old_nid, old_state = rng.choice(history)
            assert await session.full(await session.snapshot(old_nid)) == old_state
        session.publish()
        assert cache.entries <= max_entries
    nids = [nid for nid, _ in history]
    async with storage.read() as r:
        with_cache = StateSession(r, cache=cache)
        without = StateSession(r)
        a = await with_cache.full_many(list((await with_cache.snapshots(nids)).values()))
        b = await without.full_many(list((await without.snapshots(nids)).values()))
    assert a == b == [state for _, state in history]
    assert cache.hits > 0


async def test_no_state_builds_on_a_base_collected_under_the_cache(storage: Storage) -> None:
    """The cache holds snapshot X as a delta over base B. Another process then writes X's
    state as a base (the row is promoted) and collects B, now unreferenced. A state derived
    from X must build on X's row as it is now, not on the collected B."""
    cache = StateCache()
    room_nid = await new_room(storage)
    state = members(100)
    extra, later = StateKeyTuple(5, 4242), StateKeyTuple(5, 4343)
    async with storage.transaction() as tx:
        session = StateSession(tx, cache=cache)
        b = await session.derive(await session.store(room_nid, state), {})
        x = await session.derive(b, {extra: 1})
        (x_nid,) = await session.flush([x])
        await tx.rooms.update_latest(room_nid, [], None, x_nid)  # X is live, B only its base
    session.publish()
    b_nid, b_blocks = b.nid, list(b.base.blocks)
    async with storage.transaction() as tx:  # another process: X's state from scratch
        other = StateSession(tx)
        assert await other.flush([await other.store(room_nid, {**state, extra: 1})]) == [x_nid]
    report = await collect_garbage(storage)  # and another process collects B
    assert (report.snapshots, report.blocks) == (1, 1)
    async with storage.read() as r:
        x_blocks = (await r.state.snapshots([x_nid]))[x_nid].block_nids
    (dead_block,) = set(b_blocks) - set(x_blocks)

    async with storage.transaction() as tx:
        tables, conn = counted(storage, tx)
        session = StateSession(tables, cache=cache)
        stale = await session.snapshot(x_nid)
        assert stale.base.nid == b_nid and not stale.base.checked  # the cache's older form
        assert await session.full(stale) == {**state, extra: 1}  # reads stay right
        assert conn.statements == 0
        child = await session.derive(stale, {later: 2})
        assert conn.statements == 1  # X's row read again before building on it
        assert child.base.nid == x_nid
        (child_nid,) = await session.flush([child])
    session.publish()
    async with storage.read() as r:
        assert await load_state(r, child_nid) == {**state, extra: 1, later: 2}
        assert await load_state(r, x_nid, cache=cache) == {**state, extra: 1}

    # A cache naming a collected block that it no longer holds: the read fails once and
    # empties the cache; the next one reads the rows as they are.
    stale_cache = StateCache()
    shared = CachedSnapshot(room_nid, stale.state_hash, 101, b_nid or 0, ((extra, 1),))
    stale_cache.add_snapshot(x_nid, shared, b_blocks)
    async with storage.read() as r:
        with pytest.raises(StaleStateError, match=str(dead_block)):
            await load_state(r, x_nid, cache=stale_cache)
        assert len(stale_cache) == 0
        assert await load_state(r, x_nid, cache=stale_cache) == {**state, extra: 1}

        stale_cache.add_snapshot(x_nid, shared, b_blocks)  # stale again: a retry recovers
        attempts = []

        @retry_stale
        async def load() -> StateMap:
            attempts.append(1)
            return await load_state(r, x_nid, cache=stale_cache)

        assert await load() == {**state, extra: 1} and len(attempts) == 2


async def test_collecting_in_the_same_process_drops_the_rows(storage: Storage) -> None:
    cache = StateCache()
    room_nid = await new_room(storage)
    async with storage.transaction() as tx:
        session = StateSession(tx, cache=cache)
        orphan = await session.store(room_nid, members(50))
        await session.flush([orphan])
    session.publish()
    assert orphan.nid is not None and cache.snapshot(orphan.nid) is not None
    report = await collect_garbage(storage, cache=cache)
    assert report.snapshots == 1
    assert cache.snapshot(orphan.nid) is None and len(cache) == 0


async def test_one_event_requests_read_no_state_from_a_warm_cache(storage: Storage) -> None:
    """The input pipeline's pattern: load the room's current state, look up the keys the
    auth rules need, and for a state event derive and write the state after it."""
    cache = StateCache()
    room_nid = await new_room(storage)
    async with storage.transaction() as tx:
        session = StateSession(tx, cache=cache)
        (current,) = await session.flush([await session.store(room_nid, members(2000))])
    session.publish()
    counts: list[tuple[int, int]] = []
    for i in range(6):
        is_state = i % 3 == 2
        for shared in [cache, None]:
            async with storage.transaction() as tx:
                tables, conn = counted(storage, tx)
                session = StateSession(tables, cache=shared)
                snap = await session.snapshot(current)
                await session.lookup(snap, [StateKeyTuple(5, 10 + i), StateKeyTuple(1, 1)])
                reads = conn.statements
                if is_state and shared is not None:
                    after = await session.derive(snap, {StateKeyTuple(5, 10 + i): 9000 + i})
                    reads = conn.statements
                    (current,) = await session.flush([after])
            session.publish()
            counts.append((int(is_state), reads))
    # with the cache: no reads for a message, the row read again before a state change;
    # without: the snapshot row and the blocks every time
    assert counts[0::2] == [(0, 0), (0, 0), (1, 1), (0, 0), (0, 0), (1, 1)]
    assert all(reads == 2 for _, reads in counts[1::2])
