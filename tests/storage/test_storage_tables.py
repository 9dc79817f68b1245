"""Every table operation, on SQLite and PostgreSQL."""

from __future__ import annotations

import orjson
import pytest

from roomserver.storage import NewEvent, Storage
from roomserver.storage.tables import InviteInfo, MembershipInfo, Tables
from roomserver.types import (
    EMPTY_STATE_KEY_NID,
    FIRST_AUTO_EVENT_TYPE_NID,
    WELL_KNOWN_EVENT_TYPES,
    EventTypeNIDs,
    Membership,
    StateKeyTuple,
)


def event(event_id: str, room_nid: int, **overrides: object) -> NewEvent:
    fields: dict[str, object] = {
        "event_id": event_id,
        "room_nid": room_nid,
        "type_nid": EventTypeNIDs.MESSAGE,
        "state_key_nid": None,
        "depth": 1,
        "auth_event_nids": [],
        "json": orjson.dumps({"event_id": event_id, "content": {"body": "x" * 40}}),
    }
    fields.update(overrides)
    return NewEvent(**fields)  # type: ignore[arg-type]


async def new_room(tx: Tables, room_id: str = "!room:example.org") -> int:
    return (await tx.rooms.get_or_create(room_id, "10")).room_nid


async def test_rooms(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await tx.rooms.get_or_create("!a:x", "10")
        assert room.room_nid > 0 and room.room_version == "10"
        assert room.is_stub and room.latest_event_nids == ()
        assert room.state_snapshot_nid is None and room.last_event_sent_nid is None
        again = await tx.rooms.get_or_create("!a:x", "9")  # an existing room keeps its version
        assert again == room
        other = await tx.rooms.get_or_create("!b:x", "11")
        assert other.room_nid != room.room_nid
        locked = await tx.rooms.lock(room.room_nid)
        assert locked == room
        await tx.rooms.update_latest(room.room_nid, [7, 3], 7, 42)
    async with storage.read() as r:
        updated = await r.rooms.get("!a:x")
        assert updated is not None
        assert updated.latest_event_nids == (7, 3)
        assert updated.last_event_sent_nid == 7 and updated.state_snapshot_nid == 42
        assert not updated.is_stub
        assert await r.rooms.get("!nope:x") is None
        assert await r.rooms.get_by_nid(other.room_nid) == other
        assert set(await r.rooms.get_many(["!a:x", "!b:x", "!c:x"])) == {"!a:x", "!b:x"}
        assert await r.rooms.room_ids([room.room_nid, other.room_nid, 999]) == {
            room.room_nid: "!a:x",
            other.room_nid: "!b:x",
        }
        with pytest.raises(LookupError):
            await r.rooms.lock(999)


async def test_event_types_and_state_keys(storage: Storage) -> None:
    async with storage.read() as r:
        assert await r.event_types.nids(list(WELL_KNOWN_EVENT_TYPES)) == WELL_KNOWN_EVENT_TYPES
        assert await r.event_state_keys.nids([""]) == {"": EMPTY_STATE_KEY_NID}
        assert await r.event_types.nids(["com.example.unknown"]) == {}
    types = await storage.assign_event_type_nids(
        ["m.room.member", "com.example.a", "com.example.b"]
    )
    assert types["m.room.member"] == EventTypeNIDs.MEMBER
    assert min(types["com.example.a"], types["com.example.b"]) >= FIRST_AUTO_EVENT_TYPE_NID
    keys = await storage.assign_state_key_nids(["", "@alice:x", "@bob:x", "@alice:x"])
    assert keys[""] == 1 and len({keys["@alice:x"], keys["@bob:x"], 1}) == 3
    assert 0 not in keys.values()
    assert await storage.assign_state_key_nids(["@alice:x"]) == {"@alice:x": keys["@alice:x"]}
    async with storage.read() as r:
        assert await r.event_state_keys.strings([keys["@bob:x"], 1, 12345]) == {
            keys["@bob:x"]: "@bob:x",
            1: "",
        }
        assert await r.event_types.strings([types["com.example.b"]]) == {
            types["com.example.b"]: "com.example.b"
        }
    # inside a transaction: assigned there, visible there, gone if it rolls back
    with pytest.raises(RuntimeError, match="boom"):
        async with storage.transaction() as tx:
            inner = await storage.assign_state_key_nids(["@carol:x"])
            assert await tx.event_state_keys.nids(["@carol:x"]) == inner
            raise RuntimeError("boom")
    async with storage.read() as r:
        assert await r.event_state_keys.nids(["@carol:x"]) == {}
    assert storage.state_key_cache.nid("@carol:x") is None  # never cached uncommitted


async def test_events_insert_lookup_and_json(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx)
        stored = await tx.events.insert(
            [
                event("$create", room, type_nid=EventTypeNIDs.CREATE, state_key_nid=1),
                event("$msg", room, depth=2, state_snapshot_nid=None, is_outlier=True),
            ]
        )
        assert [new for _, new in stored] == [True, True]
        create_nid, msg_nid = (nid for nid, _ in stored)
        again = await tx.events.insert(
            [
                event("$msg", room, depth=99),  # already stored: keeps its row
                event("$third", room, depth=3, auth_event_nids=[create_nid, msg_nid]),
                event("$third", room, depth=3),  # repeated in one batch
            ]
        )
        assert again[0] == (msg_nid, False)
        assert again[1][1] is True and again[2] == (again[1][0], False)
        third_nid = again[1][0]
    async with storage.read() as r:
        infos = await r.events.lookup(["$create", "$msg", "$third", "$missing"])
        assert set(infos) == {"$create", "$msg", "$third"}
        create, msg, third = infos["$create"], infos["$msg"], infos["$third"]
        assert create.is_state and create.state_key_tuple == StateKeyTuple(1, 1)
        assert create.state_entry == (1, 1, create_nid)
        assert not msg.is_state and msg.state_key_nid is None and msg.depth == 2
        assert msg.is_outlier and msg.state_snapshot_nid is None
        assert third.auth_event_nids == (create_nid, msg_nid)
        assert not third.is_rejected and not third.is_soft_failed
        assert await r.events.by_nid([third_nid]) == {third_nid: third}
        assert await r.events.nids(["$msg", "$nope"]) == {"$msg": msg_nid}
        assert await r.events.event_ids([create_nid, msg_nid]) == {
            create_nid: "$create",
            msg_nid: "$msg",
        }
        json = await r.events.json([create_nid, msg_nid, third_nid])
        assert orjson.loads(json[msg_nid])["event_id"] == "$msg"
        assert await r.events.auth_event_nids([third_nid]) == {third_nid: [create_nid, msg_nid]}


async def test_events_flags_and_state_updates(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx)
        stored = await tx.events.insert(
            [
                event("$a", room, is_outlier=True),
                event("$b", room, is_rejected=True, rejection_reason="bad auth"),
                event("$c", room, state_snapshot_nid=5),
            ]
        )
        a, b, c = (nid for nid, _ in stored)
        await tx.events.set_state_snapshots([(a, 17)])
        await tx.events.set_rejected([(c, "not allowed")])
        await tx.events.set_soft_failed([a, b], True)
    async with storage.read() as r:
        infos = await r.events.by_nid([a, b, c])
    assert infos[a].state_snapshot_nid == 17 and not infos[a].is_outlier
    assert infos[a].is_soft_failed and infos[b].is_soft_failed and not infos[c].is_soft_failed
    assert infos[b].is_rejected and infos[b].rejection_reason == "bad auth"
    assert infos[c].is_rejected and infos[c].rejection_reason == "not allowed"
    assert infos[c].state_snapshot_nid == 5


async def test_reserved_event_nids(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx)
        ((first, _),) = await tx.events.insert([event("$first", room)])
        reserved = await tx.events.reserve_nids(3)
        assert len(set(reserved)) == 3 and min(reserved) > first
        assert await tx.events.reserve_nids(0) == []
        stored = await tx.events.insert(
            [event(f"$r{i}", room, event_nid=nid) for i, nid in enumerate(reserved)]
        )
        assert stored == [(nid, True) for nid in reserved]
        ((later, _),) = await tx.events.insert([event("$later", room)])  # no collision
        assert later > max(reserved)
        with pytest.raises(ValueError, match="already stored"):
            await tx.events.insert(
                [event("$r0", room, event_nid=(await tx.events.reserve_nids(1))[0])]
            )
    async with storage.read() as r:
        infos = await r.events.lookup(["$r0", "$r2"])
        assert infos["$r2"].event_nid == reserved[2]


async def test_many_events_in_one_batch(storage: Storage) -> None:
    """More rows than one SQLite statement may bind: the batch is split, order kept."""
    n = 7000
    async with storage.transaction() as tx:
        room = await new_room(tx)
        stored = await tx.events.insert([event(f"${i}", room, depth=i) for i in range(n)])
    nids = [nid for nid, _ in stored]
    assert len(set(nids)) == n and all(new for _, new in stored)
    assert nids == sorted(nids)
    async with storage.read() as r:
        infos = await r.events.lookup([f"${i}" for i in range(0, n, 997)])
        assert all(infos[f"${i}"].depth == i for i in range(0, n, 997))
        assert len(await r.events.json(nids)) == n


async def test_previous_events_and_backward_extremities(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx)
        (a, _), (b, _) = await tx.events.insert([event("$a", room), event("$b", room)])
        # b -> a is known; b -> $gone and a -> $gone are not (yet)
        await tx.previous_events.add(room, [(b, "$a", a), (b, "$gone", None), (a, "$gone", None)])
        assert await tx.previous_events.referenced([a, b]) == {a}
        assert await tx.previous_events.children([a]) == {a: [b]}
        assert await tx.previous_events.backward_extremities(room) == {"$gone": sorted([a, b])}
        # the missing event arrives: its edges move to previous_events
        ((gone, _),) = await tx.events.insert([event("$gone", room)])
        assert await tx.previous_events.backward_extremities(room) == {}
        assert await tx.previous_events.referenced([a, b, gone]) == {a, gone}
        assert await tx.previous_events.children([gone]) == {gone: sorted([a, b])}
        await tx.previous_events.add(room, [(b, "$a", a)])  # repeating an edge is harmless
        assert await tx.previous_events.children([a]) == {a: [b]}


async def test_memberships(storage: Storage) -> None:
    async with storage.transaction() as tx:
        room = await new_room(tx)
        other = await new_room(tx, "!other:x")
        await tx.memberships.upsert(
            [
                MembershipInfo(room, 10, 10, Membership.JOIN, 100),
                MembershipInfo(room, 11, 10, Membership.INVITE, 101),
                MembershipInfo(other, 10, 10, Membership.JOIN, 102),
                MembershipInfo(room, 12, 12, Membership.JOIN, 103),
                MembershipInfo(room, 12, 10, Membership.BAN, 104),  # last one wins
            ]
        )
        assert await tx.memberships.set_forgotten(room, 12, True)
        assert not await tx.memberships.set_forgotten(room, 99, True)
    async with storage.read() as r:
        got = await r.memberships.get(room, [10, 12, 99])
        assert set(got) == {10, 12}
        assert got[12].membership is Membership.BAN and got[12].sender_nid == 10
        assert got[12].event_nid == 104 and got[12].forgotten
        joined = await r.memberships.members(room, Membership.JOIN)
        assert [m.target_nid for m in joined] == [10]
        assert [m.target_nid for m in await r.memberships.members(room)] == [10, 11, 12]
        assert await r.memberships.rooms_of(10) == sorted([room, other])
        assert await r.memberships.rooms_of(11, Membership.INVITE) == [room]
    async with storage.transaction() as tx:  # a new membership event clears "forgotten"
        await tx.memberships.upsert([MembershipInfo(room, 12, 12, Membership.JOIN, 105)])
        again = (await tx.memberships.get(room, [12]))[12]
        assert again.membership is Membership.JOIN and not again.forgotten


async def test_invites(storage: Storage) -> None:
    invite_json = orjson.dumps({"type": "m.room.member", "content": {"membership": "invite"}})
    async with storage.transaction() as tx:
        room = await new_room(tx)
        new = await tx.invites.insert(
            [
                InviteInfo("$inv1", room, 20, 21, invite_json),
                InviteInfo("$inv2", room, 20, 22, invite_json),
                InviteInfo("$inv3", room, 30, 21, invite_json),
            ]
        )
        assert sorted(new) == ["$inv1", "$inv2", "$inv3"]
        assert await tx.invites.insert([InviteInfo("$inv1", room, 20, 21, invite_json)]) == []
        pending = await tx.invites.pending(room, 20)
        assert [(i.invite_event_id, i.sender_nid) for i in pending] == [
            ("$inv1", 21),
            ("$inv2", 22),
        ]
        assert pending[0].json == invite_json and not pending[0].retired
        assert await tx.invites.retire(room, 20) == ["$inv1", "$inv2"]
        assert await tx.invites.retire(room, 20) == []
        assert await tx.invites.pending(room, 20) == []
        assert [i.invite_event_id for i in await tx.invites.pending_for_user(30)] == ["$inv3"]
        got = await tx.invites.get(["$inv1", "$nope"])
        assert set(got) == {"$inv1"} and got["$inv1"].retired
        # a retired invite that arrives again stays retired
        assert await tx.invites.insert([InviteInfo("$inv1", room, 20, 21, invite_json)]) == []
        assert await tx.invites.pending(room, 20) == []


async def test_room_aliases(storage: Storage) -> None:
    async with storage.transaction() as tx:
        assert await tx.aliases.set("#a:x", "!r:x", "@alice:x")
        assert not await tx.aliases.set("#a:x", "!other:x", "@bob:x")
        assert await tx.aliases.set("#b:x", "!r:x", "@bob:x")
    async with storage.read() as r:
        assert await r.aliases.room_id("#a:x") == "!r:x"
        assert await r.aliases.creator("#a:x") == "@alice:x"
        assert await r.aliases.for_room("!r:x") == ["#a:x", "#b:x"]
        assert await r.aliases.room_id("#nope:x") is None
        assert await r.aliases.creator("#nope:x") is None
    async with storage.transaction() as tx:
        assert await tx.aliases.remove("#a:x")
        assert not await tx.aliases.remove("#a:x")
        assert await tx.aliases.for_room("!r:x") == ["#b:x"]


async def test_transactions(storage: Storage) -> None:
    async with storage.transaction() as tx:
        assert await tx.transactions.insert(1, "@a:x", "txn1", "$e1") == "$e1"
        assert await tx.transactions.insert(1, "@a:x", "txn1", "$e2") == "$e1"  # first wins
        assert await tx.transactions.insert(2, "@a:x", "txn1", "$e3") == "$e3"
    async with storage.read() as r:
        assert await r.transactions.event_id(1, "@a:x", "txn1") == "$e1"
        assert await r.transactions.event_id(2, "@a:x", "txn1") == "$e3"
        assert await r.transactions.event_id(1, "@b:x", "txn1") is None


async def test_redactions(storage: Storage) -> None:
    async with storage.transaction() as tx:
        await tx.redactions.insert([("$r1", "$target"), ("$r2", "$target"), ("$r1", "$target")])
        await tx.redactions.insert([("$r3", "$other")])
        await tx.redactions.mark_validated(["$r2"])
    async with storage.read() as r:
        found = await r.redactions.redacting(["$target"])
        assert [(x.redaction_event_id, x.validated) for x in found] == [
            ("$r1", False),
            ("$r2", True),
        ]
        got = await r.redactions.get(["$r3", "$nope"])
        assert set(got) == {"$r3"} and got["$r3"].redacts_event_id == "$other"


async def test_output_log(storage: Storage) -> None:
    async with storage.read() as r:
        assert await r.output.head() == 0
        assert await r.output.read(0) == []
    async with storage.transaction() as tx:
        assert await tx.output.append([b'{"n":1}', b'{"n":2}']) == [1, 2]
        assert await tx.output.append([]) == []
        assert await tx.output.append([b'{"n":3}']) == [3]
    with pytest.raises(RuntimeError):
        async with storage.transaction() as tx:
            await tx.output.append([b'{"n":"rolled back"}'])
            raise RuntimeError
    async with storage.transaction() as tx:  # the rollback left no gap
        positions = await tx.output.append([b'{"n":%d}' % i for i in range(4, 7004)])
        assert positions == list(range(4, 7004))
    async with storage.read() as r:
        assert await r.output.head() == 7003
        rows = await r.output.read(1, limit=2)
        assert [(row.position, orjson.loads(row.payload)) for row in rows] == [
            (2, {"n": 2}),
            (3, {"n": 3}),
        ]
    async with storage.transaction() as tx:
        assert await tx.output.truncate(3) == 2
        assert [row.position for row in await tx.output.read(0, 2)] == [3, 4]
