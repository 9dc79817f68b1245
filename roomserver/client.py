"""A typed async client of the roomserver's HTTP API, for the services that call it.

It speaks the same pydantic models as the server (``roomserver.api.models``), so a change
of the wire format breaks both sides at once, and the API tests go through it.

    async with RoomserverClient.connect("http://127.0.0.1:7770") as rs:
        answer = await rs.query_latest_events_and_state(
            QueryLatestEventsAndStateRequest(room_id="!r:example.org")
        )
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from roomserver.api import models as m
from roomserver.api.routes_output import OutputPage

API = "/api/roomserver"
R = TypeVar("R", bound=BaseModel)


class RoomserverError(Exception):
    """The roomserver answered with a Matrix error."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.errcode = str(body.get("errcode", "M_UNKNOWN"))
        self.error = str(body.get("error", ""))
        self.body = body
        super().__init__(f"{status} {self.errcode}: {self.error}")


class RoomserverClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, base_url: str, *, timeout: float = 30.0
    ) -> AsyncIterator[RoomserverClient]:
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as http:
            yield cls(http)

    async def _post(self, name: str, body: BaseModel | None, answer: type[R]) -> R:
        payload = body.model_dump(mode="json", exclude_unset=True) if body is not None else {}
        resp = await self.http.post(f"{API}/{name}", json=payload)
        if resp.status_code >= 400:
            try:
                error = resp.json()
            except ValueError:
                error = {"errcode": "M_UNKNOWN", "error": resp.text[:500]}
            raise RoomserverError(resp.status_code, error if isinstance(error, dict) else {})
        return answer.model_validate_json(resp.content)

    # -- input --

    async def input_room_events(
        self, request: m.InputRoomEventsRequest
    ) -> m.InputRoomEventsResponse:
        return await self._post("inputRoomEvents", request, m.InputRoomEventsResponse)

    # -- state --

    async def query_state_after_events(
        self, request: m.QueryStateAfterEventsRequest
    ) -> m.QueryStateAfterEventsResponse:
        return await self._post("queryStateAfterEvents", request, m.QueryStateAfterEventsResponse)

    async def query_latest_events_and_state(
        self, request: m.QueryLatestEventsAndStateRequest
    ) -> m.QueryLatestEventsAndStateResponse:
        return await self._post(
            "queryLatestEventsAndState", request, m.QueryLatestEventsAndStateResponse
        )

    async def query_state_and_auth_chain(
        self, request: m.QueryStateAndAuthChainRequest
    ) -> m.QueryStateAndAuthChainResponse:
        return await self._post("queryStateAndAuthChain", request, m.QueryStateAndAuthChainResponse)

    # -- events and rooms --

    async def query_events_by_id(
        self, request: m.QueryEventsByIDRequest
    ) -> m.QueryEventsByIDResponse:
        return await self._post("queryEventsByID", request, m.QueryEventsByIDResponse)

    async def query_room_version_for_room(
        self, request: m.QueryRoomVersionForRoomRequest
    ) -> m.QueryRoomVersionForRoomResponse:
        return await self._post(
            "queryRoomVersionForRoom", request, m.QueryRoomVersionForRoomResponse
        )

    async def query_room_version_capabilities(self) -> m.QueryRoomVersionCapabilitiesResponse:
        return await self._post(
            "queryRoomVersionCapabilities", None, m.QueryRoomVersionCapabilitiesResponse
        )

    # -- memberships --

    async def query_membership_for_user(
        self, request: m.QueryMembershipForUserRequest
    ) -> m.QueryMembershipForUserResponse:
        return await self._post("queryMembershipForUser", request, m.QueryMembershipForUserResponse)

    async def query_memberships_for_room(
        self, request: m.QueryMembershipsForRoomRequest
    ) -> m.QueryMembershipsForRoomResponse:
        return await self._post(
            "queryMembershipsForRoom", request, m.QueryMembershipsForRoomResponse
        )

    async def query_invites_for_user(
        self, request: m.QueryInvitesForUserRequest
    ) -> m.QueryInvitesForUserResponse:
        return await self._post("queryInvitesForUser", request, m.QueryInvitesForUserResponse)

    # -- other servers --

    async def query_server_allowed_to_see_event(
        self, request: m.QueryServerAllowedToSeeEventRequest
    ) -> m.QueryServerAllowedToSeeEventResponse:
        return await self._post(
            "queryServerAllowedToSeeEvent", request, m.QueryServerAllowedToSeeEventResponse
        )

    async def query_missing_events(
        self, request: m.QueryMissingEventsRequest
    ) -> m.QueryMissingEventsResponse:
        return await self._post("queryMissingEvents", request, m.QueryMissingEventsResponse)

    async def query_backfill(self, request: m.QueryBackfillRequest) -> m.QueryBackfillResponse:
        return await self._post("queryBackfill", request, m.QueryBackfillResponse)

    # -- aliases (paths keep Dendrite's capitalisation) --

    async def set_room_alias(self, request: m.SetRoomAliasRequest) -> m.SetRoomAliasResponse:
        return await self._post("setRoomAlias", request, m.SetRoomAliasResponse)

    async def get_room_id_for_alias(
        self, request: m.GetRoomIDForAliasRequest
    ) -> m.GetRoomIDForAliasResponse:
        return await self._post("GetRoomIDForAlias", request, m.GetRoomIDForAliasResponse)

    async def get_aliases_for_room_id(
        self, request: m.GetAliasesForRoomIDRequest
    ) -> m.GetAliasesForRoomIDResponse:
        return await self._post("GetAliasesForRoomID", request, m.GetAliasesForRoomIDResponse)

    async def get_creator_id_for_alias(
        self, request: m.GetCreatorIDForAliasRequest
    ) -> m.GetCreatorIDForAliasResponse:
        return await self._post("GetCreatorIDForAlias", request, m.GetCreatorIDForAliasResponse)

    async def remove_room_alias(
        self, request: m.RemoveRoomAliasRequest
    ) -> m.RemoveRoomAliasResponse:
        return await self._post("removeRoomAlias", request, m.RemoveRoomAliasResponse)

    # -- output stream --

    async def output(self, from_: int = 0, *, limit: int = 100, timeout_ms: int = 0) -> OutputPage:
        """Rows of the output log after position ``from_`` (waiting up to ``timeout_ms`` for
        one to arrive); pass the answer's ``next`` as ``from_`` to go on."""
        resp = await self.http.get(
            f"{API}/output",
            params={"from": from_, "limit": limit, "timeout": timeout_ms},
            timeout=timeout_ms / 1000 + 30,
        )
        if resp.status_code >= 400:
            raise RoomserverError(resp.status_code, resp.json())
        return OutputPage.model_validate_json(resp.content)
