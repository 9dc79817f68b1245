"""The alias API through HTTP and the typed client, on both backends: the seed's paths
(case included), precise answers for unknown aliases and rooms, grammar checks."""

from __future__ import annotations

import pytest

from roomserver.api import models as m
from roomserver.client import RoomserverClient, RoomserverError
from roomserver.matrix.builder import RoomBuilder
from roomserver.matrix.room_versions import room_version

ALICE, BOB = "@alice:a.test", "@bob:b.test"


async def make_room(client: RoomserverClient) -> str:
    room = RoomBuilder(room_version("10"), ALICE)
    room.join(ALICE)
    request = m.InputRoomEventsRequest(
        input_room_events=[m.InputRoomEvent(kind=2, event=e.headered()) for e in room.events]
    )
    await client.input_room_events(request)
    return room.room_id


async def test_alias_lifecycle(client: RoomserverClient) -> None:
    room_id = await make_room(client)
    other_room = await make_room(client)
    first = await client.set_room_alias(
        m.SetRoomAliasRequest(user_id=ALICE, alias="#lobby:a.test", room_id=room_id)
    )
    assert first.alias_exists is False
    await client.set_room_alias(
        m.SetRoomAliasRequest(user_id=BOB, alias="#hall:a.test", room_id=room_id)
    )
    again = await client.set_room_alias(  # taken: nothing changes
        m.SetRoomAliasRequest(user_id=BOB, alias="#lobby:a.test", room_id=other_room)
    )
    assert again.alias_exists is True

    found = await client.get_room_id_for_alias(m.GetRoomIDForAliasRequest(alias="#lobby:a.test"))
    assert found.room_id == room_id
    creator = await client.get_creator_id_for_alias(
        m.GetCreatorIDForAliasRequest(alias="#lobby:a.test")
    )
    assert creator.user_id == ALICE
    aliases = await client.get_aliases_for_room_id(m.GetAliasesForRoomIDRequest(room_id=room_id))
    assert aliases.aliases == ["#hall:a.test", "#lobby:a.test"]
    none = await client.get_aliases_for_room_id(m.GetAliasesForRoomIDRequest(room_id=other_room))
    assert none.aliases == []

    await client.remove_room_alias(m.RemoveRoomAliasRequest(user_id=ALICE, alias="#lobby:a.test"))
    aliases = await client.get_aliases_for_room_id(m.GetAliasesForRoomIDRequest(room_id=room_id))
    assert aliases.aliases == ["#hall:a.test"]
    with pytest.raises(RoomserverError) as caught:
        await client.get_room_id_for_alias(m.GetRoomIDForAliasRequest(alias="#lobby:a.test"))
    assert (caught.value.status, caught.value.errcode) == (404, "M_NOT_FOUND")
    moved = await client.set_room_alias(  # free again
        m.SetRoomAliasRequest(user_id=BOB, alias="#lobby:a.test", room_id=other_room)
    )
    assert moved.alias_exists is False


async def test_the_seed_paths_answer_with_their_case(client: RoomserverClient) -> None:
    room_id = await make_room(client)
    calls = [
        ("setRoomAlias", {"user_id": ALICE, "alias": "#x:a.test", "room_id": room_id}),
        ("GetRoomIDForAlias", {"alias": "#x:a.test"}),
        ("GetAliasesForRoomID", {"room_id": room_id}),
        ("GetCreatorIDForAlias", {"alias": "#x:a.test"}),
        ("removeRoomAlias", {"user_id": ALICE, "alias": "#x:a.test"}),
    ]
    answers = []
    for path, body in calls:
        resp = await client.http.post(f"/api/roomserver/{path}", json=body)
        assert resp.status_code == 200, (path, resp.text)
        answers.append(resp.json())
    assert answers == [
        {"alias_exists": False},
        {"room_id": room_id},
        {"aliases": ["#x:a.test"]},
        {"user_id": ALICE},
        {},
    ]
    wrong_case = await client.http.post("/api/roomserver/getRoomIDForAlias", json={"alias": "#x"})
    assert wrong_case.status_code == 404 and wrong_case.json()["errcode"] == "M_UNRECOGNIZED"


async def test_unknown_aliases_and_rooms_are_404(client: RoomserverClient) -> None:
    calls = [
        client.get_room_id_for_alias(m.GetRoomIDForAliasRequest(alias="#none:a.test")),
        client.get_creator_id_for_alias(m.GetCreatorIDForAliasRequest(alias="#none:a.test")),
        client.remove_room_alias(m.RemoveRoomAliasRequest(user_id=ALICE, alias="#none:a.test")),
        client.get_aliases_for_room_id(m.GetAliasesForRoomIDRequest(room_id="!none:a.test")),
        client.set_room_alias(
            m.SetRoomAliasRequest(user_id=ALICE, alias="#new:a.test", room_id="!none:a.test")
        ),
    ]
    for call in calls:
        with pytest.raises(RoomserverError) as caught:
            await call
        assert (caught.value.status, caught.value.errcode) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    ("alias", "room_id", "user_id"),
    [
        ("lobby:a.test", "!r:a.test", ALICE),  # no sigil
        ("#lobby", "!r:a.test", ALICE),  # no server name
        ("#lobby:bad server", "!r:a.test", ALICE),
        ("#lo\u0000bby:a.test", "!r:a.test", ALICE),
        ("#lobby:a.test", "room", ALICE),
        ("#lobby:a.test", "!r:a.test", "alice"),
    ],
)
async def test_bad_grammar_is_400(
    client: RoomserverClient, alias: str, room_id: str, user_id: str
) -> None:
    with pytest.raises(RoomserverError) as caught:
        await client.set_room_alias(
            m.SetRoomAliasRequest(user_id=user_id, alias=alias, room_id=room_id)
        )
    assert (caught.value.status, caught.value.errcode) == (400, "M_INVALID_PARAM")
