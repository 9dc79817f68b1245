"""Input benchmark: events per second and request latency through the HTTP API.

A real ``roomserver serve`` (uvicorn) subprocess on loopback, on a fresh database each run,
takes pre-built, signed room version 10 events (about 90% messages, 10% state changes:
topics, names, display names) from a minimal keep-alive HTTP/1.1 client:

- into one room (one connection: a room's events depend on each other, so a second request
  in flight could arrive first and be refused for its missing prev events) and into 100
  rooms (4 connections, each owning 25 rooms; a request of 100 events then holds events of
  about 25 rooms);
- in requests of 1 and of 100 events;
- on PostgreSQL and on SQLite.

In the same run, the raw baselines: the same PDUs written straight into a plain table
``(event_id text, json bytea)`` with asyncpg, in batches of the same size on the same number
of connections, no service, three ways (:data:`RAW_METHODS`); the service/raw ratios are
printed for PostgreSQL. Events are built and signed before anything is timed; rooms (create, power
levels, join rules, 10 members) are set up and a warm-up tenth of the events is sent
before the clock starts. Each figure is the median of ``--runs`` runs; ``cpu`` is the
service process's CPU time (user + system) per timed event.

    python bench/input.py                      # everything, ~5 minutes
    python bench/input.py --quick              # a smoke run
    python bench/input.py --only postgres:1:100 --profile   # where the service's CPU goes
    python bench/input.py --sql --only postgres:1:1          # its statements per request

``--profile`` samples the first configuration's service with py-spy (``pip install
'.[bench]'``) during the timed phase only, and prints where its CPU time goes, by area and
by function, in µs per event. Sampling leaves the service at its normal speed; idle samples
(waiting for the network or the database) are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import platform
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from _machine import cpu_model

from roomserver.matrix.builder import EventBuilder
from roomserver.matrix.events import Event
from roomserver.matrix.room_versions import room_version

SERVER = "bench.test"
MEMBERS = 10
MANY_ROOMS_CONNECTIONS = 4
POSTGRES_ADMIN = os.environ.get(
    "ROOMSERVER_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres"
)
INPUT = "/api/roomserver/inputRoomEvents"
READY = "/api/roomserver/queryRoomVersionCapabilities"


# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One pre-built event: its request fragment, and its PDU JSON for the raw baseline."""

    room: int
    event_id: str
    fragment: bytes
    pdu_json: bytes


def _item(room: int, event: Event) -> Item:
    fragment = b'{"kind":2,"event":' + orjson.dumps(event.headered()) + b"}"
    return Item(room, event.event_id, fragment, orjson.dumps(event.pdu))


