"""State resolution on hand-built rooms: the classic scenarios and every algorithm switch.

Each switch test resolves the same kind of fork with two algorithms and shows the answers
differ (v1 vs v2, v2 vs v2.1), so an algorithm wired to the wrong room version fails
here. A property test grows random forked rooms and checks the fast implementation
against the plain reference one (``stateres_reference``), in every state-set order.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
import stateres_reference as reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomserver.matrix.auth import auth_types_for_event, check_auth
from roomserver.matrix.builder import EventBuilder
from roomserver.matrix.errors import AuthError
from roomserver.matrix.events import CREATE, JOIN_RULES, MEMBER, POWER_LEVELS, Event
from roomserver.matrix.room_versions import RoomVersion, StateResAlgorithm, room_version
from roomserver.matrix.stateres import (
    AuthDifference,
    MissingEventsError,
    StateResolutionError,
    auth_difference_from_events,
    partition_state,
    resolve_state,
)

SERVER = "example.test"
ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"
CAROL = f"@carol:{SERVER}"
EVE = f"@eve:{SERVER}"
TOPIC = "m.room.topic"
Key = tuple[str, str]

_builder = EventBuilder(SERVER)


class Room:
    """Events built by hand: explicit auth events, timestamps and depths."""

    def __init__(self, version: str) -> None:
        self.version = room_version(version)
        self.events: dict[str, Event] = {}
        self.clock = 1_000
        self.room_id: str | None = (
            None if self.version.room_id_from_create_event else f"!r:{SERVER}"
        )
        content: dict[str, Any] = {"room_version": version}
        if not self.version.implicit_room_creator:
            content["creator"] = ALICE
        self.create = self.add(CREATE, ALICE, content, "", auth=())
        if self.room_id is None:
            self.room_id = "!" + self.create.event_id[1:]

    def add(
        self,
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        auth: Iterable[Event],
        prev: Sequence[Event] = (),
        ts: int | None = None,
        depth: int | None = None,
    ) -> Event:
        """One event; the create event is added to ``auth`` (left out in v12)."""
        auth = list(auth)
        if type != CREATE and not self.version.room_id_from_create_event:
            auth.insert(0, self.create)
        self.clock += 1
        event = _builder.build(
            self.version,
            type=type,
            sender=sender,
            content=content,
            room_id=self.room_id,
            state_key=state_key,
            prev_events=prev,
            auth_events=auth,
            origin_server_ts=ts if ts is not None else self.clock,
            depth=depth,
        )
        self.events[event.event_id] = event
        return event

    def join(self, user: str, *auth: Event) -> Event:
        return self.add(MEMBER, user, {"membership": "join"}, user, auth=auth)


def state(*events: Event) -> dict[Key, str]:
    return {e.state_tuple: e.event_id for e in events}


def resolve(version: str | RoomVersion, sets: list[dict[Key, str]], room: Room) -> dict[Key, str]:
    """Resolve, and check the answer is the same for every order of the state sets."""
    answers = [resolve_state(version, list(p), room.events) for p in itertools.permutations(sets)]
    assert all(a == answers[0] for a in answers)
    return answers[0]


def base_room(version: str, bob_level: int = 50) -> tuple[Room, dict[str, Event]]:
    """Alice (creator) and Bob (moderator) in a public room; Carol and Eve joined."""
    room = Room(version)
    a_join = room.join(ALICE)
    users = {BOB: bob_level}
    if not room.version.privileged_creators:
        users[ALICE] = 100
    pl = room.add(POWER_LEVELS, ALICE, {"users": users}, "", auth=[a_join])
    jr = room.add(JOIN_RULES, ALICE, {"join_rule": "public"}, "", auth=[a_join, pl])
    e = {"create": room.create, "a_join": a_join, "pl": pl, "jr": jr}
    for name, user in (("b_join", BOB), ("c_join", CAROL), ("e_join", EVE)):
        e[name] = room.join(user, pl, jr)
    return room, e


VERSIONS = ["2", "10", "12"]


@pytest.mark.parametrize("version", VERSIONS)
def test_ban_vs_power_levels(version: str) -> None:
    """Alice demotes Bob while he bans Eve: the higher-powered sender's change goes first,
    and the ban fails against it."""
    room, e = base_room(version)
    users = {} if room.version.privileged_creators else {ALICE: 100}
    demote = room.add(POWER_LEVELS, ALICE, {"users": users}, "", auth=[e["a_join"], e["pl"]])
    ban = room.add(
        MEMBER, BOB, {"membership": "ban"}, EVE, auth=[e["pl"], e["b_join"], e["e_join"]]
    )
    common = [room.create, e["a_join"], e["jr"], e["b_join"], e["c_join"]]
    got = resolve(
        version, [state(*common, demote, e["e_join"]), state(*common, e["pl"], ban)], room
    )
    assert got[(POWER_LEVELS, "")] == demote.event_id
    assert got[(MEMBER, EVE)] == e["e_join"].event_id


@pytest.mark.parametrize("version", VERSIONS)
def test_ban_stands_when_power_is_kept(version: str) -> None:
    """The same fork without the demotion: Bob's ban stands (so the test above is about power)."""
    room, e = base_room(version)
    topic = room.add(TOPIC, ALICE, {"topic": "x"}, "", auth=[e["a_join"], e["pl"]])
    ban = room.add(
        MEMBER, BOB, {"membership": "ban"}, EVE, auth=[e["pl"], e["b_join"], e["e_join"]]
    )
    common = [room.create, e["a_join"], e["jr"], e["b_join"], e["c_join"], e["pl"]]
    got = resolve(version, [state(*common, topic, e["e_join"]), state(*common, ban)], room)
    assert got[(MEMBER, EVE)] == ban.event_id
    assert got[(TOPIC, "")] == topic.event_id


