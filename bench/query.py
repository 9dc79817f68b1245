"""Query latency over HTTP: the state at events and events by ID, in a 10,000-member room.

Builds a room of real signed events (room version 10): the creator, power levels, a public
join rule, then 10,000 users of 20 servers join, with a message after every 10th join. The
room goes in through ``inputRoomEvents`` in requests of 100 events, to a real uvicorn
server (its own process) on loopback; then, with the typed client (``RoomserverClient``),
it times:

- ``queryStateAfterEvents`` with 3 tuples (create, power levels, one member) at random
  events;
- ``queryStateAfterEvents`` for the whole state at random events among the last 10% (over
  9,000 state events each);
- ``queryEventsByID`` with 50 random event IDs;

each request through the typed client (which parses and validates the answer into its
pydantic model) and as bare HTTP (bytes out, bytes in: the server's share), after one
warm-up pass (the server's event cache then holds what it returns, as in steady
operation), and prints p50/p99 per backend as a Markdown table. On PostgreSQL the
database is vacuumed and analysed after the load (as autovacuum would soon do), so that the
timings are not taken during autovacuum's first pass over fresh tables.

    python bench/query.py                      # both backends, 10,000 members (~2 min)
    python bench/query.py --backend sqlite --members 2000

PostgreSQL: a database of its own on ``--postgres`` (created, then dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from _machine import cpu_model
from pydantic import BaseModel

from roomserver.api import models as m
from roomserver.client import RoomserverClient
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version

CREATOR = "@creator:bench.test"
SERVERS = 20
BATCH = 100


@dataclass
class Room:
    room_id: str
    events: list[Event]
    members: list[str]


def build_room(members: int) -> Room:
    room = RoomBuilder(room_version("10"), CREATOR)
    room.join(CREATOR)
    room.send("m.room.power_levels", CREATOR, {"users": {CREATOR: 100}}, "")
    room.send("m.room.join_rules", CREATOR, {"join_rule": "public"}, "")
    users = [f"@user{n}:s{n % SERVERS}.bench.test" for n in range(members)]
    for n, user in enumerate(users):
        room.join(user)
        if n % 10 == 9:
            room.send("m.room.message", user, {"msgtype": "m.text", "body": f"hello {n}"})
    return Room(room.room_id, room.events, users)


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``uvicorn --factory roomserver.api.app:create_app`` in its own process."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        env = dict(os.environ, ROOMSERVER_DATABASE_URL=database_url)
        env["ROOMSERVER_SERVER_NAME"] = "bench.test"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "roomserver.api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def wait(self) -> None:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    resp = await http.post(
                        f"{self.url}/api/roomserver/queryRoomVersionCapabilities"
                    )
                    if resp.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the roomserver did not start")
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    detail: str
    typed: list[float]
    """Seconds per call through RoomserverClient (request model out, response parsed and
    validated into the response model)."""
    raw: list[float]
    """Seconds per call as bare HTTP (JSON bytes out, bytes in): the server's share."""


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


Call = Callable[[], Awaitable[object]]


async def timed(name: str, detail: str, calls: list[tuple[Call, Call]]) -> Timing:
    """Each request once to warm up (connections, the server's caches), then the typed and
    the raw form of each, interleaved so that both see the same conditions."""
    for typed, _ in calls:
        await typed()
    typed_s: list[float] = []
    raw_s: list[float] = []
    for typed, raw in calls:
        start = time.perf_counter()
        await typed()
        typed_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        await raw()
        raw_s.append(time.perf_counter() - start)
    return Timing(name, detail, typed_s, raw_s)


async def load_room(client: RoomserverClient, room: Room) -> float:
    start = time.perf_counter()
    for i in range(0, len(room.events), BATCH):
        batch = room.events[i : i + BATCH]
        answer = await client.input_room_events(
            m.InputRoomEventsRequest(
                input_room_events=[m.InputRoomEvent(kind=2, event=e.headered()) for e in batch]
            )
        )
        outcomes = {r.outcome for r in answer.results}
        if outcomes != {"accepted"}:
            raise RuntimeError(f"batch {i // BATCH}: {outcomes}")
    return time.perf_counter() - start


