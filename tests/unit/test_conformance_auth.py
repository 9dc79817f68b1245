"""Auth verdicts against Synapse's, for every ``auth_checks`` entry of the conformance data.

The verdict follows tests/data/conformance/FORMAT.md: an event is allowed iff (1) it
parses, (2) its required signatures verify, (3) :func:`check_auth_events` accepts its own
auth events (plus the implied create event in room v12) with the case's rejected flags,
(4) :func:`check_auth` accepts it against its own auth events and (5) against
``auth_state``. One test per case file, so a failure names the case; every entry counts.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from roomserver.matrix.auth import check_auth, check_auth_events
from roomserver.matrix.errors import MatrixError
from roomserver.matrix.events import CREATE, Event, parse_pdu
from roomserver.matrix.room_versions import room_version
from roomserver.matrix.signing import key_lookup, verify_event_signatures

DATA = Path(__file__).resolve().parents[1] / "data" / "conformance"
CASES = sorted(
    p.relative_to(DATA).as_posix()
    for kind in ("auth", "state_res")
    for p in (DATA / kind).glob("*.json")
)


@cache
def _load(name: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((DATA / name).read_text())
    return case


def _verdict(
    event: Event | None,
    check: dict[str, Any],
    parsed: dict[str, Event | None],
    rejected: set[str],
    key_for: Any,
) -> str | None:
    """``None`` if allowed, else the step that refused (and why)."""
    if event is None:
        return "parse"
    try:
        verify_event_signatures(event, key_for)
    except MatrixError as e:
        return f"signatures: {e.message}"
    cited = [parsed.get(i) for i in event.auth_event_ids]
    if any(a is None for a in cited):
        return "auth_events: an auth event is unknown or unparseable (so rejected)"
    auth: list[Event] = [a for a in cited if a is not None]
    if event.room_version.room_id_from_create_event and event.type != CREATE:
        create = parsed.get("$" + event.room_id[1:])
        if create is not None:
            auth.append(create)
    try:
        check_auth_events(event, auth, is_rejected=rejected.__contains__)
        check_auth(event, {a.state_tuple: a for a in auth})
    except MatrixError as e:
        return f"auth_events: {e.message}"
    state: dict[tuple[str, str], Event] = {}
    for i in check["auth_state"]:
        a = parsed[i]
        assert a is not None, f"auth_state names unparseable {i}"
        state[a.state_tuple] = a
    try:
        check_auth(event, state)
    except MatrixError as e:
        return f"auth_state: {e.message}"
    return None


@pytest.mark.parametrize("name", CASES)
def test_auth_verdicts_match_synapse(name: str) -> None:
    case = _load(name)
    version = room_version(case["room_version"])
    key_for = key_lookup(case["signing_keys"])
    parsed: dict[str, Event | None] = {}
    for entry in case["events"]:
        try:
            parsed[entry["event_id"]] = parse_pdu(entry["pdu"], version, event_id=entry["event_id"])
        except MatrixError:
            parsed[entry["event_id"]] = None
    rejected = {e["event_id"] for e in case["events"] if e.get("rejected")}

    assert case["auth_checks"], "a case without auth checks proves nothing"
    wrong = []
    for check in case["auth_checks"]:
        why = _verdict(parsed[check["event_id"]], check, parsed, rejected, key_for)
        if (why is None) != check["allowed"]:
            wrong.append(
                f"{check['event_id']}: expected allowed={check['allowed']} "
                f"({check['synapse_reason']}; {check.get('note')}), we said: {why or 'allowed'}"
            )
    assert not wrong, f"{len(wrong)} of {len(case['auth_checks'])} verdicts differ:\n" + "\n".join(
        wrong
    )


def test_conformance_data_covers_every_room_version() -> None:
    versions = {_load(name)["room_version"] for name in CASES}
    assert versions == {str(v) for v in range(1, 13)}
    total = sum(len(_load(name)["auth_checks"]) for name in CASES)
    refused = sum(1 for n in CASES for c in _load(n)["auth_checks"] if not c["allowed"])
    assert total >= 4500 and refused >= 1000, (total, refused)
