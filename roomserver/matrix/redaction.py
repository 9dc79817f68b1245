"""The redaction algorithms: what of an event survives when it is redacted.

Redaction also defines the reference hash (and so the event ID of rooms v3+), which makes
these rules part of the event format, not just a content policy.
"""

from __future__ import annotations

from typing import Any

from .room_versions import RedactionRules, RoomVersion

_TOP_LEVEL_V1 = frozenset(
    {
        "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
        "signatures", "depth", "prev_events", "prev_state", "auth_events", "origin",
        "origin_server_ts", "membership",
    }
)  # fmt: skip
_TOP_LEVEL_V11 = _TOP_LEVEL_V1 - {"origin", "membership", "prev_state"}

_POWER_LEVEL_KEYS = ("ban", "events", "events_default", "kick", "redact", "state_default",
                     "users", "users_default")  # fmt: skip


def _content_keys(event_type: str, rules: RedactionRules) -> tuple[str, ...] | None:
    """The content keys kept for ``event_type``; ``None`` means all of them."""
    v = rules.value
    if event_type == "m.room.member":
        return ("membership", "join_authorised_via_users_server") if v >= 9 else ("membership",)
    if event_type == "m.room.create":
        return None if v >= 11 else ("creator",)
    if event_type == "m.room.join_rules":
        return ("join_rule", "allow") if v >= 8 else ("join_rule",)
    if event_type == "m.room.power_levels":
        return (*_POWER_LEVEL_KEYS, "invite") if v >= 11 else _POWER_LEVEL_KEYS
    if event_type == "m.room.history_visibility":
        return ("history_visibility",)
    if event_type == "m.room.aliases" and v < 6:
        return ("aliases",)
    if event_type == "m.room.redaction" and v >= 11:
        return ("redacts",)
    return ()


def redact(pdu: dict[str, Any], version: RoomVersion) -> dict[str, Any]:
    """A new dict holding what ``version``'s redaction algorithm keeps of ``pdu``."""
    rules = version.redaction
    allowed = _TOP_LEVEL_V11 if rules.value >= 11 else _TOP_LEVEL_V1
    out = {k: v for k, v in pdu.items() if k in allowed}
    content = pdu.get("content")
    if not isinstance(content, dict):
        out["content"] = {}
        return out
    event_type = pdu.get("type")
    keys = _content_keys(event_type, rules) if isinstance(event_type, str) else ()
    if keys is None:
        out["content"] = dict(content)
        return out
    kept = {k: content[k] for k in keys if k in content}
    if event_type == "m.room.member" and rules.value >= 11:
        tpi = content.get("third_party_invite")
        if isinstance(tpi, dict) and "signed" in tpi:
            kept["third_party_invite"] = {"signed": tpi["signed"]}
    out["content"] = kept
    return out
