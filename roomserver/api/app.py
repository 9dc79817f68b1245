"""The FastAPI application: wiring of settings, storage, services and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from roomserver import __version__
from roomserver.api import routes_alias, routes_input, routes_output, routes_query
from roomserver.api.errors import install_error_handlers
from roomserver.api.limits import BodySizeLimit
from roomserver.config import Settings
from roomserver.input import Input
from roomserver.query import Query
from roomserver.state import StateCache
from roomserver.state.event_loader import EventLoader
from roomserver.storage import Storage

DESCRIPTION = """
The room DAG engine of a Matrix homeserver. Other services of the homeserver (client API,
federation API, syncserver) call it over this internal HTTP API.

Paths and JSON follow Dendrite's internal roomserver API (commit 6d832ae544): every call is a
`POST` of a JSON body to `/api/roomserver/<name>`. Events travel in the *headered* form: the
PDU exactly as signed, plus `_room_version` (and `event_id` for room versions 3 and later).

Errors are Matrix error bodies, `{"errcode": "M_…", "error": "…"}`, with a 4xx status that
says whose fault it was.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings if settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = await Storage.open(settings.database_url)
        loader = EventLoader()
        state_cache = StateCache()  # one per app: queries read what input just wrote
        app.state.storage = storage
        stop_output = await routes_output.start_output_stream(app, storage)  # output stream
        app.state.input = Input(
            storage, loader=loader, state_cache=state_cache, on_output=app.state.output.notify
        )
        app.state.query = Query(
            storage, loader=loader, server_name=settings.server_name, state_cache=state_cache
        )
        try:
            yield
        finally:
            await stop_output()  # output stream
            await storage.close()

    app = FastAPI(
        title="roomserver",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(routes_input.router)
    app.include_router(routes_query.router)
    app.include_router(routes_alias.router)
    app.include_router(routes_output.router)
    app.add_middleware(routes_input.InputFastPath)  # inside the body size limit
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    return app
