"""Alias endpoints: the local room alias directory (paths as Dendrite's alias API, case
included: ``setRoomAlias``, ``GetRoomIDForAlias``, ``GetAliasesForRoomID``,
``GetCreatorIDForAlias``, ``removeRoomAlias``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from roomserver.api.models import (
    GetAliasesForRoomIDRequest,
    GetAliasesForRoomIDResponse,
    GetCreatorIDForAliasRequest,
    GetCreatorIDForAliasResponse,
    GetRoomIDForAliasRequest,
    GetRoomIDForAliasResponse,
    RemoveRoomAliasRequest,
    RemoveRoomAliasResponse,
    SetRoomAliasRequest,
    SetRoomAliasResponse,
    error_responses,
)
from roomserver.query import Aliases, validate

router = APIRouter(prefix="/api/roomserver", tags=["aliases"])


def _aliases(request: Request) -> Aliases:
    aliases: Aliases = request.app.state.query.aliases
    return aliases


@router.post(
    "/setRoomAlias",
    summary="Create a room alias",
    response_model=SetRoomAliasResponse,
    responses=error_responses("the room is unknown."),
)
async def set_room_alias(body: SetRoomAliasRequest, request: Request) -> SetRoomAliasResponse:
    """Point `alias` at `room_id`, with `user_id` as its creator. If the alias exists already
    nothing changes and `alias_exists` is true (also when two callers race: one wins).

    No `m.room.aliases` event is sent (Dendrite sends one; that event type is deprecated, and
    clients publish `m.room.canonical_alias` themselves)."""
    validate.alias(body.alias)
    validate.room_id(body.room_id)
    validate.user_id(body.user_id)
    exists = await _aliases(request).set(body.alias, body.room_id, body.user_id)
    return SetRoomAliasResponse(alias_exists=exists)


@router.post(
    "/GetRoomIDForAlias",
    summary="The room an alias points at",
    response_model=GetRoomIDForAliasResponse,
    responses=error_responses("the alias is unknown."),
)
async def get_room_id_for_alias(
    body: GetRoomIDForAliasRequest, request: Request
) -> GetRoomIDForAliasResponse:
    """The room ID of a local alias (Dendrite answers an unknown alias with an empty
    `room_id`; this answers 404)."""
    validate.alias(body.alias)
    return GetRoomIDForAliasResponse(room_id=await _aliases(request).room_id(body.alias))


@router.post(
    "/GetAliasesForRoomID",
    summary="The aliases of a room",
    response_model=GetAliasesForRoomIDResponse,
    responses=error_responses("the room is unknown."),
)
async def get_aliases_for_room_id(
    body: GetAliasesForRoomIDRequest, request: Request
) -> GetAliasesForRoomIDResponse:
    """Every local alias of the room, sorted (empty if it has none)."""
    validate.room_id(body.room_id)
    return GetAliasesForRoomIDResponse(aliases=await _aliases(request).for_room(body.room_id))


@router.post(
    "/GetCreatorIDForAlias",
    summary="Who created an alias",
    response_model=GetCreatorIDForAliasResponse,
    responses=error_responses("the alias is unknown."),
)
async def get_creator_id_for_alias(
    body: GetCreatorIDForAliasRequest, request: Request
) -> GetCreatorIDForAliasResponse:
    """The user who created the alias (the client API lets them remove it)."""
    validate.alias(body.alias)
    return GetCreatorIDForAliasResponse(user_id=await _aliases(request).creator(body.alias))


@router.post(
    "/removeRoomAlias",
    summary="Remove a room alias",
    response_model=RemoveRoomAliasResponse,
    responses=error_responses("the alias is unknown."),
)
async def remove_room_alias(
    body: RemoveRoomAliasRequest, request: Request
) -> RemoveRoomAliasResponse:
    """Delete the alias. Whether `user_id` may is the caller's decision (e.g. the alias's
    creator or a room moderator); it is checked as a user ID only."""
    validate.alias(body.alias)
    validate.user_id(body.user_id)
    await _aliases(request).remove(body.alias)
    return RemoveRoomAliasResponse()
