"""Make valid, signed events for any room version.

Tests, benchmarks and the CLI build rooms with :class:`EventBuilder`; it fills in what the
room version wants (reference format, event ID, v12 room ID), the content hash and the
signature, and returns a parsed :class:`Event`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from typing import Any

from signedjson.key import generate_signing_key
from signedjson.types import SigningKey

from .auth import auth_types_for_event
from .events import CREATE, Event, parse_pdu
from .hashing import content_hash, reference_sha256
from .room_versions import EventFormat, RoomVersion
from .signing import sign_event

_counter = itertools.count(1)


class EventBuilder:
    """Builds events of one server: ``EventBuilder("example.org").create(...)``."""

    def __init__(self, server_name: str, key: SigningKey | None = None) -> None:
        self.server_name = server_name
        self.key = key if key is not None else generate_signing_key("auto")

    def build(
        self,
        version: RoomVersion,
        *,
        type: str,
        sender: str,
        content: dict[str, Any],
        room_id: str | None,
        prev_events: Sequence[Event] = (),
        auth_events: Sequence[Event] = (),
        state_key: str | None = None,
        depth: int | None = None,
        origin_server_ts: int | None = None,
        redacts: str | None = None,
        extra_signers: Iterable[tuple[str, SigningKey]] = (),
        extra_fields: dict[str, Any] | None = None,
    ) -> Event:
        """One signed event. ``room_id`` is ignored (left out) for a v12 create event."""
        pdu: dict[str, Any] = {
            "type": type,
            "sender": sender,
            "content": content,
            "depth": depth
            if depth is not None
            else max((e.depth for e in prev_events), default=0) + 1,
            "origin_server_ts": origin_server_ts
            if origin_server_ts is not None
            else int(time.time() * 1000),
            "prev_events": _refs(prev_events, version),
            "auth_events": _refs(auth_events, version),
        }
        if not (version.room_id_from_create_event and type == CREATE):
            if room_id is None:
                raise ValueError("room_id is required except for a room version 12 create event")
            pdu["room_id"] = room_id
        if state_key is not None:
            pdu["state_key"] = state_key
        if redacts is not None:
            if version.redaction.value >= 11:
                pdu["content"] = {**content, "redacts": redacts}
            else:
                pdu["redacts"] = redacts
        if version.event_format is EventFormat.V1:
            pdu["event_id"] = f"${next(_counter)}x{time.monotonic_ns()}:{self.server_name}"
            pdu["origin"] = self.server_name
        if extra_fields:
            pdu.update(extra_fields)
        pdu["hashes"] = {"sha256": content_hash(pdu)}
        sign_event(pdu, version, self.server_name, self.key)
        for server, key in extra_signers:
            sign_event(pdu, version, server, key)
        return parse_pdu(pdu, version)


def _refs(events: Sequence[Event], version: RoomVersion) -> list[Any]:
    if version.event_format is EventFormat.V1:
        return [[e.event_id, {"sha256": reference_sha256(e.pdu, version)}] for e in events]
    return [e.event_id for e in events]


def room_id_for(create: Event) -> str:
    """The room ID a v12 create event names (``!`` + its event ID's hash)."""
    return "!" + create.event_id[1:]


class RoomBuilder:
    """A room grown event by event: each event cites the room's latest events (or given
    ones) and the auth events the rules select from the room's state (or a given state).

    One :class:`EventBuilder` per server signs its users' events. Timestamps count up from
    ``ts`` so that two rooms built in the same millisecond still differ (a v12 room ID is
    the hash of its create event).
    """

    _serial = itertools.count(1)

    def __init__(
        self,
        version: RoomVersion,
        creator: str,
        *,
        builders: dict[str, EventBuilder] | None = None,
        room_id: str | None = None,
        ts: int | None = None,
        create_content: dict[str, Any] | None = None,
    ) -> None:
        self.version = version
        self.builders = builders if builders is not None else {}
        self.ts = ts if ts is not None else 1_700_000_000_000 + next(self._serial) * 1_000_000
        self.state: dict[tuple[str, str], Event] = {}
        self.latest: list[Event] = []
        self.events: list[Event] = []
        content: dict[str, Any] = {"room_version": version.identifier}
        if not version.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        server = creator.split(":", 1)[1]
        self.room_id = room_id or f"!r{next(self._serial)}x{self.ts}:{server}"
        self.create = self.send(CREATE, creator, content, "")
        self.room_id = self.create.room_id

    def builder(self, user_id: str) -> EventBuilder:
        server = user_id.split(":", 1)[1]
        if server not in self.builders:
            self.builders[server] = EventBuilder(server)
        return self.builders[server]

    def event(
        self,
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        prev: Sequence[Event] | None = None,
        state: dict[tuple[str, str], Event] | None = None,
        auth: Sequence[Event] | None = None,
        **kwargs: Any,
    ) -> Event:
        """A new event, not applied to the room (see :meth:`apply`). It cites ``auth``, or
        else the auth events the rules select from ``state`` (default: the room's)."""
        state = self.state if state is None else state
        prev_events = list(prev) if prev is not None else list(self.latest)
        self.ts += 1
        common: dict[str, Any] = dict(
            type=type,
            sender=sender,
            content=content,
            state_key=state_key,
            room_id=self.room_id,
            origin_server_ts=self.ts,
            prev_events=prev_events,
            **kwargs,
        )
        b = self.builder(sender)
        if auth is None:
            draft = b.build(self.version, **common)
            skip_create = self.version.room_id_from_create_event
            auth = [
                state[k]
                for k in auth_types_for_event(draft)
                if k in state and not (skip_create and k[0] == CREATE)
            ]
        return b.build(self.version, auth_events=list(auth), **common)

    def apply(self, event: Event) -> Event:
        """Make ``event`` the room's latest event and, for a state event, part of its state."""
        self.events.append(event)
        cited = set(event.prev_event_ids)
        self.latest = [e for e in self.latest if e.event_id not in cited] + [event]
        if event.state_key is not None:
            self.state[event.state_tuple] = event
        return event

    def send(
        self,
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        **kw: Any,
    ) -> Event:
        return self.apply(self.event(type, sender, content, state_key, **kw))

    def join(self, user_id: str) -> Event:
        return self.send("m.room.member", user_id, {"membership": "join"}, user_id)