class _Room:
    """A linear room of ``MEMBERS`` users of one server; auth events from its state."""

    def __init__(self, index: int, builder: EventBuilder, rng: random.Random) -> None:
        self.index = index
        self.builder = builder
        self.rng = rng
        self.room_id = f"!bench{index}:{SERVER}"
        self.version = room_version("10")
        self.state: dict[tuple[str, str], Event] = {}
        self.last: Event | None = None
        self.ts = 1_700_000_000_000 + index * 10_000_000
        self.members = [f"@u{i}:{SERVER}" for i in range(MEMBERS)]
        self.setup: list[Item] = []
        creator = self.members[0]
        self.setup.append(self.add("m.room.create", creator, {"room_version": "10", "creator": creator}, ""))  # fmt: skip
        self.setup.append(self.add("m.room.member", creator, {"membership": "join"}, creator))
        levels = {"users": {creator: 100}, "users_default": 0, "state_default": 50}
        self.setup.append(self.add("m.room.power_levels", creator, levels, ""))
        self.setup.append(self.add("m.room.join_rules", creator, {"join_rule": "public"}, ""))
        for user in self.members[1:]:
            self.setup.append(self.add("m.room.member", user, {"membership": "join"}, user))

    def add(
        self, type: str, sender: str, content: dict[str, Any], state_key: str | None = None
    ) -> Item:
        keys = [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", sender)]
        if type == "m.room.member":
            keys += [("m.room.join_rules", ""), ("m.room.member", state_key or "")]
        auth = list(
            {self.state[k].event_id: self.state[k] for k in keys if k in self.state}.values()
        )
        self.ts += self.rng.randrange(1, 3000)
        event = self.builder.build(
            self.version,
            type=type,
            sender=sender,
            content=content,
            room_id=self.room_id,
            state_key=state_key,
            prev_events=[self.last] if self.last is not None else [],
            auth_events=auth,
            origin_server_ts=self.ts,
        )
        self.last = event
        if state_key is not None:
            self.state[(type, state_key)] = event
        return _item(self.index, event)

    def next(self, n: int) -> Item:
        roll = self.rng.random()
        creator = self.members[0]
        if roll < 0.90:
            sender = self.rng.choice(self.members)
            body = " ".join(self.rng.choice(["hello", "room", "matrix", "event"]) for _ in range(8))
            return self.add("m.room.message", sender, {"msgtype": "m.text", "body": f"{n} {body}"})
        if roll < 0.94:
            return self.add("m.room.topic", creator, {"topic": f"topic {n}"}, "")
        if roll < 0.97:
            return self.add("m.room.name", creator, {"name": f"name {n}"}, "")
        user = self.rng.choice(self.members)
        return self.add(
            "m.room.member", user, {"membership": "join", "displayname": f"u {n}"}, user
        )


@dataclass
class Workload:
    rooms: int
    setup: list[Item]
    stream: list[Item]


def build_workload(rooms: int, events: int, seed: int) -> Workload:
    rng = random.Random(seed)
    builder = EventBuilder(SERVER)
    made = [_Room(i, builder, rng) for i in range(rooms)]
    stream = [rng.choice(made).next(n) for n in range(events)]
    return Workload(rooms, [i for r in made for i in r.setup], stream)


# -- configurations and results ------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    backend: str  # "postgres" | "sqlite"
    rooms: int
    batch: int
    events: int

    @property
    def connections(self) -> int:
        return 1 if self.rooms == 1 else MANY_ROOMS_CONNECTIONS

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.rooms}:{self.batch}"


@dataclass
class Run:
    events_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_event: float = 0.0
    failures: int = 0
    timed_events: int = 0


@dataclass
class Result:
    config: Config
    runs: list[Run] = field(default_factory=list)
    raw: dict[str, list[float]] = field(default_factory=dict)
    """Raw baseline events/s per run, by method (PostgreSQL only)."""

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.runs))


def plan(workload: Workload, config: Config) -> list[list[list[Item]]]:
    """Per connection, its batches in order (rooms split between connections)."""
    items = workload.stream[: config.events]
    per_conn: list[list[Item]] = [[] for _ in range(config.connections)]
    for item in items:
        per_conn[item.room % config.connections].append(item)
    return [
        [events[i : i + config.batch] for i in range(0, len(events), config.batch)]
        for events in per_conn
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# -- the service ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Service:
    def __init__(self, database_url: str, log: Path) -> None:
        self.database_url = database_url
        self.log = log
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Service:
        env = dict(os.environ, ROOMSERVER_DATABASE_URL=self.database_url)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "roomserver", "serve", "--port", str(self.port), "--log-level", "warning"],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            while True:
                if self.proc.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"service died:\n{tail}")
                try:
                    if (await http.post(READY, json={})).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service did not start; see {self.log}")
                await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: a load generator's client, not a general one.

    httpx spends ~1.9 ms of CPU per request on this machine (more than the service spends
    on a one-event request), and the client shares the machine's two cores with the service
    and the database; this costs ~50 µs, so the figures are the service's."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        if "content-length" not in headers:
            raise RuntimeError(f"unexpected response framing: {lines}")
        return status, await self.reader.readexactly(int(headers["content-length"]))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def _send(http: HttpConnection, batch: list[Item]) -> tuple[float, int]:
    body = b'{"input_room_events":[' + b",".join(i.fragment for i in batch) + b"]}"
    began = time.perf_counter()
    status, answer = await http.post(INPUT, body)
    elapsed = time.perf_counter() - began
    if status != 200:
        raise RuntimeError(f"input failed: {status} {answer[:500]!r}")
    bad = sum(1 for r in orjson.loads(answer)["results"] if r["outcome"] != "accepted")
    return elapsed, bad


