"""The HTTP edge before any storage: error bodies, limits, the explorer."""

from __future__ import annotations

import httpx
import pytest

from roomserver.api.app import create_app
from roomserver.config import Settings
from roomserver.matrix.room_versions import KNOWN_ROOM_VERSIONS


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = create_app(Settings(database_url="sqlite:///:memory:", max_request_bytes=1024))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rs")


async def test_capabilities_lists_every_version(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/roomserver/queryRoomVersionCapabilities", json={})
    assert resp.status_code == 200
    body = resp.json()
    assert body["default"] == "10"
    assert set(body["available"]) == set(KNOWN_ROOM_VERSIONS)


async def test_unknown_path_is_a_matrix_error(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/roomserver/queryNothing", json={})
    assert resp.status_code == 404
    assert resp.json()["errcode"] == "M_UNRECOGNIZED"


async def test_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/roomserver/queryRoomVersionCapabilities", content=b"{" + b" " * 2000 + b"}"
    )
    assert resp.status_code == 413
    assert resp.json()["errcode"] == "M_TOO_LARGE"


async def test_docs_and_schema_render(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/api/roomserver/queryRoomVersionCapabilities" in schema["paths"]


def test_settings_refuse_unknown_room_version() -> None:
    with pytest.raises(ValueError, match="unknown room version"):
        Settings(default_room_version="99")


def test_settings_read_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMSERVER_SERVER_NAME", "example.org")
    monkeypatch.setenv("ROOMSERVER_DATABASE_URL", "postgresql://root@127.0.0.1:5432/x")
    s = Settings()
    assert s.server_name == "example.org"
    assert s.database_url.startswith("postgresql://")
