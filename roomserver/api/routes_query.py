"""Query endpoints: what other services ask the roomserver."""

from __future__ import annotations

from fastapi import APIRouter, Request

from roomserver.api.models import QueryRoomVersionCapabilitiesResponse
from roomserver.matrix.room_versions import KNOWN_ROOM_VERSIONS

router = APIRouter(prefix="/api/roomserver", tags=["query"])


@router.post(
    "/queryRoomVersionCapabilities",
    summary="Room versions this server supports",
    response_model=QueryRoomVersionCapabilitiesResponse,
)
async def query_room_version_capabilities(request: Request) -> QueryRoomVersionCapabilitiesResponse:
    """The default room version for new rooms and every supported version (all stable).

    The request body is an empty object (or absent).
    """
    return QueryRoomVersionCapabilitiesResponse(
        default=request.app.state.settings.default_room_version,
        available={v: "stable" for v in KNOWN_ROOM_VERSIONS},
    )
