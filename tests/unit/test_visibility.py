"""Server history visibility: every setting against the server's membership at and after the event."""

from __future__ import annotations

import pytest

from roomserver.matrix.visibility import effective_visibility, server_may_see_event


@pytest.mark.parametrize(
    ("visibility", "at_event", "in_room_now", "expected"),
    [
        ("world_readable", [], False, True),
        ("shared", [], True, True),
        ("shared", [], False, False),
        ("shared", ["join"], False, True),
        ("invited", ["invite"], False, True),
        ("invited", ["leave"], True, False),
        ("joined", ["invite"], True, False),
        ("joined", ["join"], False, True),
        ("joined", ["leave", "ban"], False, False),
    ],
)
def test_server_visibility(
    visibility: str, at_event: list[str], in_room_now: bool, expected: bool
) -> None:
    assert server_may_see_event(visibility, at_event, server_in_room_now=in_room_now) is expected


@pytest.mark.parametrize("value", [None, 3, "nonsense", ""])
def test_unknown_visibility_is_shared(value: object) -> None:
    assert effective_visibility(value) == "shared"
