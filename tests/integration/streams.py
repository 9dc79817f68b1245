"""Streams of real signed events for the integration tests: a few rooms, linear and forked.

Each event comes with the outcome the input pipeline must give it the first time it is
processed (``accepted``, ``rejected`` or ``soft_failed``). The rooms hold the cases that
make forward extremities tricky: forks of two or three branches that conflict on the same
state keys (so later events need state resolution), an event rejected by the auth rules (a
non-member's message), and a soft-failed one (a message of a user banned on a concurrent
branch, citing a branch tip that must stay a latest event).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.events import MEMBER, Event
from roomserver.matrix.room_versions import room_version

ALICE = "@alice:a.test"
BOB = "@bob:b.test"
CAROL = "@carol:c.test"
DAVE = "@dave:a.test"
MALLORY = "@mallory:m.test"

ACCEPTED = "accepted"
REJECTED = "rejected"
SOFT_FAILED = "soft_failed"

StateDict = dict[tuple[str, str], Event]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event: Event
    expected: str
    headered: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.event.event_id


class StreamRoom:
    """One room grown by :meth:`step`; ``forked`` rooms fork and merge, linear ones not."""

    def __init__(self, version: str, rng: random.Random, *, forked: bool) -> None:
        self.rng = rng
        self.forked = forked
        self.version = room_version(version)
        self.rb = RoomBuilder(self.version, ALICE)
        self.out: list[StreamEvent] = []
        self.state: StateDict = dict(self.rb.state)
        self.tips: list[Event] = [self.rb.create]
        self.members = [ALICE, BOB, CAROL, DAVE]
        self.banned: set[str] = set()
        self.counter = 0
        self._emit(self.rb.create, ACCEPTED)
        self.soft_fail_done = False
        self._linear(MEMBER, ALICE, {"membership": "join"}, ALICE)
        users = {BOB: 50} if self.version.privileged_creators else {ALICE: 100, BOB: 50}
        levels = {"users": users, "users_default": 0, "state_default": 50, "ban": 50}
        self._linear("m.room.power_levels", ALICE, levels, "")
        self._linear("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        for user in (BOB, CAROL, DAVE):
            self._linear(MEMBER, user, {"membership": "join"}, user)

    @property
    def room_id(self) -> str:
        return self.rb.room_id

    def _emit(self, event: Event, expected: str) -> None:
        self.out.append(StreamEvent(event, expected, event.headered()))

    def _build(
        self,
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None,
        prev: list[Event],
        state: StateDict,
    ) -> Event:
        return self.rb.event(type, sender, content, state_key, prev=prev, state=state)

    def _linear(
        self, type: str, sender: str, content: dict[str, Any], state_key: str | None = None
    ) -> Event:
        event = self._build(type, sender, content, state_key, self.tips, self.state)
        self._emit(event, ACCEPTED)
        self.tips = [event]
        if state_key is not None:
            self.state[(type, state_key)] = event
        return event

    def _random_event(self, prev: list[Event], state: StateDict) -> Event:
        """A message (mostly) or a state change by a member allowed to make it."""
        self.counter += 1
        n = self.counter
        roll = self.rng.random()
        senders = [m for m in self.members if m not in self.banned]
        if roll < 0.65:
            sender = self.rng.choice(senders)
            content = {"msgtype": "m.text", "body": f"message {n}"}
            event = self._build("m.room.message", sender, content, None, prev, state)
        elif roll < 0.85:
            sender = self.rng.choice([ALICE, BOB])
            kind = self.rng.choice(["m.room.topic", "m.room.name"])
            field = "topic" if kind == "m.room.topic" else "name"
            event = self._build(kind, sender, {field: f"{field} {n}"}, "", prev, state)
        else:
            sender = self.rng.choice(senders)
            content = {"membership": "join", "displayname": f"{sender[1:4]} {n}"}
            event = self._build(MEMBER, sender, content, sender, prev, state)
        if event.state_key is not None:
            state[(event.type, event.state_key)] = event
        return event

    def step(self) -> list[StreamEvent]:
        """The room's next few events, in an order the roomserver can take them in."""
        start = len(self.out)
        roll = self.rng.random()
        if roll < 0.03:
            self._rejected()
        elif self.forked and not self.soft_fail_done and len(self.out) > 40:
            self._soft_fail()
        elif self.forked and roll < 0.3:
            self._fork()
        else:
            event = self._random_event(self.tips, self.state)
            self._emit(event, ACCEPTED)
            self.tips = [event]
        return self.out[start:]

    def _fork(self) -> None:
        base_state = self.state
        merged: StateDict = dict(base_state)
        tips: list[Event] = []
        for _ in range(self.rng.choice([2, 2, 3])):
            prev, state = list(self.tips), dict(base_state)
            for _ in range(self.rng.randint(1, 3)):
                event = self._random_event(prev, state)
                self._emit(event, ACCEPTED)
                prev = [event]
            tips.append(prev[0])
            merged.update(state)
        self.tips = tips  # the next event merges them
        self.state = merged

    def _rejected(self) -> None:
        """A non-member's message: refused by the auth rules, never a latest event."""
        content = {"msgtype": "m.text", "body": "let me in"}
        event = self._build("m.room.message", MALLORY, content, None, self.tips, self.state)
        self._emit(event, REJECTED)

    def _soft_fail(self) -> None:
        """Dave is banned on one branch and talks on another: his message passes against
        its own state, fails against the room's current state (soft-failed), and the tip
        it cites stays a forward extremity."""
        self.soft_fail_done = True
        base = list(self.tips)
        ban_state = dict(self.state)
        ban = self._build(MEMBER, ALICE, {"membership": "ban"}, DAVE, base, ban_state)
        self._emit(ban, ACCEPTED)
        self.banned.add(DAVE)  # from now on (the chat below too): not a sender
        chat_state = dict(self.state)
        chat = self._random_event(base, chat_state)
        self._emit(chat, ACCEPTED)
        dave = self._build(
            "m.room.message",
            DAVE,
            {"msgtype": "m.text", "body": "before I knew"},
            None,
            [chat],
            chat_state,
        )
        self._emit(dave, SOFT_FAILED)
        self.state = {**chat_state, **ban_state, (MEMBER, DAVE): ban}
        self.tips = [ban, chat]


def build_stream(
    rng: random.Random, rooms: list[tuple[str, bool]], events: int
) -> tuple[list[StreamRoom], list[StreamEvent]]:
    """``rooms`` as ``(room version, forked)``; about ``events`` events in all, the rooms'
    steps interleaved at random (each room's own events stay in order)."""
    made = [StreamRoom(version, rng, forked=forked) for version, forked in rooms]
    stream: list[StreamEvent] = []
    for room in made:
        stream += room.out
    while len(stream) < events:
        stream += rng.choice(made).step()
    return made, stream
