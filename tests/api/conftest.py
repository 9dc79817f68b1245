"""A real app (lifespan run, real database of each backend) and HTTP clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from roomserver.api.app import create_app
from roomserver.client import RoomserverClient
from roomserver.config import Settings


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    """The app on a fresh database (both backends), started and stopped around the test."""
    application = create_app(Settings(database_url=database_url, server_name="test.local"))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP against the app."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rs") as client:
        yield client


@pytest.fixture
async def client(http: httpx.AsyncClient) -> RoomserverClient:
    """The typed client over the same app."""
    return RoomserverClient(http)
