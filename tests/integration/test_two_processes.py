"""Two service processes on one PostgreSQL database, writing into the same rooms at once.

Each writer talks to its own ``roomserver serve`` process. In a loop it asks its process for
a room's latest events and current state (``queryLatestEventsAndState``), builds a few
events on top of them (messages, topic and display name changes, authorised from that
state) and inputs them. The two writers race: both often build on the same latest events,
so the DAG forks and later events merge the forks (with state resolution, as both change
the topic). Afterwards nothing may be lost: every event was accepted and is stored, the
latest events are exactly the DAG's forward extremities, every event's state snapshot
equals a recomputation from the DAG, and the output log holds each event once
(:mod:`.consistency`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_url,
    require_postgres,
)

from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import MEMBER, Event, parse_headered
from roomserver.matrix.room_versions import room_version

from .consistency import check_database
from .service import ServiceProcess
from .streams import ALICE, BOB, CAROL, DAVE

SEED = 4242
ROUNDS = 80
VERSIONS = ["10", "12", "6"]
INPUT = "/api/roomserver/inputRoomEvents"
LATEST = "/api/roomserver/queryLatestEventsAndState"
BY_ID = "/api/roomserver/queryEventsByID"

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh migrated PostgreSQL database (this test is about PostgreSQL's row locks)."""
    require_postgres()
    name = create_postgres_database(request.getfixturevalue("postgres_template"))
    try:
        yield postgres_url(name)
    finally:
        drop_postgres_database(name)


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await http.post(
        path, content=orjson.dumps(body), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 200, (path, resp.status_code, resp.text[:2000])
    answer: dict[str, Any] = resp.json()
    return answer


class Writer:
    """One writer, on its own service process, with its own users."""

    def __init__(
        self,
        name: str,
        http: httpx.AsyncClient,
        builders: dict[str, RoomBuilder],
        users: list[str],
        rng: random.Random,
    ) -> None:
        self.name = name
        self.http = http
        self.builders = builders
        self.users = users
        self.rng = rng
        self.sent: list[str] = []
        self.merges = 0
        self.bad: list[str] = []

    async def _events_on_top(self, room_id: str) -> list[Event]:
        """A few new events of ``room_id`` on top of what this writer's process says."""
        rb = self.builders[room_id]
        answer = await _post(self.http, LATEST, {"room_id": room_id})
        assert answer["room_exists"]
        latest_ids = [ref[0] for ref in answer["latest_events"]]
        found = await _post(self.http, BY_ID, {"event_ids": latest_ids})
        prev = [parse_headered(e) for e in found["events"]]
        assert len(prev) == len(latest_ids), "a latest event is not stored"
        state = {}
        for e in answer["state_events"]:
            event = parse_headered(e)
            state[(event.type, event.state_key or "")] = event
        if len(prev) > 1:
            self.merges += 1
        out: list[Event] = []
        for _ in range(self.rng.randint(1, 4)):
            sender = self.rng.choice(self.users)
            n = len(self.sent) + len(out)
            roll = self.rng.random()
            if roll < 0.6:
                event = rb.event(
                    "m.room.message",
                    sender,
                    {"msgtype": "m.text", "body": f"{self.name} {n}"},
                    prev=prev,
                    state=state,
                )
            elif roll < 0.85:
                event = rb.event(
                    "m.room.topic",
                    sender,
                    {"topic": f"{self.name} {n}"},
                    "",
                    prev=prev,
                    state=state,
                )
            else:
                content = {"membership": "join", "displayname": f"{self.name} {n}"}
                event = rb.event(MEMBER, sender, content, sender, prev=prev, state=state)
            if event.state_key is not None:
                state[(event.type, event.state_key)] = event
            out.append(event)
            prev = [event]
        return out

    async def run(self, rounds: int) -> None:
        rooms = list(self.builders)
        for _ in range(rounds):
            batch: list[Event] = []
            for room_id in self.rng.sample(rooms, self.rng.choice([1, 1, 2])):
                batch += await self._events_on_top(room_id)
            answer = await _post(
                self.http,
                INPUT,
                {"input_room_events": [{"kind": 2, "event": e.headered()} for e in batch]},
            )
            for event, result in zip(batch, answer["results"], strict=True):
                assert result["event_id"] == event.event_id
                if result["outcome"] != "accepted":
                    self.bad.append(f"{event.event_id}: {result}")
            self.sent += [e.event_id for e in batch]
            await asyncio.sleep(self.rng.uniform(0, 0.004))


def _setup_rooms(rng: random.Random) -> tuple[dict[str, RoomBuilder], list[Event]]:
    builders: dict[str, RoomBuilder] = {}
    events: list[Event] = []
    for version in VERSIONS:
        v = room_version(version)
        rb = RoomBuilder(v, ALICE)
        rb.join(ALICE)
        users = {BOB: 100} if v.privileged_creators else {ALICE: 100, BOB: 100}
        rb.send("m.room.power_levels", ALICE, {"users": users, "state_default": 0}, "")
        rb.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        for user in (BOB, CAROL, DAVE):
            rb.join(user)
        builders[rb.room_id] = rb
        events += rb.events
    return builders, events


async def test_two_processes_one_database(postgres_database_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"\ntwo-process test seed {SEED}")
    began = time.monotonic()
    builders, setup = _setup_rooms(rng)
    a = ServiceProcess(postgres_database_url, tmp_path / "a.log", server_name="a.test")
    b = ServiceProcess(postgres_database_url, tmp_path / "b.log", server_name="b.test")
    try:
        await asyncio.gather(a.start(), b.start())
        async with (
            httpx.AsyncClient(base_url=a.base_url, timeout=60.0) as http_a,
            httpx.AsyncClient(base_url=b.base_url, timeout=60.0) as http_b,
        ):
            answer = await _post(
                http_a,
                INPUT,
                {"input_room_events": [{"kind": 2, "event": e.headered()} for e in setup]},
            )
            assert {r["outcome"] for r in answer["results"]} == {"accepted"}
            writers = [  # two per process: each process also races with itself
                Writer(name, http, builders, users, random.Random(rng.random()))
                for name, http, users in (
                    ("a1", http_a, [ALICE]),
                    ("a2", http_a, [CAROL]),
                    ("b1", http_b, [BOB]),
                    ("b2", http_b, [DAVE]),
                )
            ]
            started = time.monotonic()
            await asyncio.gather(*(w.run(ROUNDS) for w in writers))
            wrote = time.monotonic() - started
            everything = [e.event_id for e in setup] + [i for w in writers for i in w.sent]
            for http in (http_a, http_b):  # both processes see every event
                found = await _post(http, BY_ID, {"event_ids": everything})
                assert len(found["events"]) == len(everything)
    finally:
        a.stop()
        b.stop()
    problems = await check_database(postgres_database_url)
    assert not problems, problems[:10]
    for w in writers:
        assert not w.bad, w.bad[:5]
    merges = sum(w.merges for w in writers)
    assert merges >= 5, f"the writers hardly raced ({merges} merges): the test proves little"
    print(
        f"{len(everything)} events ({', '.join(f'{w.name}: {len(w.sent)}' for w in writers)}),"
        f" {merges} merges of forks, writing {wrote:.1f}s, total {time.monotonic() - began:.1f}s"
    )