@pytest.mark.parametrize("version", VERSIONS)
def test_topic_reset(version: str) -> None:
    """Bob sets a topic while Alice demotes him: the room falls back to Alice's older topic."""
    room, e = base_room(version)
    old_topic = room.add(TOPIC, ALICE, {"topic": "old"}, "", auth=[e["a_join"], e["pl"]])
    users = {} if room.version.privileged_creators else {ALICE: 100}
    demote = room.add(POWER_LEVELS, ALICE, {"users": users}, "", auth=[e["a_join"], e["pl"]])
    bob_topic = room.add(TOPIC, BOB, {"topic": "bob's"}, "", auth=[e["pl"], e["b_join"]])
    common = [room.create, e["a_join"], e["jr"], e["b_join"], e["c_join"], e["e_join"]]
    got = resolve(
        version,
        [state(*common, demote, old_topic), state(*common, e["pl"], bob_topic)],
        room,
    )
    assert got[(POWER_LEVELS, "")] == demote.event_id
    assert got[(TOPIC, "")] == old_topic.event_id


@pytest.mark.parametrize("version", VERSIONS)
def test_join_rule_evasion(version: str) -> None:
    """Alice makes the room invite-only while Zed joins through the old public rule: the
    join rules are resolved first, and the join fails against them."""
    room, e = base_room(version)
    invite_only = room.add(
        JOIN_RULES, ALICE, {"join_rule": "invite"}, "", auth=[e["a_join"], e["pl"]]
    )
    zed = f"@zed:{SERVER}"
    z_join = room.join(zed, e["pl"], e["jr"])
    common = [room.create, e["a_join"], e["pl"], e["b_join"], e["c_join"], e["e_join"]]
    got = resolve(version, [state(*common, invite_only), state(*common, e["jr"], z_join)], room)
    assert got[(JOIN_RULES, "")] == invite_only.event_id
    assert (MEMBER, zed) not in got


def test_v2_and_v21_disagree() -> None:
    """v2.1 replays conflicted events from an empty state, v2 from the unconflicted state.

    Alice promotes Bob, then leaves. One state set is stale about the power levels. In v2,
    both power levels events are replayed over a state where Alice has left, both fail,
    and the room loses its power levels; v2.1 checks them against their own auth events
    and keeps Alice's last one. The events are the same: only the algorithm differs.
    """
    room, e = base_room("12", bob_level=0)
    promote = room.add(POWER_LEVELS, ALICE, {"users": {BOB: 50}}, "", auth=[e["a_join"], e["pl"]])
    leave = room.add(MEMBER, ALICE, {"membership": "leave"}, ALICE, auth=[promote, e["a_join"]])
    common = [room.create, leave, e["jr"], e["b_join"], e["c_join"], e["e_join"]]
    sets = [state(*common, promote), state(*common, e["pl"])]

    v21 = resolve("12", sets, room)
    assert v21[(POWER_LEVELS, "")] == promote.event_id

    as_v2 = dataclasses.replace(room_version("12"), state_res=StateResAlgorithm.V2)
    v2 = resolve(as_v2, sets, room)
    assert (POWER_LEVELS, "") not in v2
    assert {k: v for k, v in v2.items()} == {
        k: v for k, v in v21.items() if k != (POWER_LEVELS, "")
    }


