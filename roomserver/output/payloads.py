"""The output stream's events, as JSON payloads in Dendrite's ``api.OutputEvent`` shape.

``new_room_event`` carries the state deltas a syncserver needs to keep the current state and
to know the state at the event without asking; ``historical`` (our extension) marks
backfilled events, which change neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson


def new_room_event(
    event: dict[str, Any],
    *,
    latest_event_ids: Sequence[str],
    adds_state_event_ids: Sequence[str],
    removes_state_event_ids: Sequence[str],
    last_sent_event_id: str,
    state_before_adds_event_ids: Sequence[str],
    state_before_removes_event_ids: Sequence[str],
    send_as_server: str,
    transaction_id: dict[str, Any] | None,
    historical: bool = False,
) -> bytes:
    body: dict[str, Any] = {
        "event": event,
        "latest_event_ids": list(latest_event_ids),
        "adds_state_event_ids": list(adds_state_event_ids),
        "removes_state_event_ids": list(removes_state_event_ids),
        "last_sent_event_id": last_sent_event_id,
        "state_before_adds_event_ids": list(state_before_adds_event_ids),
        "state_before_removes_event_ids": list(state_before_removes_event_ids),
        "send_as_server": send_as_server,
        "transaction_id": transaction_id,
    }
    if historical:
        body["historical"] = True
    return orjson.dumps({"type": "new_room_event", "new_room_event": body})


def new_invite_event(event: dict[str, Any], room_version: str) -> bytes:
    return orjson.dumps(
        {
            "type": "new_invite_event",
            "new_invite_event": {"room_version": room_version, "event": event},
        }
    )


def retire_invite_event(
    invite_event_id: str, target_user_id: str, retired_by_event_id: str, membership: str
) -> bytes:
    # Dendrite's OutputRetireInviteEvent has no JSON tags: Go writes the field names as is.
    return orjson.dumps(
        {
            "type": "retire_invite_event",
            "retire_invite_event": {
                "EventID": invite_event_id,
                "TargetUserID": target_user_id,
                "RetiredByEventID": retired_by_event_id,
                "Membership": membership,
            },
        }
    )
