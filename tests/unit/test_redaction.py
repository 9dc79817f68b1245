"""Redaction keeps exactly what each room version's algorithm lists, nothing more or less.

The expected key lists below are written out from the spec's redaction sections
(rooms/fragments/v1-, v6-, v9-, v11-redactions.md and room v8's), independently of
``redaction.py``'s tables.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomserver.matrix.redaction import redact, redacted_content, signed_form
from roomserver.matrix.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

TOP_V1 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts",
    "membership",
}  # fmt: skip
TOP_V11 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "auth_events", "origin_server_ts",
}  # fmt: skip
PL_KEYS = {"ban", "events", "events_default", "kick", "redact", "state_default", "users",
           "users_default"}  # fmt: skip

ALL = None  # every content key survives

# The spec's content lists, per room version.
CONTENT_KEPT: dict[str, dict[str, set[str] | None]] = {}
for _v in map(str, range(1, 13)):
    n = int(_v)
    CONTENT_KEPT[_v] = {
        "m.room.member": {"membership", "join_authorised_via_users_server"}
        if n >= 9
        else {"membership"},
        "m.room.create": ALL if n >= 11 else {"creator"},
        "m.room.join_rules": {"join_rule", "allow"} if n >= 8 else {"join_rule"},
        "m.room.power_levels": PL_KEYS | {"invite"} if n >= 11 else PL_KEYS,
        "m.room.history_visibility": {"history_visibility"},
        "m.room.aliases": {"aliases"} if n <= 5 else set(),
        "m.room.redaction": {"redacts"} if n >= 11 else set(),
        "m.room.message": set(),
        "m.room.topic": set(),
        "org.example.custom": set(),
    }

VERSIONS = list(KNOWN_ROOM_VERSIONS.values())
TOP_LEVEL_CANDIDATES = sorted(TOP_V1 | {"redacts", "unsigned", "age_ts", "outlier", "x", "_y"})
CONTENT_CANDIDATES = sorted(
    {k for kept in CONTENT_KEPT["12"].values() if kept for k in kept}
    | {"creator", "aliases", "body", "msgtype", "displayname", "room_version", "third_party_invite",
       "reason", "x"}
)  # fmt: skip

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=5)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def events(
    draw: st.DrawFn, versions: list[RoomVersion] = VERSIONS
) -> tuple[RoomVersion, dict[str, Any]]:
    version = draw(st.sampled_from(versions))
    event_type = draw(st.sampled_from(sorted(CONTENT_KEPT["1"])))
    pdu: dict[str, Any] = {
        k: draw(json_value) for k in draw(st.sets(st.sampled_from(TOP_LEVEL_CANDIDATES)))
    }
    extra = draw(st.dictionaries(st.text(min_size=1, max_size=8), json_value, max_size=3))
    pdu.update(extra)
    pdu["type"] = event_type
    content_keys = draw(st.sets(st.sampled_from(CONTENT_CANDIDATES)))
    content = {k: draw(json_value) for k in content_keys}
    content.update(draw(st.dictionaries(st.text(max_size=8), json_value, max_size=3)))
    pdu["content"] = content
    return version, pdu


def expected_top(version: RoomVersion, pdu: dict[str, Any]) -> set[str]:
    allowed = TOP_V11 if int(version.identifier) >= 11 else TOP_V1
    return (set(pdu) & allowed) | {"content"}


def expected_content(version: RoomVersion, pdu: dict[str, Any]) -> dict[str, Any]:
    kept = CONTENT_KEPT[version.identifier][pdu["type"]]
    content = pdu["content"]
    if kept is ALL:
        return dict(content)
    out = {k: v for k, v in content.items() if k in kept}
    tpi = content.get("third_party_invite")
    if (
        int(version.identifier) >= 11
        and pdu["type"] == "m.room.member"
        and isinstance(tpi, dict)
        and "signed" in tpi
    ):
        out["third_party_invite"] = {"signed": tpi["signed"]}
    return out


@pytest.mark.parametrize("room_version", VERSIONS, ids=str)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_redaction_keeps_exactly_the_spec_lists(
    room_version: RoomVersion, data: st.DataObject
) -> None:
    version, pdu = data.draw(events([room_version]))
    redacted = redact(pdu, version)
    assert set(redacted) == expected_top(version, pdu)
    assert redacted["content"] == expected_content(version, pdu)
    for key in set(redacted) - {"content"}:
        assert redacted[key] is pdu[key]
    assert redacted_content(pdu, version) == redacted["content"]
    signed = signed_form(pdu, version)
    assert set(signed) == set(redacted) - {"signatures"}
    assert signed == {k: v for k, v in redacted.items() if k != "signatures"}


@settings(max_examples=100, deadline=None)
@given(events())
def test_redaction_is_idempotent(case: tuple[RoomVersion, dict[str, Any]]) -> None:
    version, pdu = case
    once = redact(pdu, version)
    assert redact(once, version) == once


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_third_party_invite_signed_survives_only_from_v11(version: RoomVersion) -> None:
    pdu = {
        "type": "m.room.member",
        "content": {
            "membership": "invite",
            "third_party_invite": {"display_name": "c", "signed": {"mxid": "@c:x", "token": "t"}},
        },
    }
    content = redact(pdu, version)["content"]
    if int(version.identifier) >= 11:
        assert content == {
            "membership": "invite",
            "third_party_invite": {"signed": {"mxid": "@c:x", "token": "t"}},
        }
    else:
        assert content == {"membership": "invite"}


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_odd_shapes(version: RoomVersion) -> None:
    """No content, a non-object content, a non-string type: redaction still answers."""
    assert redact({"type": "m.room.member"}, version) == {"type": "m.room.member", "content": {}}
    assert redact({"type": "x", "content": [1]}, version)["content"] == {}
    assert redact({"type": 5, "content": {"membership": "join"}}, version)["content"] == {}
    tpi = {"type": "m.room.member", "content": {"third_party_invite": "not an object"}}
    assert redact(tpi, version)["content"] == {}


def test_redaction_does_not_alias_content() -> None:
    pdu = {"type": "m.room.create", "content": {"creator": "@a:b", "m.federate": False}}
    redacted = redact(pdu, KNOWN_ROOM_VERSIONS["11"])
    assert redacted["content"] == pdu["content"]
    assert redacted["content"] is not pdu["content"]
