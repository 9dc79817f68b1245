"""inputRoomEvents reads its body itself (orjson, outside FastAPI's request handling): the
answers must stay those FastAPI gave, for every kind of body, and the route must stay
documented in the OpenAPI schema."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

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


async def test_every_kind_of_body_gets_fastapis_answer(http: httpx.AsyncClient) -> None:
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
