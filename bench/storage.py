"""Storage benchmark: the state of a 10,000-member room, stored our way and the seed's way.

Builds a room of real signed events (room version 10): 10,000 members join, then 50,000
events of which 5,000 change state (joins, leaves, display names, topics) and the rest are
messages. Writes them through roomserver.storage and roomserver.state in batches of 500 (as
the input pipeline does), replays the same state changes in the seed's scheme (a one-entry
block per change, up to 64 blocks a snapshot, then a full rewrite; implemented here only),
and prints, for PostgreSQL and SQLite:

- bytes on disk of the state tables per event and per state change (PostgreSQL relation
  sizes with indexes; SQLite dbstat page sizes), for the whole room and for the 50,000-event
  phase alone;
- median and p99 time to load the whole state at a random event (cold session);
- the whole room's database against the bytes of its raw PDUs.

    python bench/storage.py                       # both backends, full size (~5 min)
    python bench/storage.py --backend sqlite --members 2000 --events 10000 --state-changes 1000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from _machine import cpu_model

from roomserver.matrix.builder import EventBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version
from roomserver.state import DEFAULT_PACKING, Packing, StateSession
from roomserver.storage import NewEvent, Storage
from roomserver.storage.codec import pack_entries, pack_nids, unpack_entries, unpack_nids
from roomserver.storage.tables import MembershipInfo
from roomserver.types import Membership, StateKeyTuple

SERVER = "example.org"
ROOM_ID = "!bench:example.org"
BATCH = 500
SEED_MAX_BLOCKS = 64
OUR_STATE_TABLES = ("state_snapshots", "state_blocks")
SEED_ROW_TABLES = ("seed_state_snapshots", "seed_state_block")
SEED_BLOB_TABLES = ("seedblob_state_snapshots", "seedblob_state_blocks")
WORDS = [
    "the",
    "a",
    "room",
    "state",
    "event",
    "join",
    "leave",
    "hello",
    "world",
    "matrix",
    "server",
    "block",
    "snapshot",
    "delta",
]


# -- the room ------------------------------------------------------------------------------


@dataclass
class Room:
    events: list[Event] = field(default_factory=list)
    setup_count: int = 0
    """Events up to and including the last of the initial joins."""
    state_changes_setup: int = 0
    state_changes_main: int = 0


def build_room(members: int, events: int, state_changes: int, seed: int) -> Room:
    rng = random.Random(seed)
    v10 = room_version("10")
    builder = EventBuilder(SERVER)
    room = Room()
    state: dict[tuple[str, str], Event] = {}
    ts = 1_700_000_000_000
    alice = f"@alice:{SERVER}"

    def add(type: str, sender: str, content: dict[str, Any], state_key: str | None = None) -> None:
        nonlocal ts
        ts += rng.randrange(1, 5000)
        keys = [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", sender)]
        if type == "m.room.member":
            keys += [("m.room.join_rules", ""), ("m.room.member", state_key or "")]
        auth = list({state[k].event_id: state[k] for k in keys if k in state}.values())
        event = builder.build(
            v10,
            type=type,
            sender=sender,
            content=content,
            room_id=ROOM_ID,
            state_key=state_key,
            prev_events=room.events[-1:],
            auth_events=auth,
            origin_server_ts=ts,
        )
        room.events.append(event)
        if state_key is not None:
            state[(type, state_key)] = event

    add("m.room.create", alice, {"creator": alice, "room_version": "10"}, "")
    add("m.room.member", alice, {"membership": "join", "displayname": "Alice"}, alice)
    add("m.room.power_levels", alice, {"users": {alice: 100}, "users_default": 0}, "")
    add("m.room.join_rules", alice, {"join_rule": "public"}, "")
    add("m.room.history_visibility", alice, {"history_visibility": "shared"}, "")
    joined = [alice]
    for i in range(members - 1):
        user = f"@user{i}:{SERVER}"
        add("m.room.member", user, {"membership": "join", "displayname": f"User {i}"}, user)
        joined.append(user)
    room.setup_count = len(room.events)
    room.state_changes_setup = len(room.events)
    left: list[str] = []
    changes = set(rng.sample(range(events), state_changes))
    next_user = members
    for i in range(events):
        if i not in changes:
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 20)))
            add("m.room.message", rng.choice(joined), {"body": body, "msgtype": "m.text"})
            continue
        roll = rng.random()
        if roll < 0.35 or len(joined) < 2:
            user = f"@user{next_user}:{SERVER}"
            next_user += 1
            add("m.room.member", user, {"membership": "join", "displayname": user[1:7]}, user)
            joined.append(user)
        elif roll < 0.6:
            user = joined.pop(rng.randrange(1, len(joined)))
            add("m.room.member", user, {"membership": "leave"}, user)
            left.append(user)
        elif roll < 0.9:
            user = rng.choice(joined)
            name = f"{user[1:6]} {rng.randrange(10**6)}"
            add("m.room.member", user, {"membership": "join", "displayname": name}, user)
        elif roll < 0.95 and left:
            user = left.pop(rng.randrange(len(left)))
            add("m.room.member", user, {"membership": "join"}, user)
            joined.append(user)
        else:
            add("m.room.topic", alice, {"topic": " ".join(rng.choice(WORDS) for _ in range(8))}, "")
        room.state_changes_main += 1
    return room


def pdu_bytes(event: Event) -> bytes:
    return orjson.dumps(event.pdu, option=orjson.OPT_SORT_KEYS)


# -- writing our way -----------------------------------------------------------------------


class OurWriter:
    """Writes events as the input pipeline does: per batch, one transaction holding the room
    lock, event NIDs reserved, states derived in memory, then a few set-based statements."""

    def __init__(self, storage: Storage, packing: Packing) -> None:
        self.storage = storage
        self.packing = packing
        self.room_nid: int | None = None
        self.nid_of: dict[str, int] = {}
        self.order: list[int] = []
        """Event NIDs in order."""
        self.snapshot_of: dict[int, int] = {}
        """Event NID -> our snapshot NID (the state before the event)."""
        self.change_of: dict[int, tuple[int, int]] = {}
        """State event NID -> its (type NID, state key NID)."""
        self.seconds = 0.0

    async def write(self, events: Sequence[Event]) -> None:
        start = time.perf_counter()
        storage = self.storage
        types = await storage.assign_event_type_nids(sorted({e.type for e in events}))
        keys: dict[str, int] = {}
        state_keys = sorted(
            {e.state_key for e in events if e.state_key is not None} | {e.sender for e in events}
        )
        for i in range(0, len(state_keys), 5000):
            keys.update(await storage.assign_state_key_nids(state_keys[i : i + 5000]))
        for at in range(0, len(events), BATCH):
            batch = events[at : at + BATCH]
            async with storage.transaction() as tx:
                if self.room_nid is None:
                    self.room_nid = (await tx.rooms.get_or_create(ROOM_ID, "10")).room_nid
                room_nid = self.room_nid
                room = await tx.rooms.lock(room_nid)
                session = StateSession(tx, self.packing)
                if room.state_snapshot_nid is None:
                    current = session.empty(room_nid)
                else:
                    current = await session.snapshot(room.state_snapshot_nid)
                nids = await tx.events.reserve_nids(len(batch))
                await session.prefetch(
                    current,
                    [
                        StateKeyTuple(types[e.type], keys[e.state_key])
                        for e in batch
                        if e.state_key is not None
                    ],
                )
                befores = []
                for event, nid in zip(batch, nids, strict=True):
                    befores.append(current)
                    self.nid_of[event.event_id] = nid
                    if event.state_key is not None:
                        key = StateKeyTuple(types[event.type], keys[event.state_key])
                        current = await session.derive(current, {key: nid})
                        self.change_of[nid] = key
                snapshot_nids = await session.flush([*befores, current])
                rows: list[NewEvent] = []
                memberships: list[MembershipInfo] = []
                edges: list[tuple[int, str, int | None]] = []
                for event, nid, before in zip(batch, nids, snapshot_nids[:-1], strict=True):
                    rows.append(
                        NewEvent(
                            event_id=event.event_id,
                            room_nid=room_nid,
                            type_nid=types[event.type],
                            state_key_nid=None
                            if event.state_key is None
                            else keys[event.state_key],
                            depth=event.depth,
                            auth_event_nids=[self.nid_of[a] for a in event.auth_event_ids],
                            json=pdu_bytes(event),
                            state_snapshot_nid=before,
                            event_nid=nid,
                        )
                    )
                    self.snapshot_of[nid] = before
                    edges.extend((nid, p, self.nid_of.get(p)) for p in event.prev_event_ids)
                    if event.membership is not None and event.state_key is not None:
                        memberships.append(
                            MembershipInfo(
                                room_nid,
                                keys[event.state_key],
                                keys[event.sender],
                                Membership.from_content(event.membership),
                                nid,
                            )
                        )
                await tx.events.insert(rows)
                await tx.previous_events.add(room_nid, edges)
                await tx.memberships.upsert(memberships)
                await tx.rooms.update_latest(room_nid, [nids[-1]], nids[-1], snapshot_nids[-1])
            self.order.extend(nids)
        self.seconds += time.perf_counter() - start


# -- the seed's scheme (bench only) ---------------------------------------------------------


SEED_SCHEMA = {
    "postgres": [
        "CREATE TABLE seed_state_snapshots (state_snapshot_nid BIGINT PRIMARY KEY,"
        " room_nid BIGINT NOT NULL, state_block_nids BIGINT[] NOT NULL)",
        "CREATE TABLE seed_state_block (state_block_nid BIGINT NOT NULL,"
        " event_type_nid BIGINT NOT NULL, event_state_key_nid BIGINT NOT NULL,"
        " event_nid BIGINT NOT NULL,"
        " UNIQUE (state_block_nid, event_type_nid, event_state_key_nid))",
        "CREATE TABLE seedblob_state_snapshots (state_snapshot_nid BIGINT PRIMARY KEY,"
        " block_nids BYTEA NOT NULL)",
        "CREATE TABLE seedblob_state_blocks (state_block_nid BIGINT PRIMARY KEY,"
        " entries BYTEA NOT NULL)",
    ],
    "sqlite": [
        "CREATE TABLE seed_state_snapshots (state_snapshot_nid INTEGER PRIMARY KEY,"
        " room_nid INTEGER NOT NULL, state_block_nids TEXT NOT NULL)",
        "CREATE TABLE seed_state_block (state_block_nid INTEGER NOT NULL,"
        " event_type_nid INTEGER NOT NULL, event_state_key_nid INTEGER NOT NULL,"
        " event_nid INTEGER NOT NULL,"
        " UNIQUE (state_block_nid, event_type_nid, event_state_key_nid))",
        "CREATE TABLE seedblob_state_snapshots (state_snapshot_nid INTEGER PRIMARY KEY,"
        " block_nids BLOB NOT NULL)",
        "CREATE TABLE seedblob_state_blocks (state_block_nid INTEGER PRIMARY KEY,"
        " entries BLOB NOT NULL)",
    ],
}


class SeedWriter:
    """The seed's scheme on the same state changes: each change adds a one-entry block to
    its parent's list of blocks; a 65th block is instead a full rewrite of the state. Stored
    twice: rows per entry with an array of block NIDs (as the seed stores it), and the same
    packing in our packed blobs (to tell the packing's share from the layout's)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.pg = storage.db.dialect.is_postgres
        self.snapshot_of: dict[int, int] = {}
        self.blocks: list[int] = []
        self.state: dict[tuple[int, int], int] = {}
        self.snapshot = 0
        self.next_block = 1
        self.next_snapshot = 1
        self.seconds = 0.0

    async def write(self, ours: OurWriter, event_nids: Sequence[int]) -> None:
        start = time.perf_counter()
        if self.snapshot == 0:
            async with self.storage.transaction() as tx:
                for statement in SEED_SCHEMA["postgres" if self.pg else "sqlite"]:
                    await tx.conn.execute(statement)
        for at in range(0, len(event_nids), BATCH):
            self._rows: dict[str, list[tuple[Any, ...]]] = {
                t: [] for t in (*SEED_ROW_TABLES, *SEED_BLOB_TABLES)
            }
            if self.snapshot == 0:
                self._new_snapshot([])
            for nid in event_nids[at : at + BATCH]:
                self.snapshot_of[nid] = self.snapshot
                key = ours.change_of.get(nid)
                if key is None:
                    continue
                self.state[key] = nid
                if len(self.blocks) < SEED_MAX_BLOCKS:
                    self._new_snapshot([*self.blocks, self._new_block({key: nid})])
                else:
                    self._new_snapshot([self._new_block(self.state)])
            async with self.storage.transaction() as tx:
                for table, rows in self._rows.items():
                    if not rows:
                        continue
                    if self.pg:
                        await tx.conn._conn.copy_records_to_table(table, records=rows)  # type: ignore[attr-defined]
                    else:
                        marks = ", ".join(f"${i + 1}" for i in range(len(rows[0])))
                        await tx.conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        self.seconds += time.perf_counter() - start

    def _new_snapshot(self, blocks: list[int]) -> None:
        self.snapshot = self.next_snapshot
        self.next_snapshot += 1
        self.blocks = blocks
        self._rows["seed_state_snapshots"].append(
            (self.snapshot, 1, blocks if self.pg else json.dumps(blocks))
        )
        self._rows["seedblob_state_snapshots"].append((self.snapshot, pack_nids(blocks)))

    def _new_block(self, entries: dict[tuple[int, int], int]) -> int:
        nid = self.next_block
        self.next_block += 1
        items = sorted(entries.items())
        self._rows["seed_state_block"].extend((nid, t, k, e) for (t, k), e in items)
        packed = pack_entries(
            [k[0] for k, _ in items], [k[1] for k, _ in items], [e for _, e in items]
        )
        self._rows["seedblob_state_blocks"].append((nid, packed))
        return nid