def test_v21_replays_the_conflicted_subgraph() -> None:
    """An event between two conflicted events is in v2.1's full conflicted set, not in v2's."""
    room, e = base_room("12", bob_level=0)
    pl2 = room.add(POWER_LEVELS, ALICE, {"users": {BOB: 50}}, "", auth=[e["a_join"], e["pl"]])
    topic = room.add(TOPIC, ALICE, {"topic": "t"}, "", auth=[e["a_join"], pl2])
    pl3 = room.add(
        POWER_LEVELS, ALICE, {"users": {BOB: 50, CAROL: 50}}, "", auth=[e["a_join"], pl2]
    )
    common = [room.create, e["a_join"], e["jr"], e["b_join"], e["c_join"], e["e_join"], topic]
    # The second set is stale about the power levels. pl2 is in both sets' auth chains
    # (the common topic cites it), so it is no auth difference...
    sets = [state(*common, pl3), state(*common, e["pl"])]
    plain = auth_difference_from_events(sets, room.events)
    assert plain.auth_difference == {pl3.event_id}
    # ...but it lies on the path pl3 -> pl2 -> pl between the conflicted events.
    with_sub = auth_difference_from_events(sets, room.events, subgraph=True)
    assert with_sub.conflicted_subgraph == {pl3.event_id, pl2.event_id, e["pl"].event_id}
    assert resolve("12", sets, room)[(POWER_LEVELS, "")] == pl3.event_id


@pytest.mark.parametrize(("version", "winner"), [("1", "deep"), ("2", "late")])
def test_v1_and_v2_disagree(version: str, winner: str) -> None:
    """Two concurrent topics by Alice: v1 keeps the deeper event, v2 the later timestamp."""
    room, e = base_room(version)
    deep = room.add(
        TOPIC, ALICE, {"topic": "deep"}, "", auth=[e["a_join"], e["pl"]], depth=50, ts=10
    )
    late = room.add(
        TOPIC, ALICE, {"topic": "late"}, "", auth=[e["a_join"], e["pl"]], depth=20, ts=99_999
    )
    common = [room.create, e["a_join"], e["pl"], e["jr"], e["b_join"]]
    got = resolve(version, [state(*common, deep), state(*common, late)], room)
    assert got[(TOPIC, "")] == {"deep": deep, "late": late}[winner].event_id


def test_v1_power_levels_conflict_is_settled_by_replay() -> None:
    """v1: of two power levels events the shallower is replayed first, then the deeper one
    must pass against it; Bob's self-promotion fails against Alice's demotion."""
    room, e = base_room("1")
    demote = room.add(
        POWER_LEVELS, ALICE, {"users": {ALICE: 100}}, "", auth=[e["a_join"], e["pl"]], depth=10
    )
    bob_up = room.add(
        POWER_LEVELS,
        BOB,
        {"users": {ALICE: 100, BOB: 50, CAROL: 50}},
        "",
        auth=[e["b_join"], e["pl"]],
        depth=11,
    )
    common = [room.create, e["a_join"], e["jr"], e["b_join"]]
    got = resolve("1", [state(*common, demote), state(*common, bob_up)], room)
    assert got[(POWER_LEVELS, "")] == demote.event_id


def test_v1_keeps_keys_that_only_some_sets_have() -> None:
    """v1 counts a key missing from a set as unconflicted; v2 as conflicted (and replays it)."""
    room, e = base_room("1")
    topic = room.add(TOPIC, CAROL, {"topic": "carol"}, "", auth=[e["c_join"], e["pl"]])
    common = [room.create, e["a_join"], e["pl"], e["jr"], e["c_join"]]
    got = resolve("1", [state(*common, topic), state(*common)], room)
    assert got[(TOPIC, "")] == topic.event_id  # v1 never checks it


def test_missing_key_is_conflicted_in_v2() -> None:
    room, e = base_room("10")
    # Carol may not set the topic (state_default 50), so replaying it drops it in v2.
    topic = room.add(TOPIC, CAROL, {"topic": "carol"}, "", auth=[e["c_join"], e["pl"]])
    common = [room.create, e["a_join"], e["pl"], e["jr"], e["c_join"]]
    got = resolve("10", [state(*common, topic), state(*common)], room)
    assert (TOPIC, "") not in got
    assert got == state(*common)


@pytest.mark.parametrize("version", ["1", "10", "12"])
def test_trivial_inputs(version: str) -> None:
    room, e = base_room(version)
    one = state(room.create, e["a_join"], e["pl"])
    assert resolve_state(version, [], room.events) == {}
    assert resolve_state(version, [one], room.events) == one
    assert resolve_state(version, [one, dict(one)], room.events) == one


