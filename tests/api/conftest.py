"""An HTTP client of a real app (lifespan run, real database of each backend)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from roomserver.api.app import create_app
from roomserver.client import RoomserverClient
from roomserver.config import Settings


@pytest.fixture
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP against the app on a fresh database (both backends)."""
    app = create_app(Settings(database_url=database_url, server_name="test.local"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rs") as client:
            yield client


@pytest.fixture
async def client(http: httpx.AsyncClient) -> RoomserverClient:
    """The typed client over the same app."""
    return RoomserverClient(http)