async def measure(
    url: str,
    room: Room,
    samples: int,
    seed: int,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> tuple[float, list[Timing]]:
    rng = random.Random(seed)
    async with RoomserverClient.connect(url, timeout=120) as client:
        load_s = await load_room(client, room)
        if settle is not None:
            await settle()
        event_ids = [e.event_id for e in room.events]

        def pair(
            path: str,
            request: BaseModel,
            send: Callable[[Any], Awaitable[Any]],
            check: Callable[[Any], bool],
        ) -> tuple[Call, Call]:
            body = orjson.dumps(request.model_dump(mode="json", exclude_unset=True))
            headers = {"content-type": "application/json"}

            async def typed() -> object:
                answer = await send(request)
                assert check(answer), path
                return answer

            async def raw() -> object:
                resp = await client.http.post(
                    f"/api/roomserver/{path}", content=body, headers=headers
                )
                assert resp.status_code == 200 and resp.content, path
                return resp.content

            return typed, raw

        def three(event_id: str, member: str) -> tuple[Call, Call]:
            request = m.QueryStateAfterEventsRequest(
                room_id=room.room_id,
                prev_event_ids=[event_id],
                state_to_fetch=[
                    m.StateKeyTuple(EventType="m.room.create", StateKey=""),
                    m.StateKeyTuple(EventType="m.room.power_levels", StateKey=""),
                    m.StateKeyTuple(EventType="m.room.member", StateKey=member),
                ],
            )
            return pair(
                "queryStateAfterEvents",
                request,
                client.query_state_after_events,
                lambda a: a.prev_events_exist and len(a.state_events) >= 1,
            )

        def whole(event_id: str) -> tuple[Call, Call]:
            request = m.QueryStateAfterEventsRequest(
                room_id=room.room_id, prev_event_ids=[event_id]
            )
            return pair(
                "queryStateAfterEvents",
                request,
                client.query_state_after_events,
                lambda a: len(a.state_events) > 0.8 * len(room.members),
            )

        def by_id(ids: list[str]) -> tuple[Call, Call]:
            request = m.QueryEventsByIDRequest(event_ids=ids)
            return pair(
                "queryEventsByID",
                request,
                client.query_events_by_id,
                lambda a: len(a.events) == len(ids),
            )

        tail = event_ids[-max(10, len(event_ids) // 10) :]
        timings = [
            await timed(
                "queryStateAfterEvents, 3 tuples",
                "create, power levels, a random member; at a random event",
                [three(rng.choice(event_ids), rng.choice(room.members)) for _ in range(samples)],
            ),
            await timed(
                "queryStateAfterEvents, whole state",
                f"~{len(room.members):,} state events; at a random event of the last 10%",
                [whole(rng.choice(tail)) for _ in range(max(10, samples // 20))],
            ),
            await timed(
                "queryEventsByID, 50 events",
                "50 random events of the room",
                [by_id(rng.sample(event_ids, 50)) for _ in range(samples)],
            ),
        ]
    return load_s, timings


# -- backends ----------------------------------------------------------------------------------


async def run_postgres(
    admin_url: str, room: Room, samples: int, seed: int
) -> tuple[float, list[Timing], str]:
    name = f"rs_bench_query_{os.getpid()}"
    admin = await asyncpg.connect(admin_url)
    try:
        pg_version = str(await admin.fetchval("SHOW server_version"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_url.rsplit("/", 1)[0]
    server = Server(f"{base}/{name}")

    async def settle() -> None:
        """Statistics and a checkpoint now, rather than autovacuum during the timing."""
        conn = await asyncpg.connect(f"{base}/{name}")
        try:
            await conn.execute("VACUUM ANALYZE")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    try:
        await server.wait()
        load_s, timings = await measure(server.url, room, samples, seed, settle)
    finally:
        server.stop()
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    return load_s, timings, pg_version


async def run_sqlite(room: Room, samples: int, seed: int) -> tuple[float, list[Timing]]:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            await server.wait()
            return await measure(server.url, room, samples, seed)
        finally:
            server.stop()


def machine() -> list[str]:
    cpu = cpu_model()
    versions = ", ".join(
        f"{p} {package_version(p)}"
        for p in ("fastapi", "pydantic", "uvicorn", "httpx", "asyncpg", "aiosqlite", "orjson")
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
        f" (load average at the end: {load})",
        f"Python {platform.python_version()}, {versions}, SQLite {sqlite3.sqlite_version}",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--postgres", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    start = time.perf_counter()
    room = build_room(args.members)
    print(
        f"built {len(room.events):,} events ({args.members:,} joins) in "
        f"{time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    rows: list[tuple[str, float, list[Timing]]] = []
    pg_version = None
    if args.backend in ("postgres", "both"):
        load_s, timings, pg_version = await run_postgres(
            args.postgres, room, args.samples, args.seed
        )
        rows.append(("PostgreSQL", load_s, timings))
    if args.backend in ("sqlite", "both"):
        load_s, timings = await run_sqlite(room, args.samples, args.seed)
        rows.append(("SQLite", load_s, timings))

    print()
    for line in machine():
        print(line)
    if pg_version:
        print(f"PostgreSQL {pg_version} on loopback")
    print(
        f"room: version 10, {len(room.events):,} events, {args.members:,} members of "
        f"{SERVERS} servers; input in requests of {BATCH} events; real uvicorn on loopback, "
        "typed client"
    )
    print()
    print("| backend | query | what | n | typed client p50 / p99 ms | raw HTTP p50 / p99 ms |")
    print("|---|---|---|---|---|---|")
    for backend, _, timings in rows:
        for t in timings:
            print(
                f"| {backend} | {t.name} | {t.detail} | {len(t.typed)} |"
                f" {p50(t.typed):.2f} / {p99(t.typed):.2f} | {p50(t.raw):.2f} / {p99(t.raw):.2f} |"
            )
    print()
    for backend, load_s, _ in rows:
        print(
            f"{backend}: input of the room {load_s:.1f} s ({len(room.events) / load_s:,.0f} events/s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
