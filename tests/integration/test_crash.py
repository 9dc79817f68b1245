"""Crash safety: a real service killed with SIGKILL again and again while it inputs events.

A long stream of events (four rooms: linear and forked, room versions 1, 10 and 12, with a
rejected and a soft-failed event) goes to a ``roomserver serve`` child process in batches
of 1-20 events. The test kills the child at random moments -- while a request is in flight
or between requests -- restarts it, checks that every acknowledged event is stored (and
that the database is consistent: :mod:`.consistency`), and resends from the first event
not acknowledged, sometimes with some acknowledged ones in front (those must come back
``already_known``). At the end every event must have been processed exactly as it would
have been without the crashes.

The schedule is random with a fixed seed (``ROOMSERVER_CRASH_SEED`` overrides it); the
seed is printed, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from roomserver.storage import Storage

from .consistency import check_database
from .service import ServiceProcess
from .streams import REJECTED, SOFT_FAILED, StreamEvent, build_stream

SEED = int(os.environ.get("ROOMSERVER_CRASH_SEED", "20240605"))
EVENTS = 1600
MIN_KILLS = 25
MIN_KILLS_IN_FLIGHT = 6
MAX_BATCH = 20
ROOMS = [("10", False), ("10", True), ("12", True), ("1", True)]
INPUT = "/api/roomserver/inputRoomEvents"
QUERY_BY_ID = "/api/roomserver/queryEventsByID"


@dataclass
class Feeder:
    """The test's side: what was sent, what was acknowledged, how often it was killed."""

    stream: list[StreamEvent]
    rng: random.Random
    acked: int = 0
    """Events ``stream[:acked]`` are acknowledged (requests go in order, so it is a prefix)."""
    sent_unanswered: set[str] = field(default_factory=set)
    """Events of requests that got no answer: they may or may not be stored."""
    latency: float = 0.02
    kills: int = 0
    kills_in_flight: int = 0
    resent_acknowledged: int = 0
    stored_unanswered: int = 0
    """Events of unanswered requests found stored (killed after the commit)."""
    requests: int = 0
    problems: list[str] = field(default_factory=list)

    def next_batch(self) -> tuple[int, list[StreamEvent]]:
        start = self.acked
        if start > 0 and (self.rng.random() < 0.2 or start == len(self.stream)):
            start -= self.rng.randint(1, min(MAX_BATCH, start))
        size = self.rng.randint(1, MAX_BATCH)
        return start, self.stream[start : start + size]

    async def post(self, http: httpx.AsyncClient, batch: list[StreamEvent]) -> httpx.Response:
        body = {"input_room_events": [{"kind": 2, "event": e.headered} for e in batch]}
        began = time.monotonic()
        resp = await http.post(
            INPUT, content=orjson.dumps(body), headers={"content-type": "application/json"}
        )
        self.latency = 0.8 * self.latency + 0.2 * (time.monotonic() - began)
        return resp

    def answered(self, start: int, batch: list[StreamEvent], resp: httpx.Response) -> None:
        """Check one answer and move the acknowledged prefix."""
        self.requests += 1
        assert resp.status_code == 200, (SEED, resp.status_code, resp.text[:2000])
        results = resp.json()["results"]
        assert [r["event_id"] for r in results] == [e.event_id for e in batch], SEED
        for index, (item, result) in enumerate(zip(batch, results, strict=True), start):
            outcome = result["outcome"]
            if index < self.acked:
                self.resent_acknowledged += 1
                if outcome != "already_known":
                    self.problems.append(f"acknowledged {item.event_id} came back {outcome}")
            elif outcome == "already_known":
                if item.event_id not in self.sent_unanswered:
                    self.problems.append(f"{item.event_id} already known but never stored")
                self.stored_unanswered += 1
            elif outcome != item.expected:
                self.problems.append(
                    f"{item.event_id}: {outcome} ({result.get('reason')}), expected {item.expected}"
                )
        self.acked = max(self.acked, start + len(batch))

    async def life(self, service: ServiceProcess, requests: int, in_flight: bool) -> None:
        """Some requests to a fresh process, then SIGKILL (during the last one when
        ``in_flight``, else after it)."""
        async with httpx.AsyncClient(base_url=service.base_url, timeout=60.0) as http:
            await self.check_acknowledged(http)
            for n in range(requests):
                start, batch = self.next_batch()
                if n < requests - 1 or not in_flight:
                    self.answered(start, batch, await self.post(http, batch))
                    continue
                task = asyncio.create_task(self.post(http, batch))
                await asyncio.sleep(self.rng.uniform(0.0, self.latency))
                service.kill()
                try:
                    resp = await task
                except httpx.TransportError:
                    self.kills_in_flight += 1
                    self.sent_unanswered.update(e.event_id for e in batch)
                else:
                    self.answered(start, batch, resp)
        service.kill()
        self.kills += 1

    async def check_acknowledged(self, http: httpx.AsyncClient) -> None:
        wanted = [e.event_id for e in self.stream[: self.acked]]
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            resp = await http.post(QUERY_BY_ID, json={"event_ids": wanted[i : i + 500]})
            assert resp.status_code == 200, resp.text
            for event in resp.json()["events"]:
                found.add(event.get("event_id") or "")
        lost = [e for e in wanted if e not in found]
        assert not lost, f"seed {SEED}: acknowledged events lost: {lost[:5]} ({len(lost)})"