# -- loading the whole state ----------------------------------------------------------------


async def load_ours(storage: Storage, snapshot_nid: int) -> int:
    async with storage.read() as r:
        session = StateSession(r)
        return len(await session.full(await session.snapshot(snapshot_nid)))


async def load_seed_rows(storage: Storage, snapshot_nid: int) -> int:
    pg = storage.db.dialect.is_postgres
    async with storage.read() as r:
        blocks = await r.conn.fetchval(
            "SELECT state_block_nids FROM seed_state_snapshots WHERE state_snapshot_nid = $1",
            snapshot_nid,
        )
        blocks = list(blocks) if pg else json.loads(blocks)
        d = r.conn.dialect
        rows = await r.conn.fetch(
            "SELECT event_type_nid, event_state_key_nid, event_nid FROM seed_state_block"
            f" WHERE state_block_nid {d.any(1, 'bigint')} ORDER BY state_block_nid",
            blocks,
        )
    state = {StateKeyTuple(t, k): e for t, k, e in rows}
    return len(state)


async def load_seed_blobs(storage: Storage, snapshot_nid: int) -> int:
    async with storage.read() as r:
        packed = await r.conn.fetchval(
            "SELECT block_nids FROM seedblob_state_snapshots WHERE state_snapshot_nid = $1",
            snapshot_nid,
        )
        d = r.conn.dialect
        rows = await r.conn.fetch(
            "SELECT state_block_nid, entries FROM seedblob_state_blocks"
            f" WHERE state_block_nid {d.any(1, 'bigint')} ORDER BY state_block_nid",
            unpack_nids(packed),
        )
    state: dict[StateKeyTuple, int] = {}
    for _, entries in rows:
        types, keys, events = unpack_entries(entries)
        state.update(zip(map(StateKeyTuple, types, keys), events, strict=True))
    return len(state)