def test_rejected_events_are_not_admitted() -> None:
    """A conflicted event the caller rejected never enters the state (as in Synapse)."""
    room, e = base_room("10")
    common = [room.create, e["a_join"], e["pl"], e["jr"]]
    t1 = room.add(TOPIC, ALICE, {"topic": "1"}, "", auth=[e["a_join"], e["pl"]])
    t2 = room.add(TOPIC, ALICE, {"topic": "2"}, "", auth=[e["a_join"], e["pl"]])
    sets = [state(*common, t1), state(*common, t2)]
    assert resolve_state("10", sets, room.events)[(TOPIC, "")] == t2.event_id
    got = resolve_state("10", sets, room.events, is_rejected=lambda eid: eid == t2.event_id)
    assert got[(TOPIC, "")] == t1.event_id


def test_rejected_auth_events_are_not_used() -> None:
    """A rejected power levels event in the unconflicted state cannot authorise others."""
    room, e = base_room("10")
    bob_pl = room.add(
        POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: 100}}, "", auth=[e["a_join"], e["pl"]]
    )
    t = room.add(TOPIC, BOB, {"topic": "bob"}, "", auth=[e["b_join"], bob_pl])
    common = [room.create, e["a_join"], bob_pl, e["jr"], e["b_join"]]
    sets = [state(*common, t), state(*common)]
    assert resolve_state("10", sets, room.events)[(TOPIC, "")] == t.event_id
    rejected = {bob_pl.event_id}
    got = resolve_state("10", sets, room.events, is_rejected=rejected.__contains__)
    assert (TOPIC, "") not in got


def test_missing_events_are_named() -> None:
    room, e = base_room("10")
    t1 = room.add(TOPIC, ALICE, {"topic": "1"}, "", auth=[e["a_join"], e["pl"]])
    t2 = room.add(TOPIC, ALICE, {"topic": "2"}, "", auth=[e["a_join"], e["pl"]])
    common = [room.create, e["a_join"], e["pl"], e["jr"]]
    events = dict(room.events)
    del events[e["a_join"].event_id]
    with pytest.raises(MissingEventsError) as info:
        resolve_state("10", [state(*common, t1), state(*common, t2)], events)
    assert info.value.event_ids == {e["a_join"].event_id}


def test_events_of_another_room_are_refused() -> None:
    room, e = base_room("10")
    stray = _builder.build(
        room.version,
        type=TOPIC,
        sender=ALICE,
        content={"topic": "y"},
        room_id="!elsewhere:example.test",
        state_key="",
        auth_events=[room.create, e["a_join"], e["pl"]],
    )
    room.events[stray.event_id] = stray
    common = [room.create, e["a_join"], e["pl"], e["jr"]]
    with pytest.raises(StateResolutionError):
        resolve_state("10", [state(*common), state(*common, stray)], room.events)


def test_auth_difference_provider_is_used() -> None:
    """The injected provider's answer is what the algorithm replays."""
    room, e = base_room("10")
    t1 = room.add(TOPIC, ALICE, {"topic": "1"}, "", auth=[e["a_join"], e["pl"]])
    t2 = room.add(TOPIC, ALICE, {"topic": "2"}, "", auth=[e["a_join"], e["pl"]])
    common = [room.create, e["a_join"], e["pl"], e["jr"]]
    sets = [state(*common, t1), state(*common, t2)]
    seen: list[tuple[frozenset[str], bool]] = []

    def provider(
        state_sets: Sequence[Any], conflicted_events: frozenset[str], *, subgraph: bool
    ) -> AuthDifference:
        seen.append((conflicted_events, subgraph))
        return AuthDifference(frozenset())

    assert resolve_state("10", sets, room.events, auth_difference=provider) == state(*common, t2)
    assert seen == [(frozenset({t1.event_id, t2.event_id}), False)]


def test_partition_state() -> None:
    a = {("a", ""): "$1", ("b", ""): "$2", ("c", ""): "$3"}
    b = {("a", ""): "$1", ("b", ""): "$9", ("d", ""): "$4"}
    unconflicted, conflicted = partition_state([a, b])
    assert unconflicted == {("a", ""): "$1"}
    assert conflicted == {
        ("b", ""): {"$2", "$9"},
        ("c", ""): {"$3"},
        ("d", ""): {"$4"},
    }


# --- random forks: the fast implementation against the reference -----------------------

USERS = [f"@u{i}:{SERVER}" for i in range(8)]


