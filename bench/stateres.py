"""Benchmark state resolution on large rooms: ``python bench/stateres.py``.

Builds rooms of 5,000 and 20,000 joined members (real signed events, room v10 and v12),
forks each into two branches of ~50 conflicting state changes (power levels, bans,
joins, topics) and times the resolution of the two branch states; building the room is
not timed. Prints the medians next to Synapse's pure-Python v2 on this machine and next
to the straightforward reference implementation (tests/unit/stateres_reference.py).

Options: ``--sizes 5000,20000``, ``--runs N`` (default 7), ``--reference-runs N``
(default 3; 0 skips the reference).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

import stateres_reference  # noqa: E402

from roomserver.matrix.auth import auth_types_for_event, check_auth  # noqa: E402
from roomserver.matrix.builder import EventBuilder  # noqa: E402
from roomserver.matrix.events import Event  # noqa: E402
from roomserver.matrix.room_versions import V10, V12, RoomVersion  # noqa: E402
from roomserver.matrix.stateres import (  # noqa: E402
    AuthDifference,
    StateMap,
    auth_difference_from_events,
    partition_state,
    resolve_state,
)

SERVER = "bench.example"
SYNAPSE_MS = {("v2", 5000): 79.0, ("v2", 20000): 314.0, ("v2.1", 20000): 355.0}
"""Synapse's pure-Python state resolution on this machine (the lead's measurements)."""

Key = tuple[str, str]


class Branch:
    """One line of history: its tip and its state, with events authorised as they go."""

    def __init__(self, room: Room, tip: Event | None, state: dict[Key, Event]) -> None:
        self.room = room
        self.tip = tip
        self.state = dict(state)

    def fork(self) -> Branch:
        return Branch(self.room, self.tip, self.state)

    def send(self, type: str, sender: str, content: dict[str, Any], state_key: str | None) -> Event:
        room = self.room
        version = room.version
        probe = room.builder.build(
            version,
            type=type,
            sender=sender,
            content=content,
            room_id=room.room_id,
            state_key=state_key,
        )
        auth = [
            self.state[k]
            for k in auth_types_for_event(probe)
            if k in self.state
            and not (version.room_id_from_create_event and k[0] == "m.room.create")
        ]
        room.clock += 1
        event = room.builder.build(
            version,
            type=type,
            sender=sender,
            content=content,
            room_id=room.room_id,
            state_key=state_key,
            prev_events=[self.tip] if self.tip is not None else [],
            auth_events=auth,
            origin_server_ts=room.clock,
        )
        if type != "m.room.create":
            check_auth(event, self.state)  # every event of the bench is a legal one
        room.events[event.event_id] = event
        if event.state_key is not None:
            self.state[event.state_tuple] = event
        self.tip = event
        return event


class Room:
    def __init__(self, version: RoomVersion) -> None:
        self.version = version
        self.builder = EventBuilder(SERVER)
        self.events: dict[str, Event] = {}
        self.clock = 1_700_000_000_000
        self.room_id: str | None = None if version.room_id_from_create_event else f"!bench:{SERVER}"


ADMIN = f"@admin:{SERVER}"
ADMIN2 = f"@admin2:{SERVER}"
MODS = [f"@mod{i}:{SERVER}" for i in range(4)]


def member(i: int) -> str:
    return f"@user{i}:{SERVER}"


def build(version: RoomVersion, members: int, seed: int = 1) -> tuple[Room, list[dict[Key, str]]]:
    """A room of ``members`` joined users forked into two branches; returns both states."""
    rng = random.Random(seed)
    room = Room(version)
    main = Branch(room, None, {})
    content: dict[str, Any] = {"room_version": version.identifier}
    if not version.implicit_room_creator:
        content["creator"] = ADMIN
    create = main.send("m.room.create", ADMIN, content, "")
    if room.room_id is None:
        room.room_id = "!" + create.event_id[1:]
    main.send("m.room.member", ADMIN, {"membership": "join"}, ADMIN)
    users: dict[str, int] = {ADMIN2: 100} | dict.fromkeys(MODS, 50)
    if not version.privileged_creators:
        users[ADMIN] = 100
    main.send("m.room.power_levels", ADMIN, {"users": users, "state_default": 50}, "")
    main.send("m.room.join_rules", ADMIN, {"join_rule": "public"}, "")
    for user in [ADMIN2, *MODS]:
        main.send("m.room.member", user, {"membership": "join"}, user)
    main.send("m.room.topic", ADMIN, {"topic": "the beginning"}, "")
    for i in range(members - 1 - 1 - len(MODS)):
        main.send("m.room.member", member(i), {"membership": "join"}, member(i))

    joined = list(range(members - 1 - 1 - len(MODS)))
    rng.shuffle(joined)
    new_users = iter(range(members, members + 1000))
    branches = []
    for admin, mods, victims in (
        (ADMIN, MODS[:2], joined[:15]),
        (ADMIN2, MODS[2:], joined[15:30]),
    ):
        branch = main.fork()
        ops = ["pl"] * 10 + ["ban"] * 15 + ["join"] * 15 + ["topic"] * 10
        rng.shuffle(ops)
        victim_iter = iter(victims)
        levels = dict(users)
        for op in ops:
            if op == "pl":
                levels[member(rng.choice(joined[30:]))] = rng.choice([10, 20, 30])
                branch.send(
                    "m.room.power_levels", admin, {"users": dict(levels), "state_default": 50}, ""
                )
            elif op == "ban":
                target = member(next(victim_iter))
                branch.send("m.room.member", rng.choice(mods), {"membership": "ban"}, target)
            elif op == "join":
                user = member(next(new_users))
                branch.send("m.room.member", user, {"membership": "join"}, user)
            else:
                branch.send("m.room.topic", rng.choice(mods), {"topic": f"t{rng.random()}"}, "")
        branches.append(branch)
    return room, [{k: e.event_id for k, e in b.state.items()} for b in branches]


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(
    version: RoomVersion,
    size: int,
    sets: list[dict[Key, str]],
    events: dict[str, Event],
    runs: int,
    reference_runs: int,
) -> str:
    """One table row: the fast resolution, with a given auth difference, and the reference."""
    algo = version.state_res.value
    _, conflicted = partition_state(sets)
    diff = auth_difference_from_events(sets, events, subgraph=algo == "v2.1")
    expected = resolve_state(version, sets, events)
    ms = median_ms(lambda: resolve_state(version, sets, events), runs)

    def given(
        state_sets: Sequence[StateMap], conflicted_events: frozenset[str], *, subgraph: bool
    ) -> AuthDifference:
        return diff

    with_index = median_ms(
        lambda: resolve_state(version, sets, events, auth_difference=given), runs
    )
    assert resolve_state(version, sets, events, auth_difference=given) == expected
    syn = SYNAPSE_MS.get((algo, size), float("nan"))
    ref_ms = float("nan")
    if reference_runs:
        assert stateres_reference.resolve(version, sets, events) == expected, "disagreement"
        ref_ms = median_ms(
            lambda: stateres_reference.resolve(version, sets, events), reference_runs
        )
    n_conflicted_events = sum(len(v) for v in conflicted.values())
    return (
        f"{size:>7} {version.identifier:>4} {algo:>4} {len(sets[0]):>6} {len(conflicted):>5} "
        f"{n_conflicted_events:>5} {len(diff.auth_difference):>8} {ms:>7.1f} {with_index:>7.1f} "
        f"{syn:>7.0f} {syn / ms:>6.1f} {ref_ms:>8.0f} {ref_ms / ms:>6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reference-runs", type=int, default=3)
    args = parser.parse_args()

    print(f"Python {platform.python_version()} ({platform.python_implementation()})")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"
    )
    print()
    header = (
        f"{'members':>7} {'room':>4} {'algo':>4} {'state':>6} {'confl':>5} {'c.evs':>5} "
        f"{'authdiff':>8} {'ms':>7} {'ms(idx)':>7} {'synapse':>7} {'x syn':>6} "
        f"{'ref ms':>8} {'x ref':>6}"
    )
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        for version in (V10, V12):
            room, sets = build(version, size)
            print(measure(version, size, sets, room.events, args.runs, args.reference_runs))
    print()
    print("state: entries per state set; confl: conflicted keys; c.evs: conflicted events;")
    print("authdiff: auth difference size; ms: median of resolve_state; ms(idx): the same with")
    print("the auth difference given (as a persisted chain index would); synapse: Synapse's")
    print("pure-Python figure on this machine; x syn / x ref: speed-up against it / against")
    print("the reference implementation.")


if __name__ == "__main__":
    main()