async def time_loads(
    fn: Any, storage: Storage, snapshot_nids: Sequence[int]
) -> tuple[float, float, int]:
    times = []
    sizes = 0
    for nid in snapshot_nids:
        t = time.perf_counter()
        sizes += await fn(storage, nid)
        times.append(time.perf_counter() - t)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times) * 1000, p99 * 1000, sizes // len(snapshot_nids)


# -- measuring bytes on disk ----------------------------------------------------------------


async def table_bytes(storage: Storage) -> dict[str, int]:
    """Bytes on disk of each table with its indexes."""
    async with storage.read() as r:
        if storage.db.dialect.is_postgres:
            await r.conn.execute("CHECKPOINT")
            rows = await r.conn.fetch(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind = 'r'"
            )
            return {name: size for name, size in rows}
        rows = await r.conn.fetch(
            "SELECT COALESCE(m.tbl_name, s.name), SUM(s.pgsize) FROM dbstat AS s"
            " LEFT JOIN sqlite_master AS m ON m.name = s.name GROUP BY 1"
        )
        return {name: size for name, size in rows}


def state_bytes(sizes: dict[str, int], tables: Sequence[str]) -> int:
    return sum(sizes.get(t, 0) for t in tables)


# -- running --------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    write_seconds: float
    seed_write_seconds: float
    sizes_setup: dict[str, int]
    sizes_end: dict[str, int]
    loads: dict[str, tuple[float, float, int]]


