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
