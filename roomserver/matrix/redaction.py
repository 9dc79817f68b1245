"""The redaction algorithms: what of an event survives when it is redacted.

Redaction also defines what signatures cover and the reference hash (and so the event ID
of rooms v3+), which makes these rules part of the event format, not just a content
policy. :func:`signed_form` is that covered form, built without the detour of copying the
signatures only to drop them again.
"""

from __future__ import annotations

from typing import Any

from .room_versions import RedactionRules, RoomVersion

TOP_LEVEL_KEYS_V1 = frozenset(
    {
        "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
        "signatures", "depth", "prev_events", "prev_state", "auth_events", "origin",
        "origin_server_ts", "membership",
    }
)  # fmt: skip
"""Top-level keys rooms v1-v10 keep."""
TOP_LEVEL_KEYS_V11 = TOP_LEVEL_KEYS_V1 - {"origin", "membership", "prev_state"}
"""Top-level keys rooms v11+ keep."""

_SIGNED_V1 = TOP_LEVEL_KEYS_V1 - {"signatures"}
_SIGNED_V11 = TOP_LEVEL_KEYS_V11 - {"signatures"}

_POWER_LEVEL_KEYS = ("ban", "events", "events_default", "kick", "redact", "state_default",
                     "users", "users_default")  # fmt: skip


def content_keys_kept(event_type: str, rules: RedactionRules) -> tuple[str, ...] | None:
    """The content keys redaction keeps for ``event_type``; ``None`` means all of them.

    (v11 ``m.room.member`` also keeps ``third_party_invite.signed``, a nested key.)
    """
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


class _Rules:
    """One room version's redaction rules as plain lookups (enum access is slow in the
    hot path: this runs for every event ID and signature)."""

    __slots__ = ("content_keys", "keep", "signed_keep", "third_party_signed", "version")

    def __init__(self, version: RoomVersion) -> None:
        rules = version.redaction
        self.version = version
        self.keep = TOP_LEVEL_KEYS_V11 if rules.value >= 11 else TOP_LEVEL_KEYS_V1
        self.signed_keep = self.keep - {"signatures"}
        types = ("m.room.member", "m.room.create", "m.room.join_rules", "m.room.power_levels",
                 "m.room.history_visibility", "m.room.aliases", "m.room.redaction")  # fmt: skip
        self.content_keys = {t: content_keys_kept(t, rules) for t in types}
        self.third_party_signed = rules.value >= 11


_RULES: dict[str, _Rules] = {}


def _rules(version: RoomVersion) -> _Rules:
    rules = _RULES.get(version.identifier)
    if rules is None or rules.version is not version:
        rules = _RULES[version.identifier] = _Rules(version)
    return rules


def redacted_content(pdu: dict[str, Any], version: RoomVersion) -> dict[str, Any]:
    """The ``content`` redaction leaves of ``pdu`` (a new dict)."""
    return _redacted_content(pdu, _rules(version))


def _redacted_content(pdu: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    content = pdu.get("content")
    if type(content) is not dict:
        return {}
    event_type = pdu.get("type")
    keys = rules.content_keys.get(event_type, ()) if type(event_type) is str else ()
    if keys is None:
        return dict(content)
    if not keys:
        return {}
    kept = {k: content[k] for k in keys if k in content}
    if rules.third_party_signed and event_type == "m.room.member":
        tpi = content.get("third_party_invite")
        if type(tpi) is dict and "signed" in tpi:
            kept["third_party_invite"] = {"signed": tpi["signed"]}
    return kept


def redact(pdu: dict[str, Any], version: RoomVersion) -> dict[str, Any]:
    """A new dict holding what ``version``'s redaction algorithm keeps of ``pdu``."""
    rules = _rules(version)
    allowed = rules.keep
    out = {k: v for k, v in pdu.items() if k in allowed}
    out["content"] = _redacted_content(pdu, rules)
    return out


def signed_form(pdu: dict[str, Any], version: RoomVersion) -> dict[str, Any]:
    """The redacted event without ``signatures`` (and ``unsigned``, never kept).

    This is what event signatures cover and what the reference hash hashes.
    """
    rules = _rules(version)
    allowed = rules.signed_keep
    out = pdu.copy()  # a C-level copy and a few deletions beat rebuilding the dict
    for k in pdu:
        if k not in allowed:
            del out[k]
    out["content"] = _redacted_content(pdu, rules)
    return out