async def run_backend(
    backend: str, url: str, room: Room, packing: Packing, samples: int, seed: int, skip_seed: bool
) -> Result:
    storage = await Storage.open(url)
    try:
        ours, theirs = OurWriter(storage, packing), SeedWriter(storage)
        for part in (room.events[: room.setup_count], room.events[room.setup_count :]):
            first = len(ours.order)
            await ours.write(part)
            if not skip_seed:
                await theirs.write(ours, ours.order[first:])
            if first == 0:
                sizes_setup = await table_bytes(storage)
        sizes_end = await table_bytes(storage)
        rng = random.Random(seed)
        sample = rng.sample(ours.order, min(samples, len(ours.order)))
        ours_nids = [ours.snapshot_of[n] for n in sample]
        for a in ours_nids[:20]:  # warm the connections and caches, for every scheme alike
            await load_ours(storage, a)
        loads = {"ours": await time_loads(load_ours, storage, ours_nids)}
        if not skip_seed:
            seed_nids = [theirs.snapshot_of[n] for n in sample]
            for b in seed_nids[:20]:
                await load_seed_rows(storage, b)
                await load_seed_blobs(storage, b)
            loads["seed"] = await time_loads(load_seed_rows, storage, seed_nids)
            loads["seed_blobs"] = await time_loads(load_seed_blobs, storage, seed_nids)
            assert loads["ours"][2] == loads["seed"][2] == loads["seed_blobs"][2], loads
        return Result(backend, ours.seconds, theirs.seconds, sizes_setup, sizes_end, loads)
    finally:
        await storage.close()