async def _stored_flags(url: str) -> dict[str, tuple[bool, bool]]:
    storage = await Storage.open(url, migrate=False)
    try:
        async with storage.read() as tables:
            rows = await tables.conn.fetch(
                "SELECT event_id, is_rejected, is_soft_failed FROM events"
            )
    finally:
        await storage.close()
    return {r[0]: (bool(r[1]), bool(r[2])) for r in rows}


async def test_sigkill_at_random_moments(database_url: str, tmp_path: Path) -> None:
    print(f"\ncrash test seed {SEED} ({database_url.split(':', 1)[0]})")
    began = time.monotonic()
    rng = random.Random(SEED)
    _, stream = build_stream(rng, ROOMS, EVENTS)
    built = time.monotonic()
    feeder = Feeder(stream, rng)
    service = ServiceProcess(database_url, tmp_path / "service.log")

    def batches_left() -> float:
        return (len(stream) - feeder.acked) / (MAX_BATCH / 2)

    check_time = 0.0
    try:
        while feeder.acked < len(stream) or feeder.kills < MIN_KILLS:
            await service.start()
            if feeder.kills:  # the whole database, after every restart
                t = time.monotonic()
                problems = await check_database(database_url)
                check_time += time.monotonic() - t
                assert not problems, f"seed {SEED}, after {feeder.kills} kills: {problems[:10]}"
            kills_left = max(1, MIN_KILLS - feeder.kills)
            most = max(1, round(2 * batches_left() / kills_left))
            await feeder.life(service, rng.randint(1, most), in_flight=rng.random() < 0.6)
            assert not feeder.problems, f"seed {SEED}: {feeder.problems[:10]}"
        await service.start()
        async with httpx.AsyncClient(base_url=service.base_url, timeout=60.0) as http:
            await feeder.check_acknowledged(http)
        service.stop()
    finally:
        service.kill()
    fed = time.monotonic()
    problems = await check_database(database_url)
    assert not problems, f"seed {SEED}: {problems[:10]}"
    flags = await _stored_flags(database_url)
    for item in stream:
        rejected, soft_failed = flags[item.event_id]
        assert rejected == (item.expected == REJECTED), (SEED, item.event_id, item.expected)
        assert soft_failed == (item.expected == SOFT_FAILED), (SEED, item.event_id)
    assert len(flags) == len(stream)
    assert feeder.kills >= MIN_KILLS
    assert feeder.kills_in_flight >= MIN_KILLS_IN_FLIGHT, feeder.kills_in_flight
    assert feeder.resent_acknowledged > 0
    print(
        f"{len(stream)} events, {feeder.requests} answered requests, {feeder.kills} kills"
        f" ({feeder.kills_in_flight} with a request in flight),"
        f" {feeder.resent_acknowledged} acknowledged events resent,"
        f" {feeder.stored_unanswered} unacknowledged events found stored;"
        f" build {built - began:.1f}s, feed+restarts {fed - built:.1f}s"
        f" (of which checks {check_time:.1f}s), final check {time.monotonic() - fed:.1f}s"
    )
