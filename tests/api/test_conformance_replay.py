"""Every conformance case replayed through the HTTP API, as a homeserver component would.

All events of all cases go into ONE roomserver (no two cases share a room or an event),
one request per event, in creation order, as new events. Each must end in the reference's
verdict (allowed: accepted or soft-failed; refused: rejected, or a 4xx when it does not
even parse); then the latest events must be the case's forward extremities (less what we
soft-failed), the state after the fork tips must be Synapse's resolution, and the state
before each intermediate merge its resolution too. Both backends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from roomserver.api import models as m
from roomserver.client import RoomserverClient, RoomserverError

DATA = Path(__file__).parent.parent / "data" / "conformance"
CASES = sorted(DATA.glob("*/*.json"))


def _ids(refs: list[Any] | None) -> list[str]:
    return [r[0] if isinstance(r, list) else r for r in refs or []]


def _room_of(event: dict[str, Any]) -> str:
    pdu = event["pdu"]
    return pdu.get("room_id") or "!" + event["event_id"][1:]


async def _state_ids(
    client: RoomserverClient, room_id: str, prev_event_ids: list[str], by_hash: dict[str, str]
) -> list[str]:
    answer = await client.query_state_after_events(
        m.QueryStateAfterEventsRequest(room_id=room_id, prev_event_ids=prev_event_ids)
    )
    assert answer.room_exists and answer.prev_events_exist, (room_id, prev_event_ids)
    return sorted(by_hash.get(e["hashes"]["sha256"], f"<unknown {e.get('event_id')}>")
                  for e in answer.state_events)  # fmt: skip


async def _replay(client: RoomserverClient, case: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    version = case["room_version"]
    by_hash = {e["pdu"]["hashes"]["sha256"]: e["event_id"] for e in case["events"]}
    allowed = {c["event_id"]: c["allowed"] for c in case["auth_checks"]}
    soft_failed: set[str] = set()
    for event in case["events"]:
        event_id = event["event_id"]
        headered = dict(event["pdu"], _room_version=version)
        if version not in ("1", "2"):
            headered["event_id"] = event_id
        request = m.InputRoomEventsRequest(
            input_room_events=[m.InputRoomEvent(kind=2, event=headered)]
        )
        try:
            answer = await client.input_room_events(request)
        except RoomserverError as e:
            if e.status >= 500 or allowed[event_id]:
                problems.append(f"{event_id}: refused with {e}")
            continue
        (result,) = answer.results
        if result.event_id != event_id:
            problems.append(f"{event_id}: answered for {result.event_id}")
        accepted = result.outcome in ("accepted", "soft_failed")
        if result.outcome == "soft_failed":
            soft_failed.add(event_id)
        if accepted != allowed[event_id]:
            problems.append(
                f"{event_id}: {result.outcome} ({result.reason}), reference "
                f"{'allowed' if allowed[event_id] else 'refused'}"
            )
    if problems:
        return problems

    if case["room_id"] is not None:
        latest = await client.query_latest_events_and_state(
            m.QueryLatestEventsAndStateRequest(room_id=case["room_id"])
        )
        got = sorted(ref[0] for ref in latest.latest_events)
        # The reference does not soft-fail: a soft-failed event is not a forward extremity and
        # does not retire its prev events either, so recompute the extremities without them.
        live = [
            e for e in case["events"] if allowed[e["event_id"]] and e["event_id"] not in soft_failed
        ]
        cited = {p for e in live for p in _ids(e["pdu"]["prev_events"])}
        want = sorted(e["event_id"] for e in live if e["event_id"] not in cited)
        if not soft_failed:
            assert want == sorted(case["forward_extremities"])
        if got != want:
            problems.append(f"latest events {got}, reference {want}")

    tips = case.get("state_set_tips")
    if case["kind"] == "state_res" and tips and all(tips):
        got = await _state_ids(client, case["room_id"], list(tips), by_hash)
        if got != case["expected_resolved_state"]:
            problems.append(f"state after tips {got}, reference {case['expected_resolved_state']}")
    pdus = {e["event_id"]: e for e in case["events"]}
    for merge in case.get("intermediate_resolutions") or []:
        at = pdus[merge["at_event"]]
        got = await _state_ids(client, _room_of(at), _ids(at["pdu"]["prev_events"]), by_hash)
        if got != merge["expected_resolved_state"]:
            problems.append(f"state before {merge['at_event']} differs from the reference")
    return problems


async def test_every_conformance_case_through_http(client: RoomserverClient) -> None:
    failures: dict[str, list[str]] = {}
    for path in CASES:
        case = json.loads(path.read_text())
        problems = await _replay(client, case)
        if problems:
            failures[path.stem] = problems[:3]
    assert len(CASES) >= 130
    assert not failures, f"{len(failures)}/{len(CASES)} cases disagree: " + json.dumps(
        dict(list(failures.items())[:8]), indent=1
    )