def machine() -> list[str]:
    cpu = cpu_model()
    return [
        f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}, asyncpg {package_version('asyncpg')},"
        f" aiosqlite {package_version('aiosqlite')}, SQLite {sqlite3.sqlite_version}",
    ]


def report(room: Room, results: list[Result], packing: Packing, pg_version: str | None) -> None:
    n_events = len(room.events)
    n_main = n_events - room.setup_count
    changes = room.state_changes_setup + room.state_changes_main
    raw = sum(len(pdu_bytes(e)) for e in room.events)
    print()
    for line in machine():
        print(line)
    if pg_version:
        print(f"PostgreSQL {pg_version}")
    print(
        f"room: {n_events:,} events ({room.setup_count:,} in the set-up: create + "
        f"{room.setup_count - 5:,} joins; then {n_main:,} with {room.state_changes_main:,}"
        f" state changes), {changes:,} state changes in all; raw PDUs {raw / 1e6:.1f} MB"
        f" ({raw / n_events:.0f} B/event)"
    )
    print(f"packing: bucket_target={packing.bucket_target}, max_delta={packing.max_delta}")
    print()
    header = (
        "| backend | scheme | state MB | B/event | B/state change | 50k phase: B/event |"
        " B/state change | load median ms | load p99 ms |"
    )
    print(header)
    print("|" + "---|" * 9)
    schemes = [
        ("ours", "ours (buckets + deltas)", OUR_STATE_TABLES),
        ("seed", "seed (as the seed stores it)", SEED_ROW_TABLES),
        ("seed_blobs", "seed packing, our blobs", SEED_BLOB_TABLES),
    ]
    for result in results:
        for key, label, tables in schemes:
            if key not in result.loads:
                continue
            total = state_bytes(result.sizes_end, tables)
            phase = total - state_bytes(result.sizes_setup, tables)
            median, p99, _ = result.loads[key]
            print(
                f"| {result.backend} | {label} | {total / 1e6:,.1f} | {total / n_events:,.0f} |"
                f" {total / changes:,.0f} | {phase / n_main:,.0f} |"
                f" {phase / room.state_changes_main:,.0f} | {median:.2f} | {p99:.2f} |"
            )
    print()
    print("| backend | whole room database MB | x raw PDUs | our write s | tables (MB) |")
    print("|---|---|---|---|---|")
    for result in results:
        room_tables = {
            t: size
            for t, size in result.sizes_end.items()
            if not t.startswith(("seed_", "seedblob_", "sqlite_"))
        }
        total = sum(room_tables.values())
        detail = ", ".join(
            f"{t} {size / 1e6:.1f}"
            for t, size in sorted(room_tables.items(), key=lambda x: -x[1])
            if size > 100_000
        )
        print(
            f"| {result.backend} | {total / 1e6:.1f} | {total / raw:.2f} | {result.write_seconds:.0f} |"
            f" {detail} |"
        )
    print()
    for result in results:
        if "seed" not in result.loads:
            continue
        mine = state_bytes(result.sizes_end, OUR_STATE_TABLES)
        seed = state_bytes(result.sizes_end, SEED_ROW_TABLES)
        blobs = state_bytes(result.sizes_end, SEED_BLOB_TABLES)
        print(
            f"{result.backend}: state storage {seed / mine:.1f}x smaller than the seed's"
            f" ({blobs / mine:.1f}x than its packing in our blobs); full load"
            f" {result.loads['ours'][0] / result.loads['seed'][0]:.2f}x the seed's median time"
            f" ({result.loads['ours'][2]:,} entries on average)"
        )


