"""The OpenAPI schema as a contract: schemathesis generates requests from ``/openapi.json``
and every response must be a non-5xx that matches what the schema says.

The app runs under a real uvicorn on loopback with a SQLite database holding one room whose
IDs are the schema's own examples (``!room:example.org``, ``@alice:example.org``,
``#lobby:example.org``), so the examples and some generated requests reach real data
rather than 404s. The output stream's endpoints are left out: they long-poll (up to a
minute) and stream, which request/response fuzzing cannot judge.

Bounded: a few hundred requests in all (explicit examples plus 15 generated cases per
operation), well under a minute.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode

from roomserver.api import models as m
from roomserver.api.app import create_app
from roomserver.client import RoomserverClient
from roomserver.config import Settings
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.room_versions import room_version

ALICE, BOB = "@alice:example.org", "@bob:other.example.com"
MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _seed(base_url: str) -> None:
    """A room named like the schema's examples, with a fork, an invite and an alias."""
    room = RoomBuilder(room_version("10"), ALICE, room_id="!room:example.org")
    room.join(ALICE)
    room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.join(BOB)
    base = room.latest
    for n in range(3):
        room.apply(room.event("m.room.message", BOB, {"body": f"b{n}"}, prev=base))
    room.send("m.room.member", ALICE, {"membership": "invite"}, "@carol:example.org")
    async with RoomserverClient.connect(base_url) as client:
        request = m.InputRoomEventsRequest(
            input_room_events=[m.InputRoomEvent(kind=2, event=e.headered()) for e in room.events]
        )
        await client.input_room_events(request)
        await client.set_room_alias(
            m.SetRoomAliasRequest(user_id=ALICE, alias="#lobby:example.org", room_id=room.room_id)
        )


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("openapi") / "roomserver.db"
    app = create_app(Settings(database_url=f"sqlite:///{path}", server_name="example.org"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    with ThreadPoolExecutor(max_workers=1) as pool:  # its own loop, whatever pytest runs
        pool.submit(asyncio.run, _seed(url)).result()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def api_schema(live_url: str) -> schemathesis.BaseSchema:
    config = SchemathesisConfig.from_dict({"generation": {"database": "none"}})
    loaded = schemathesis.openapi.from_url(f"{live_url}/openapi.json", config=config)
    return loaded.exclude(path_regex="/output")


def _run(strategy: st.SearchStrategy[schemathesis.Case[Any]], max_examples: int) -> None:
    @given(case=strategy)
    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def check(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS, timeout=10)

    check()


def test_every_response_is_a_documented_non_5xx(api_schema: schemathesis.BaseSchema) -> None:
    """Each operation: its schema examples, then generated valid and invalid bodies."""
    failures: dict[str, str] = {}
    operations = []
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the schema itself does not load
        operations.append(result.ok())
    assert len(operations) >= 18
    for operation in operations:
        try:
            for example in operation.get_strategies_from_examples():
                _run(example, max_examples=5)
            _run(operation.as_strategy(GenerationMode.POSITIVE), MAX_EXAMPLES)
            if operation.get_request_payload_content_types():  # else nothing to break
                _run(operation.as_strategy(GenerationMode.NEGATIVE), MAX_EXAMPLES // 2)
        except Exception as e:  # collect, so that one report lists every operation's problem
            failures[operation.label] = f"{type(e).__name__}: {str(e)[:1500]}"
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())


def test_the_schema_documents_every_query_and_alias_endpoint(live_url: str) -> None:
    spec = httpx.get(f"{live_url}/openapi.json").json()
    names = [
        "queryLatestEventsAndState",
        "queryStateAfterEvents",
        "queryEventsByID",
        "queryMembershipForUser",
        "queryMembershipsForRoom",
        "queryInvitesForUser",
        "queryServerAllowedToSeeEvent",
        "queryMissingEvents",
        "queryStateAndAuthChain",
        "queryBackfill",
        "queryRoomVersionCapabilities",
        "queryRoomVersionForRoom",
        "setRoomAlias",
        "GetRoomIDForAlias",
        "GetAliasesForRoomID",
        "GetCreatorIDForAlias",
        "removeRoomAlias",
    ]
    schemas = spec["components"]["schemas"]
    for name in names:
        op = spec["paths"][f"/api/roomserver/{name}"]["post"]
        assert op.get("summary") and len(op.get("description", "")) > 40, name
        assert "422" not in op["responses"] and "4XX" in op["responses"], name
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert schemas[ok.rsplit("/", 1)[1]].get("examples"), name
        if name != "queryRoomVersionCapabilities":
            body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert schemas[body.rsplit("/", 1)[1]].get("examples"), name
    assert httpx.get(f"{live_url}/docs").status_code == 200