async def run_service(
    config: Config, workload: Workload, database_url: str, log: Path, profile: Path | None
) -> Run:
    batches = plan(workload, config)
    async with Service(database_url, log) as service:
        assert service.proc is not None
        connections = [HttpConnection("127.0.0.1", service.port) for _ in batches]
        try:
            for i in range(0, len(workload.setup), 200):
                _, bad = await _send(connections[0], workload.setup[i : i + 200])
                if bad:
                    raise RuntimeError("setup events not accepted")
            warm = [max(1, len(b) // 10) for b in batches]
            latencies: list[float] = []
            failures = 0
            start_barrier = asyncio.Barrier(config.connections + 1)
            timed_events = sum(len(x) for b, w in zip(batches, warm, strict=True) for x in b[w:])

            async def connection(
                http: HttpConnection, mine: list[list[Item]], warm_count: int
            ) -> None:
                nonlocal failures
                for batch in mine[:warm_count]:
                    await _send(http, batch)
                await start_barrier.wait()
                await start_barrier.wait()
                for batch in mine[warm_count:]:
                    elapsed, bad = await _send(http, batch)
                    latencies.append(elapsed)
                    failures += bad

            tasks = [
                asyncio.create_task(connection(c, b, w))
                for c, b, w in zip(connections, batches, warm, strict=True)
            ]
            await start_barrier.wait()  # everyone warmed up
            spy = _start_py_spy(service.proc.pid, profile) if profile else None
            cpu0 = _cpu_seconds(service.proc.pid)
            began = time.perf_counter()
            await start_barrier.wait()
            await asyncio.gather(*tasks)
            wall = time.perf_counter() - began
            cpu = _cpu_seconds(service.proc.pid) - cpu0
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
        finally:
            for c in connections:
                await c.close()
    return Run(
        events_per_s=timed_events / wall,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu_us_per_event=cpu / timed_events * 1e6,
        failures=failures,
        timed_events=timed_events,
    )


# -- databases -----------------------------------------------------------------------------


def _postgres_url(name: str) -> str:
    return POSTGRES_ADMIN.rpartition("/")[0] + "/" + name


class PostgresDatabase:
    _serial = itertools.count(1)

    def __init__(self) -> None:
        self.name = f"rs_bench_{os.getpid()}_{next(self._serial)}"

    async def __aenter__(self) -> str:
        conn = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        return _postgres_url(self.name)

    async def __aexit__(self, *exc: object) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()


RAW_MIN_SECONDS = 1.0
"""The raw baseline repeats its batches until this long has passed (it is fast)."""


RAW_METHODS = {
    "unnest": "one INSERT … SELECT FROM unnest per batch, autocommitted, no index",
    "txn+PK": "the same in a transaction, with a primary key on event_id",
    "executemany": "asyncpg executemany per batch in a transaction, primary key",
}
"""The raw baselines: the same PDUs written straight into ``raw_events(event_id, json)``."""


async def run_raw(config: Config, workload: Workload, method: str) -> float:
    """The same PDUs, same batches, same connections, straight into a plain table by one of
    :data:`RAW_METHODS`. ``executemany`` is asyncpg's own batch call (a statement per row,
    pipelined); it reproduces the ~40,000 events/s the issue quotes for this machine."""
    batches = plan(workload, config)
    key = "" if method == "unnest" else " PRIMARY KEY"
    async with PostgresDatabase() as url:
        pool = await asyncpg.create_pool(
            url, min_size=config.connections, max_size=config.connections
        )
        try:
            await pool.execute(f"CREATE TABLE raw_events (event_id TEXT{key}, json BYTEA)")
            passes = itertools.count()

            async def insert(conn: asyncpg.Connection, batch: list[Item], suffix: str) -> None:
                ids = [i.event_id + suffix for i in batch]
                if method == "executemany":
                    await conn.executemany(
                        "INSERT INTO raw_events (event_id, json) VALUES ($1, $2)",
                        [(event_id, i.pdu_json) for event_id, i in zip(ids, batch, strict=True)],
                    )
                elif len(batch) == 1:
                    await conn.execute(
                        "INSERT INTO raw_events (event_id, json) VALUES ($1, $2)",
                        ids[0],
                        batch[0].pdu_json,
                    )
                else:
                    await conn.execute(
                        "INSERT INTO raw_events (event_id, json)"
                        " SELECT * FROM unnest($1::text[], $2::bytea[])",
                        ids,
                        [i.pdu_json for i in batch],
                    )

            async def connection(mine: list[list[Item]], suffix: str) -> None:
                async with pool.acquire() as conn:
                    for batch in mine:
                        if method != "unnest":
                            async with conn.transaction():
                                await insert(conn, batch, suffix)
                        else:
                            await insert(conn, batch, suffix)

            began = time.perf_counter()
            while time.perf_counter() - began < RAW_MIN_SECONDS:
                suffix = f"~{next(passes)}"  # a repeat pass stores the events under new IDs
                await asyncio.gather(*(connection(b, suffix) for b in batches))
            wall = time.perf_counter() - began
            count = await pool.fetchval("SELECT count(*) FROM raw_events")
            assert count == next(passes) * sum(len(x) for b in batches for x in b)
        finally:
            await pool.close()
    return int(count) / wall


async def run_once(config: Config, workload: Workload, workdir: Path, profile: Path | None) -> Run:
    log = workdir / "service.log"
    if config.backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=workdir) as d:
            return await run_service(config, workload, f"sqlite:///{d}/bench.db", log, profile)
    async with PostgresDatabase() as url:
        return await run_service(config, workload, url, log, profile)


# -- profile summary -----------------------------------------------------------------------


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample ``pid`` until SIGINT, writing collapsed stacks (``frame;frame;... count``)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("--profile needs py-spy: pip install -e '.[bench]'")
    proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "400", "--format", "raw",
         "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)  # attached before the clock starts
    return proc


def summarise_profile(paths: list[Path], events: int, top: int = 30) -> str:
    """Where the sampled CPU time goes: by area (the file of the innermost frame), the top
    functions by self time, and roomserver's functions by inclusive time; as shares of the
    busy samples and in µs per event (from the sampling rate)."""
    self_time: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            total += count
            leaf = frames[-1]
            self_time[_short(leaf)] += count
            areas[_area(leaf)] += count
            for function in {_short(f).rsplit(":", 1)[0] for f in frames if "roomserver/" in f}:
                inclusive[function + ")"] += count
    if not total:
        return "(no samples)"
    seconds_per_sample = 1 / 400

    def line(n: int, name: str) -> str:
        return f"  {n / total:6.1%}  {n * seconds_per_sample / events * 1e6:7.1f} µs/event  {name}"

    out = [f"busy {total * seconds_per_sample / events * 1e6:.0f} µs/event, {events} events", ""]
    out += ["by area (self time):"] + [line(n, a) for a, n in areas.most_common()]
    out += ["", "self time:"] + [line(n, f) for f, n in self_time.most_common(top)]
    out += ["", "inclusive time, roomserver functions:"]
    out += [line(n, f) for f, n in inclusive.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in frame:
            head, _, rest = frame.partition("(")
            return f"{head}({rest.split(marker, 1)[1]}" if marker in rest else frame
    return frame


_AREAS = [
    ("roomserver/matrix/", "roomserver.matrix (auth rules, PDUs)"),
    ("roomserver/state/", "roomserver.state"),
    ("roomserver/storage/", "roomserver.storage"),
    ("roomserver/input/", "roomserver.input"),
    ("roomserver/output/", "roomserver.output"),
    ("roomserver/api/", "roomserver.api"),
    ("asyncpg/", "asyncpg (Python part)"),
    ("aiosqlite/", "aiosqlite"),
    ("pydantic", "pydantic"),
    ("fastapi/", "fastapi / starlette"),
    ("starlette/", "fastapi / starlette"),
    ("uvicorn/", "uvicorn"),
    ("asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
]


def _area(frame: str) -> str:
    for marker, area in _AREAS:
        if marker in frame:
            return area
    return "other Python"


# -- statements per request (in process) --------------------------------------------------


async def sql_trace(config: Config, workload: Workload) -> str:
    """The configuration's requests through the input pipeline in this process (no HTTP),
    every statement asyncpg sends counted and timed -- BEGIN, COMMIT and the pool's reset
    of a released connection included -- to show the round trips the pipeline makes."""
    from asyncpg.connection import Connection as AsyncpgConnection

    from roomserver.cli import tune_collector
    from roomserver.input import Input, InputEvent, InputKind
    from roomserver.matrix.events import parse_headered
    from roomserver.storage import Storage

    counts: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    tracing = False
    originals = {}
    for method in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        original = getattr(AsyncpgConnection, method)
        originals[method] = original

        def traced(self: Any, query: str, *args: Any, _original: Any = original, **kw: Any) -> Any:
            async def run() -> Any:
                began = time.perf_counter()
                try:
                    return await _original(self, query, *args, **kw)
                finally:
                    if tracing:
                        text = " ".join(query.split())
                        key = text if len(text) <= 100 else f"{text[:55]} … {text[-40:]}"
                        counts[key] += 1
                        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - began

            return run()

        setattr(AsyncpgConnection, method, traced)

    def events(items: list[Item]) -> list[InputEvent]:
        return [
            InputEvent(InputKind.NEW, parse_headered(orjson.loads(i.fragment)["event"]))
            for i in items
        ]

    try:
        batches = [b for conn in plan(workload, config) for b in conn]  # one connection
        async with PostgresDatabase() as url:
            storage = await Storage.open(url)
            try:
                service = Input(storage)
                for i in range(0, len(workload.setup), 200):
                    await service.input_room_events(events(workload.setup[i : i + 200]))
                warm = max(1, len(batches) // 10)
                for batch in batches[:warm]:
                    await service.input_room_events(events(batch))
                parsed = [events(b) for b in batches[warm:]]
                # As in the service: its collector settings, and this script's own objects
                # (the workload) kept out of the collections it times.
                tune_collector()
                gc.collect()
                gc.freeze()
                tracing = True
                began = time.perf_counter()
                for request in parsed:
                    await service.input_room_events(request)
                wall = time.perf_counter() - began
                tracing = False
            finally:
                await storage.close()
    finally:
        for method, original in originals.items():
            setattr(AsyncpgConnection, method, original)
    requests = len(parsed)
    groups = sum(len({e.event.room_id for e in request}) for request in parsed)
    total = sum(counts.values())
    out = [
        f"{config.name} in process: {requests} requests, {groups / requests:.1f} rooms each,"
        f" {wall / requests * 1000:.2f} ms/request;"
        f" {total / requests:.1f} statements/request = {total / groups:.1f} per room transaction,"
        f" {sum(seconds.values()) / requests * 1000:.2f} ms/request waiting for them",
        "  per request   µs each  statement",
    ]
    for key, n in counts.most_common(25):
        out.append(f"  {n / requests:11.2f} {seconds[key] / n * 1e6:9.0f}  {key}")
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------


def machine() -> str:
    cpu = cpu_model()
    libs = ", ".join(
        f"{p} {package_version(p)}"
        for p in (
            "fastapi",
            "starlette",
            "uvicorn",
            "pydantic",
            "asyncpg",
            "aiosqlite",
            "httpx",
            "orjson",
        )
    )
    return (
        f"{cpu}, {os.cpu_count()} cores; {platform.platform()}\n"
        f"Python {platform.python_version()}; {libs}; SQLite {sqlite3.sqlite_version}"
    )


async def postgres_version() -> str:
    conn = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def configs(args: argparse.Namespace) -> list[Config]:
    out = []
    for backend in ("postgres", "sqlite"):
        for rooms in (1, 100):
            for batch in (1, 100):
                events = args.events_single if batch == 1 else args.events_batched
                config = Config(backend, rooms, batch, events)
                if not args.only or config.name in args.only:
                    out.append(config)
    return out


def table(results: list[Result]) -> str:
    head = (
        "| backend | rooms | batch | conns | events/s | p50 ms | p99 ms | cpu µs/event |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [head]
    for r in results:
        c = r.config
        rows.append(
            f"| {c.backend} | {c.rooms} | {c.batch} | {c.connections}"
            f" | {r.median('events_per_s'):,.0f}"
            f" | {r.median('p50_ms'):.1f} | {r.median('p99_ms'):.1f}"
            f" | {r.median('cpu_us_per_event'):,.0f} |"
        )
    with_raw = [r for r in results if r.raw]
    if not with_raw:
        return "\n".join(rows)
    rows += [
        "",
        "Raw baselines (PostgreSQL): events/s, and the service's rate as a share of it",
        "",
    ]
    rows.append(
        "| rooms | batch | service events/s | "
        + " | ".join(f"{m} | service/{m}" for m in RAW_METHODS)
        + " |"
    )
    rows.append("|---:|---:|---:|" + "---:|---:|" * len(RAW_METHODS))
    for r in with_raw:
        eps = r.median("events_per_s")
        raws = [statistics.median(r.raw[m]) for m in RAW_METHODS]
        rows.append(
            f"| {r.config.rooms} | {r.config.batch} | {eps:,.0f} | "
            + " | ".join(f"{x:,.0f} | {eps / x:.2f}" for x in raws)
            + " |"
        )
    rows += [""] + [f"- {m}: {what}" for m, what in RAW_METHODS.items()]
    return "\n".join(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events-single", type=int, default=1500, help="per config, batch 1")
    parser.add_argument("--events-batched", type=int, default=6000, help="per config, batch 100")
    parser.add_argument("--only", nargs="*", help="configs as backend:rooms:batch")
    parser.add_argument("--profile", action="store_true", help="py-spy the first config's runs")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run")
    parser.add_argument(
        "--sql", action="store_true", help="count the statements per request (PostgreSQL)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.events_single, args.events_batched = 1, 300, 1000
    began = time.monotonic()
    print(machine())
    print("load average at the start " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"PostgreSQL {await postgres_version()} on loopback\n")
    todo = configs(args)
    events = max(c.events for c in todo)
    workloads: dict[int, Workload] = {}
    for rooms in sorted({c.rooms for c in todo}):
        t = time.monotonic()
        workloads[rooms] = build_workload(rooms, events, args.seed)
        print(f"built {len(workloads[rooms].setup) + events} events for {rooms} room(s)"
              f" in {time.monotonic() - t:.1f}s")  # fmt: skip
    if args.sql:
        for config in todo:
            if config.backend == "postgres":
                print(await sql_trace(config, workloads[config.rooms]), "\n")
        return
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="rs-bench-") as tmp:
        workdir = Path(tmp)
        for index, config in enumerate(todo):
            result = Result(config)
            for run in range(args.runs):
                profile = workdir / f"profile-{run}.txt" if args.profile and index == 0 else None
                r = await run_once(config, workloads[config.rooms], workdir, profile)
                if r.failures:
                    raise RuntimeError(f"{config.name}: {r.failures} events not accepted")
                result.runs.append(r)
                if config.backend == "postgres":
                    for method in RAW_METHODS:
                        rate = await run_raw(config, workloads[config.rooms], method)
                        result.raw.setdefault(method, []).append(rate)
            runs = ", ".join(f"{r.events_per_s:,.0f}" for r in result.runs)
            raws = "".join(
                f"; raw {name} " + ", ".join(f"{x:,.0f}" for x in values)
                for name, values in result.raw.items()
            )
            print(f"{config.name}: events/s per run {runs}{raws}", flush=True)
            results.append(result)
            if args.profile and index == 0:
                profiles = sorted(workdir.glob("profile-*.txt"))
                timed = sum(r.timed_events for r in result.runs)
                print(f"\nprofile of {config.name} (service process, timed phase):")
                print(summarise_profile(profiles, timed))
                print()
    print()
    print(table(results))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nwhole run {time.monotonic() - began:.0f}s; load average at the end {load}")


if __name__ == "__main__":
    asyncio.run(main())
