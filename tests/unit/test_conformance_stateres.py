"""State resolution against the conformance cases (answers computed by Synapse).

Every case resolves its ``state_sets`` to exactly ``expected_resolved_state``, as does
each earlier merge in ``intermediate_resolutions``; the answer is the same for every
order of the state sets (all permutations up to 4 sets, shuffles beyond).
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from roomserver.matrix.events import Event, parse_pdu
from roomserver.matrix.room_versions import room_version
from roomserver.matrix.stateres import auth_difference_from_events, resolve_state

CASES = sorted((Path(__file__).parent.parent / "data" / "conformance" / "state_res").glob("*.json"))
V2_CASES = [p for p in CASES if not p.stem.endswith("_rv1")]  # v1 has no auth difference


def _load(path: Path) -> tuple[dict[str, Any], dict[str, Event]]:
    case = json.loads(path.read_text())
    version = room_version(case["room_version"])
    events = {
        e["event_id"]: parse_pdu(e["pdu"], version, event_id=e["event_id"]) for e in case["events"]
    }
    return case, events


def _state_map(ids: list[str], events: dict[str, Event]) -> dict[tuple[str, str], str]:
    return {events[e].state_tuple: e for e in ids}


def _orders(n: int) -> list[tuple[int, ...]]:
    if n <= 4:
        return list(itertools.permutations(range(n)))
    rng = random.Random(n)
    return [tuple(rng.sample(range(n), n)) for _ in range(24)]


def _check(
    version: str, sets: list[list[str]], expected: list[str], events: dict[str, Event]
) -> None:
    maps = [_state_map(s, events) for s in sets]
    for order in _orders(len(maps)):
        got = resolve_state(version, [maps[i] for i in order], events)
        assert sorted(got.values()) == expected, f"state set order {order}"
        assert all(events[eid].state_tuple == key for key, eid in got.items())


def test_all_cases_present() -> None:
    assert len(CASES) == 65
    assert len(V2_CASES) == 61


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    case, events = _load(path)
    assert case["kind"] == "state_res"
    _check(case["room_version"], case["state_sets"], case["expected_resolved_state"], events)
    for step in case.get("intermediate_resolutions") or []:
        _check(case["room_version"], step["state_sets"], step["expected_resolved_state"], events)
    # The events Synapse rejected never take part, so naming them changes nothing.
    rejected = {e["event_id"] for e in case["events"] if e.get("rejected")}
    maps = [_state_map(s, events) for s in case["state_sets"]]
    got = resolve_state(case["room_version"], maps, events, is_rejected=rejected.__contains__)
    assert sorted(got.values()) == case["expected_resolved_state"]


@pytest.mark.parametrize("path", V2_CASES, ids=[p.stem for p in V2_CASES])
def test_case_with_injected_auth_difference(path: Path) -> None:
    """The ``auth_difference`` seam gives the same answer as the built-in computation."""
    case, events = _load(path)
    assert case["room_version"] != "1"
    maps = [_state_map(s, events) for s in case["state_sets"]]
    v21 = case["state_res_algorithm"] == "v2.1"
    calls: list[bool] = []

    def provider(state_sets: Any, conflicted_events: frozenset[str], *, subgraph: bool) -> Any:
        calls.append(subgraph)
        return auth_difference_from_events(state_sets, events, subgraph=subgraph)

    got = resolve_state(case["room_version"], maps, events, auth_difference=provider)
    assert sorted(got.values()) == case["expected_resolved_state"]
    assert calls == [v21]