async def postgres_database(admin_url: str) -> tuple[str, str]:
    name = f"rs_bench_{os.getpid()}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}", str(version)


async def drop_postgres(admin_url: str, url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--postgres", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--state-changes", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bucket-target", type=int, default=DEFAULT_PACKING.bucket_target)
    parser.add_argument("--max-delta", type=int, default=DEFAULT_PACKING.max_delta)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--skip-seed", action="store_true", help="measure our scheme only (parameter sweeps)"
    )
    args = parser.parse_args()
    packing = Packing(bucket_target=args.bucket_target, max_delta=args.max_delta)

    t = time.perf_counter()
    room = build_room(args.members, args.events, args.state_changes, args.seed)
    print(
        f"built {len(room.events):,} signed events in {time.perf_counter() - t:.0f} s",
        file=sys.stderr,
    )
    # The room's 60,000 parsed events live until the end: keep the cyclic collector from
    # walking them again and again (its pauses would dominate every p99 below).
    gc.collect()
    gc.freeze()
    results: list[Result] = []
    pg_version = None
    if args.backend in ("postgres", "both"):
        url, pg_version = await postgres_database(args.postgres)
        try:
            results.append(
                await run_backend(
                    "PostgreSQL", url, room, packing, args.samples, args.seed, args.skip_seed
                )
            )
        finally:
            if not args.keep:
                await drop_postgres(args.postgres, url)
        print(f"PostgreSQL done at {time.perf_counter() - t:.0f} s", file=sys.stderr)
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            results.append(
                await run_backend(
                    "SQLite",
                    f"sqlite:///{path}",
                    room,
                    packing,
                    args.samples,
                    args.seed,
                    args.skip_seed,
                )
            )
        print(f"SQLite done at {time.perf_counter() - t:.0f} s", file=sys.stderr)
    report(room, results, packing, pg_version)


if __name__ == "__main__":
    asyncio.run(main())
