"""The input pipeline's vocabulary: what comes in, what each event's outcome is."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from roomserver.matrix.events import Event


class InputKind(enum.IntEnum):
    """As in Dendrite's ``api.Kind*``; the numbers are on the wire."""

    OUTLIER = 1
    """An event with no known state (an auth or state event fetched for another one)."""
    NEW = 2
    """A new event of the room: it may move the latest events and the current state."""
    BACKFILL = 3
    """A historical event: stored with its state; never moves the latest events."""


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SOFT_FAILED = "soft_failed"
    ALREADY_KNOWN = "already_known"


@dataclass(frozen=True, slots=True)
class TransactionRef:
    session_id: int
    transaction_id: str

    def as_json(self) -> dict[str, Any]:
        """The wire form, ``{"session_id", "id"}``."""
        return {"session_id": self.session_id, "id": self.transaction_id}


@dataclass(frozen=True, slots=True)
class InputEvent:
    kind: InputKind
    event: Event
    state_event_ids: Sequence[str] | None = None
    """The full state before the event, when the caller knows it (``has_state``)."""
    send_as_server: str = ""
    transaction: TransactionRef | None = None
    pre_rejection: str | None = None
    """Why the event is rejected before any auth (e.g. a required signature is missing);
    it is still stored, as rejected, so later events citing it can be judged."""


@dataclass(frozen=True, slots=True)
class InviteInput:
    """An invite for a local user, possibly to a room this server is not in."""

    event: Event
    invite_room_state: Sequence[dict[str, Any]] = ()
    send_as_server: str = ""
    transaction: TransactionRef | None = None


@dataclass(frozen=True, slots=True)
class EventResult:
    event_id: str
    outcome: Outcome
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