class Branch:
    """A line of history that only keeps events the auth rules accept against its state."""

    def __init__(self, room: Room, tip: Event, current: dict[Key, Event]) -> None:
        self.room = room
        self.tip = tip
        self.state = dict(current)

    def send(self, type: str, sender: str, content: dict[str, Any], state_key: str) -> Event | None:
        room = self.room
        probe = _builder.build(
            room.version, type=type, sender=sender, content=content,
            room_id=room.room_id, state_key=state_key,
        )  # fmt: skip
        auth = [
            self.state[k]
            for k in auth_types_for_event(probe)
            if k in self.state and not (room.version.room_id_from_create_event and k[0] == CREATE)
        ]
        room.clock += random.Random(room.clock).choice([0, 1, 1, 2])  # some equal timestamps
        event = _builder.build(
            room.version, type=type, sender=sender, content=content, room_id=room.room_id,
            state_key=state_key, prev_events=[self.tip], auth_events=auth,
            origin_server_ts=room.clock,
        )  # fmt: skip
        try:
            check_auth(event, self.state)
        except AuthError:
            return None
        room.events[event.event_id] = event
        self.state[event.state_tuple] = event
        self.tip = event
        return event


def _random_op(rng: random.Random, branch: Branch) -> None:
    members = [k[1] for k, ev in branch.state.items() if k[0] == MEMBER and ev.membership == "join"]
    sender = rng.choice([*members, rng.choice(USERS)])
    target = rng.choice(USERS)
    op = rng.choice(["join", "join", "leave", "ban", "kick", "invite", "pl", "pl", "jr", "topic"])
    if op == "join":
        branch.send(MEMBER, target, {"membership": "join"}, target)
    elif op == "leave":
        branch.send(MEMBER, sender, {"membership": "leave"}, sender)
    elif op in ("ban", "kick", "invite"):
        membership = {"ban": "ban", "kick": "leave", "invite": "invite"}[op]
        branch.send(MEMBER, sender, {"membership": membership}, target)
    elif op == "pl":
        users = {u: rng.choice([0, 50, 100]) for u in rng.sample(USERS, 3)}
        if not branch.room.version.privileged_creators:
            users[ALICE] = 100
        content = {"users": users, "ban": rng.choice([50, 100]), "state_default": 50}
        branch.send(POWER_LEVELS, sender, content, "")
    elif op == "jr":
        branch.send(JOIN_RULES, sender, {"join_rule": rng.choice(["public", "invite"])}, "")
    else:
        branch.send(TOPIC, sender, {"topic": str(rng.random())}, "")


def random_fork(seed: int, version: str) -> tuple[Room, list[list[dict[Key, str]]]]:
    """A room forked into 2-3 branches, twice; the state sets of every merge."""
    rng = random.Random(seed)
    room, e = base_room(version)
    main = Branch(room, e["e_join"], {ev.state_tuple: ev for ev in e.values()})
    merges: list[list[dict[Key, str]]] = []
    for _ in range(2):
        branches = [Branch(room, main.tip, main.state) for _ in range(rng.choice([2, 2, 3]))]
        for branch in branches:
            for _ in range(rng.randint(2, 8)):
                _random_op(rng, branch)
        sets = [{k: ev.event_id for k, ev in b.state.items()} for b in branches]
        if rng.random() < 0.3:  # a stale set: one key points back to an older event
            older = [ev for ev in room.events.values() if ev.state_key is not None]
            victim = rng.choice(older)
            sets[-1][victim.state_tuple] = victim.event_id
        merges.append(sets)
        resolved = resolve_state(version, sets, room.events)
        main = Branch(room, branches[0].tip, {k: room.events[v] for k, v in resolved.items()})
    return room, merges


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(seed=st.integers(0, 2**32), version=st.sampled_from(["2", "10", "12"]))
def test_random_forks_match_the_reference(seed: int, version: str) -> None:
    room, merges = random_fork(seed, version)
    v = room_version(version)
    for sets in merges:
        expected = reference.resolve(v, sets, room.events)
        for order in itertools.permutations(range(len(sets))):
            assert resolve_state(v, [sets[i] for i in order], room.events) == expected
        # the auth difference and the subgraph, against whole auth chains
        chains = [reference.auth_chain(set(s.values()), room.events) for s in sets]
        diff = auth_difference_from_events(sets, room.events, subgraph=True)
        assert diff.auth_difference == set().union(*chains) - chains[0].intersection(*chains[1:])
        _, conflicted = partition_state(sets)
        conflicted_events = set().union(*conflicted.values())
        below = reference.auth_chain(conflicted_events, room.events)
        assert diff.conflicted_subgraph == {
            x for x in below if reference.auth_chain({x}, room.events) & conflicted_events
        }
