"""State snapshots through :class:`StateSession`, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from typing import Any

import pytest
from counting import CountingConnection

from roomserver.state import NewBaseRefused, Packing, StateSession, load_state
from roomserver.state.packing import state_hash
from roomserver.storage import Storage
from roomserver.storage.tables import Tables
from roomserver.types import StateKeyTuple, StateMap

SMALL = Packing(bucket_target=4, max_delta=5)
"""Tiny buckets and deltas, so that a few dozen changes rebase and re-bucket many times."""


def random_state(rng: random.Random, n: int, first_event: int = 1000) -> StateMap:
    keys = {
        StateKeyTuple(rng.choice([1, 2, 3, 5, 5, 5, 9]), rng.randrange(1, 5000)) for _ in range(n)
    }
    return {k: first_event + i for i, k in enumerate(sorted(keys))}


async def room(tx: Tables, name: str = "!r:x") -> int:
    return (await tx.rooms.get_or_create(name, "10")).room_nid


async def test_round_trip_and_filtered_loads(storage: Storage) -> None:
    rng = random.Random(1)
    state = random_state(rng, 3000)
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        session = StateSession(tx)
        snap = await session.store(room_nid, state)
        assert snap.entry_count == len(state) and snap.is_base
        (nid,) = await session.flush([snap])
    async with storage.read() as r:
        assert await load_state(r, nid) == state
        wanted = [*rng.sample(sorted(state), 5), StateKeyTuple(5, 99999)]  # one key is absent
        fresh = StateSession(r)
        got = await fresh.lookup(await fresh.snapshot(nid), wanted)
        assert got == {k: state[k] for k in wanted if k in state}
        # only the buckets of the wanted keys were read, not the whole state
        assert 1 <= len(fresh._columns) <= len(wanted)
        loaded_entries = sum(len(b[0]) for b in fresh._columns.values())
        assert loaded_entries < len(state) / 4
        assert await load_state(r, nid, [StateKeyTuple(7, 7)]) == {}


async def test_derived_states_match_a_model(storage: Storage) -> None:
    """Random joins, changes and removals with tiny bounds: every rebase and re-bucketing
    path runs, and every state reads back equal to a plain dict."""
    rng = random.Random(7)
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        session = StateSession(tx, SMALL)
        snap = session.empty(room_nid)
        model: StateMap = {}
        checkpoints: list[tuple[Any, StateMap]] = []
        next_event = 1
        for step in range(300):
            changes: dict[StateKeyTuple, int | None] = {}
            for _ in range(rng.choice([1, 1, 1, 2, 5])):
                roll = rng.random()
                if model and roll < 0.15:  # leave the state
                    changes[rng.choice(sorted(model))] = None
                elif model and roll < 0.4:  # change an existing key
                    changes[rng.choice(sorted(model))] = next_event
                else:  # a new key (mostly members)
                    changes[StateKeyTuple(rng.choice([5, 5, 5, 2]), rng.randrange(2, 400))] = (
                        next_event
                    )
                next_event += 1
            snap = await session.derive(snap, changes)
            for key, event_nid in changes.items():
                if event_nid is None:
                    model.pop(key, None)
                else:
                    model[key] = event_nid
            assert snap.entry_count == len(model)
            assert snap.state_hash == state_hash((k[0], k[1], v) for k, v in model.items())
            if step % 23 == 0:
                assert await session.full(snap) == model
                checkpoints.append((snap, dict(model)))
            if step == 150:  # shrink: most keys leave, the base gets fewer buckets
                removed = {k: None for k in sorted(model)[: len(model) * 7 // 8]}
                snap = await session.derive(snap, removed)
                for k in removed:
                    del model[k]
        nids = await session.flush([s for s, _ in checkpoints] + [snap])
        checkpoints.append((snap, dict(model)))
    async with storage.read() as r:
        fresh = StateSession(r)
        loaded = await fresh.snapshots(nids)
        states = await fresh.full_many([loaded[n] for n in nids])
        assert states == [m for _, m in checkpoints]


async def test_identical_state_is_stored_once(storage: Storage) -> None:
    rng = random.Random(3)
    state = random_state(rng, 200)
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        session = StateSession(tx)
        first = await session.store(room_nid, state)
        (nid,) = await session.flush([first])
        blocks = await tx.conn.fetchval("SELECT COUNT(*) FROM state_blocks")
        snapshots = await tx.conn.fetchval("SELECT COUNT(*) FROM state_snapshots")
    async with storage.transaction() as tx:
        # the same state reached another way: from a different state, by changes
        session = StateSession(tx)
        other = dict(state)
        k1, k2 = sorted(state)[:2]
        other[k1] = 1
        del other[k2]
        detour = await session.store(room_nid, other)
        back = await session.derive(detour, {k1: state[k1], k2: state[k2]})
        assert (await session.flush([back])) == [nid]
        assert await session.derive(back, {k1: state[k1]}) is back  # no change: same snapshot
        await session.flush([detour])
        # the detour added its own rows; storing the first state again added none
        again = await StateSession(tx).store(room_nid, state)
        assert (await StateSession(tx).flush([again])) == [nid]
        assert await tx.conn.fetchval("SELECT COUNT(*) FROM state_snapshots") == snapshots + 1
        assert await tx.conn.fetchval("SELECT COUNT(*) FROM state_blocks") > blocks
    async with storage.transaction() as tx:
        other_room = await room(tx, "!other:x")  # the same entries in another room: another row
        snap = await StateSession(tx).store(other_room, state)
        (other_nid,) = await StateSession(tx).flush([snap])
        assert other_nid != nid


async def test_a_child_changes_only_its_delta(storage: Storage) -> None:
    state = random_state(random.Random(5), 1000)
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        session = StateSession(tx)
        parent = await session.store(room_nid, state)
        child = await session.derive(parent, {StateKeyTuple(5, 77777): 1})
        assert child.base is parent.base and child.delta == {StateKeyTuple(5, 77777): 1}
        await session.flush([parent])
        blocks_before = await tx.conn.fetchval("SELECT COUNT(*) FROM state_blocks")
        await session.flush([child])
        assert await tx.conn.fetchval("SELECT COUNT(*) FROM state_blocks") == blocks_before
        row = (await tx.state.snapshots([child.nid or 0]))[child.nid or 0]
        assert row.base_snapshot_nid == parent.nid and row.delta == ([5], [77777], [1])


async def test_a_session_told_to_make_no_base_refuses_at_the_first_one(
    storage: Storage,
) -> None:
    """The input pipeline's optimistic way writes delta snapshots only: its session stops
    at the first state that needs a new base, and names the deltas before it."""
    state = random_state(random.Random(6), 40)
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        stored = await StateSession(tx, SMALL).store(room_nid, state)
        await StateSession(tx, SMALL).flush([stored])
    async with storage.read() as r:
        session = StateSession(r, SMALL, new_bases=False)
        parent = await session.snapshot(stored.nid or 0)
        deltas = [parent]
        for n in range(SMALL.max_delta):
            deltas.append(await session.derive(deltas[-1], {StateKeyTuple(5, 90000 + n): n + 1}))
        assert all(d.base is parent.base for d in deltas)
        with pytest.raises(NewBaseRefused):
            await session.derive(deltas[-1], {StateKeyTuple(5, 99999): 7})
        named = session.name_for_caller(deltas, [501, 502, 503, 504, 505, 506])
    assert named is not None and [nid for nid, _ in named] == [501, 502, 503, 504, 505]


async def test_empty_state(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        session = StateSession(tx)
        empty = session.empty(room_nid)
        assert session.empty(room_nid) is empty
        (nid,) = await session.flush([empty])
        assert await load_state(tx, nid) == {}
        assert await StateSession(tx).flush([StateSession(tx).empty(room_nid)]) == [nid]


async def test_diff(storage: Storage) -> None:
    rng = random.Random(11)
    base_state = random_state(rng, 300)
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        session = StateSession(tx, SMALL)
        a = await session.store(room_nid, base_state)
        model_a = dict(base_state)
        b = await session.derive(a, {StateKeyTuple(5, 9001): 5, sorted(base_state)[0]: None})
        c = b
        for i in range(40):  # enough changes for several rebases: another base
            c = await session.derive(c, {StateKeyTuple(5, 10000 + i): 6000 + i})
        big = await session.store(room_nid, random_state(rng, 2000, 50_000))  # other bucket count
        await session.flush([a, b, c, big])
        full = dict(zip([a, b, c, big], await session.full_many([a, b, c, big]), strict=True))
        assert full[a] == model_a
        for old, new in [(a, b), (b, c), (a, c), (c, a), (a, big), (b, b)]:
            fresh = StateSession(tx)  # from stored rows, not the objects made above
            loaded = await fresh.snapshots([old.nid or 0, new.nid or 0])
            removed, added = await fresh.diff(loaded[old.nid or 0], loaded[new.nid or 0])
            assert removed == {k: v for k, v in full[old].items() if full[new].get(k) != v}
            assert added == {k: v for k, v in full[new].items() if full[old].get(k) != v}


async def test_a_base_for_a_state_stored_as_a_delta_takes_its_row(storage: Storage) -> None:
    """Content addressing across representations: the row becomes the base, and states
    built on that base read correctly."""
    state = random_state(random.Random(13), 100)
    extra = StateKeyTuple(5, 4242)
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        session = StateSession(tx)
        parent = await session.store(room_nid, state)
        as_delta = await session.derive(parent, {extra: 1})
        await session.flush([as_delta])
        assert not as_delta.is_base
    async with storage.transaction() as tx:
        session = StateSession(tx)
        as_base = await session.store(room_nid, {**state, extra: 1})  # from empty: a base
        assert as_base.is_base
        child = await session.derive(as_base, {StateKeyTuple(5, 4343): 2})
        nids = await session.flush([as_base, child])
        assert nids[0] == as_delta.nid
        row = (await tx.state.snapshots([nids[0]]))[nids[0]]
        assert row.base_snapshot_nid == 0
    async with storage.read() as r:
        assert await load_state(r, nids[1]) == {**state, extra: 1, StateKeyTuple(5, 4343): 2}
        assert await load_state(r, nids[0]) == {**state, extra: 1}


async def test_flush_and_reads_are_batched(storage: Storage) -> None:
    state = random_state(random.Random(17), 2000)
    async with storage.transaction() as tx:
        room_nid = await room(tx)
        counting = CountingConnection(tx.conn)
        tables = Tables(
            counting,
            in_transaction=True,
            event_type_cache=storage.event_type_cache,
            state_key_cache=storage.state_key_cache,
        )
        session = StateSession(tables)
        snap = await session.store(room_nid, state)
        chain = [snap]
        for i in range(60):  # 60 state changes, a few rebases among them
            chain.append(await session.derive(chain[-1], {StateKeyTuple(5, 20_000 + i): i + 1}))
        counting.statements = 0
        nids = await session.flush(chain)
        assert len(set(nids)) == 61
        assert counting.statements <= 7  # lock + blocks + bases + deltas, not one per snapshot
        fresh = StateSession(tables)
        counting.statements = 0
        states = await fresh.full_many(list((await fresh.snapshots(nids)).values()))
        assert counting.statements == 2  # whole states of 61 snapshots: two queries
        assert states[-1] == {**state, **{StateKeyTuple(5, 20_000 + i): i + 1 for i in range(60)}}
