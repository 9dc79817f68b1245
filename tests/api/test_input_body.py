"""inputRoomEvents reads its body itself (orjson, outside FastAPI's request handling), and is
served by a middleware before the router (``InputFastPath``): the answers must stay those
FastAPI gave, for every kind of body, on both ways in, and the route must stay documented
in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from roomserver.api import routes_input
from roomserver.errors import ServiceError
from roomserver.matrix.errors import MatrixError

URL = "/api/roomserver/inputRoomEvents"
JSON = "application/json"
NAN = b'{"input_room_events": [{"kind": NaN, "event": {}}]}'
BIG = b'{"input_room_events": [{"kind": 123456789012345678901, "event": {}}]}'  # > 64 bits

# (body, content type, status, errcode or None for a 200)
CASES: list[tuple[bytes, str | None, int, str | None]] = [
    (b"", JSON, 400, "M_BAD_JSON"),  # no body: "body: Field required"
    (b"{}", None, 400, "M_NOT_JSON"),
    (b"{}", "text/plain", 400, "M_NOT_JSON"),
    (b"{}", "application/json; charset=utf-8", 200, None),
    (b"{}", "application/vnd.example+json", 200, None),
    (b"{not json", JSON, 400, "M_NOT_JSON"),
    (b"{} x", JSON, 400, "M_NOT_JSON"),
    (b"[1]", JSON, 400, "M_BAD_JSON"),
    (b'"text"', JSON, 400, "M_NOT_JSON"),  # as FastAPI: a string body reads as "not JSON"
    (b'{"input_room_events": "x"}', JSON, 400, "M_BAD_JSON"),
    # what orjson refuses or reads differently is read by the standard library, as before
    (NAN, JSON, 400, "M_BAD_JSON"),
    (BIG, JSON, 400, "M_BAD_JSON"),
    ("{}".encode("utf-16"), JSON, 200, None),
    (b'{"input_room_events": [{"kind": 2, "event": {"a": "\xff"}}]}', JSON, 400, "M_UNKNOWN"),
    (b"[" * 100_000, JSON, 400, "M_UNKNOWN"),
]


@pytest.fixture(params=["fast path", "router"])
async def way_in(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests the fast path serves, or (under a root_path, which the fast
    path leaves to the router) the router's route."""
    root = "" if request.param == "fast path" else "/behind-a-proxy"
    transport = httpx.ASGITransport(app=app, root_path=root)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://rs{root}") as client:
        yield client


async def test_every_kind_of_body_gets_fastapis_answer(way_in: httpx.AsyncClient) -> None:
    http = way_in
    for body, content_type, status, errcode in CASES:
        headers = {} if content_type is None else {"content-type": content_type}
        resp = await http.post(URL, content=body, headers=headers)
        assert resp.status_code == status, (body[:60], resp.text)
        assert resp.headers["content-type"] == JSON
        if errcode is None:
            assert resp.json() == {"event_id": "", "results": []}
        else:
            assert resp.json()["errcode"] == errcode, (body[:60], resp.text)
    nan = await http.post(URL, content=NAN, headers={"content-type": JSON})
    assert "input_room_events.0.kind" in nan.json()["error"]
    big = await http.post(URL, content=BIG, headers={"content-type": JSON})
    assert "1, 2 or 3" not in big.json()["error"]  # read as an integer, not as a float


def test_the_route_is_still_documented(app: FastAPI) -> None:
    schema = app.openapi()
    op = schema["paths"][URL]["post"]
    body = op["requestBody"]["content"][JSON]["schema"]["$ref"]
    ok = op["responses"]["200"]["content"][JSON]["schema"]["$ref"]
    assert body.endswith("/InputRoomEventsRequest") and ok.endswith("/InputRoomEventsResponse")
    assert "422" not in op["responses"] and {"4XX", "400", "404"} <= set(op["responses"])
    assert len(op["description"]) > 40


async def test_the_fast_path_serves_input_and_only_input(
    app: FastAPI, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    handle = routes_input._handle

    async def counting(request: object) -> object:
        served.append("handler")
        return await handle(request)  # type: ignore[arg-type]

    monkeypatch.setattr(routes_input, "_handle", counting)
    router_calls: list[str] = []
    routing = app.router.middleware_stack

    async def spy(scope: object, receive: object, send: object) -> None:
        router_calls.append("router")
        await routing(scope, receive, send)  # type: ignore[arg-type]

    monkeypatch.setattr(app.router, "middleware_stack", spy)
    assert (await http.post(URL, json={})).status_code == 200
    assert (await http.post(URL, content=b"{x", headers={"content-type": JSON})).json()[
        "errcode"
    ] == "M_NOT_JSON"
    assert served == ["handler", "handler"] and router_calls == []
    # another method on the same path, and other paths, still go through the router
    assert (await http.get(URL)).json()["errcode"] == "M_UNRECOGNIZED"
    assert (
        await http.post("/api/roomserver/queryRoomVersionCapabilities", json={})
    ).status_code == 200
    assert router_calls == ["router", "router"]


def test_errors_find_the_handler_the_exception_middleware_would_find(app: FastAPI) -> None:
    handlers = app.exception_handlers
    by_status = object()
    lookup = routes_input._error_handler
    assert lookup(app, ServiceError(400, "M_BAD_JSON", "x")) is handlers[MatrixError]
    assert lookup(app, RequestValidationError([])) is handlers[RequestValidationError]
    assert lookup(app, HTTPException(418)) is handlers[HTTPException]
    assert lookup(app, ValueError("a bug")) is None  # the server error middleware's: a 500
    handlers[418] = by_status  # type: ignore[assignment]
    try:
        assert lookup(app, HTTPException(418)) is by_status
        assert lookup(app, HTTPException(413)) is handlers[HTTPException]
    finally:
        del handlers[418]
