"""The auth rules rule by rule, with real signed events, and every room version switch.

Each version test builds the same room and the same event in two versions and shows the
verdict flips, so a switch wired to the wrong version (or not at all) fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from signedjson.key import generate_signing_key
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

from roomserver.matrix.auth import (
    CREATOR_POWER_LEVEL,
    AuthError,
    auth_types_for_event,
    check_auth,
    check_auth_events,
    user_level,
)
from roomserver.matrix.builder import EventBuilder, RoomBuilder
from roomserver.matrix.errors import NonCanonicalJSON
from roomserver.matrix.events import (
    ALIASES,
    CREATE,
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS,
    REDACTION,
    THIRD_PARTY_INVITE,
    Event,
)
from roomserver.matrix.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, room_version

ALICE = "@alice:a.test"
BOB = "@bob:b.test"
CAROL = "@carol:c.test"
DAVE = "@dave:a.test"
ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS)

_builders: dict[str, EventBuilder] = {}


def builder_for(user_or_server: str) -> EventBuilder:
    server = user_or_server.split(":", 1)[1] if user_or_server.startswith("@") else user_or_server
    if server not in _builders:
        _builders[server] = EventBuilder(server)
    return _builders[server]


class Room(RoomBuilder):
    """A linear room grown one accepted event at a time (each event checked by the rules)."""

    def __init__(self, version: RoomVersion, sender: str = ALICE, **create_content: Any) -> None:
        self.by_id: dict[str, Event] = {}
        super().__init__(version, sender, builders=_builders, create_content=create_content)

    make = RoomBuilder.event

    def cited(self, event: Event) -> list[Event]:
        return [self.by_id[i] for i in event.auth_event_ids]

    def auth_list(self, event: Event) -> list[Event]:
        """What a caller hands to check_auth_events: the cited events (+ create in v12)."""
        found = self.cited(event)
        if self.version.room_id_from_create_event and event.type != CREATE:
            found.append(self.create)
        return found

    def check(self, event: Event) -> None:
        check_auth_events(event, self.auth_list(event))
        check_auth(event, self.state)

    def refusal(self, event: Event) -> str | None:
        try:
            self.check(event)
        except AuthError as e:
            return e.message
        return None

    def allowed(self, event: Event) -> bool:
        return self.refusal(event) is None

    def accept(self, event: Event) -> Event:
        self.check(event)
        return self.force(event)

    def force(self, event: Event) -> Event:
        """Put ``event`` into the room without checking it (to stage odd states)."""
        self.by_id[event.event_id] = event
        return self.apply(event)

    def send(
        self,
        type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        **kw: Any,
    ) -> Event:
        if type == CREATE:  # RoomBuilder's own create event: accepted as is
            return self.force(self.event(type, sender, content, state_key, **kw))
        return self.accept(self.make(type, sender, content, state_key, **kw))

    def join(self, user: str, **content: Any) -> Event:
        return self.send(MEMBER, user, {"membership": "join", **content}, user)

    def member(self, sender: str, target: str, membership: str, **content: Any) -> Event:
        return self.make(MEMBER, sender, {"membership": membership, **content}, target)


def setup_room(
    version: RoomVersion | str,
    *,
    join_rule: str = "public",
    users: dict[str, Any] | None = None,
    members: tuple[str, ...] = (BOB,),
    **levels: Any,
) -> Room:
    """Alice creates and joins; power levels (alice 100 unless v12, where she is creator)."""
    v = room_version(version) if isinstance(version, str) else version
    room = Room(v)
    room.join(ALICE)
    pl_users = {} if v.privileged_creators else {ALICE: 100}
    pl_users.update(users or {})
    room.send(POWER_LEVELS, ALICE, {"users": pl_users, **levels}, "")
    room.send(JOIN_RULES, ALICE, {"join_rule": join_rule}, "")
    for m in members:
        if join_rule != "public":
            room.send(MEMBER, ALICE, {"membership": "invite"}, m)
        room.join(m)
    return room


# --- auth events selection ------------------------------------------------------------


def test_auth_types_message_and_create() -> None:
    room = setup_room("10")
    msg = room.make("m.room.message", BOB, {"body": "hi"})
    assert auth_types_for_event(msg) == [(CREATE, ""), (POWER_LEVELS, ""), (MEMBER, BOB)]
    assert auth_types_for_event(room.create) == []


def test_auth_types_member_events() -> None:
    room = setup_room("10", join_rule="restricted", members=())
    invite = room.member(ALICE, BOB, "invite")
    assert set(auth_types_for_event(invite)) == {
        (CREATE, ""),
        (POWER_LEVELS, ""),
        (MEMBER, ALICE),
        (MEMBER, BOB),
        (JOIN_RULES, ""),
    }
    leave = room.member(ALICE, BOB, "leave")
    assert (JOIN_RULES, "") not in auth_types_for_event(leave)
    join = room.member(CAROL, CAROL, "join", join_authorised_via_users_server=ALICE)
    assert (MEMBER, ALICE) in auth_types_for_event(join)
    self_join = room.member(ALICE, ALICE, "join")
    assert auth_types_for_event(self_join).count((MEMBER, ALICE)) == 1
    tpi = room.member(
        ALICE, BOB, "invite", third_party_invite={"signed": {"token": "tok", "mxid": BOB}}
    )
    assert (THIRD_PARTY_INVITE, "tok") in auth_types_for_event(tpi)


def test_auth_types_restricted_authoriser_only_from_v8() -> None:
    for version, expected in (("7", False), ("8", True)):
        room = setup_room(version)
        join = room.member(CAROL, CAROL, "join", join_authorised_via_users_server=ALICE)
        assert ((MEMBER, ALICE) in auth_types_for_event(join)) is expected


# --- state-independent rules (check_auth_events) --------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_create_event_rules(version: str) -> None:
    v = room_version(version)
    room = Room(v)
    check_auth_events(room.create, [])
    check_auth(room.create, {})
    # prev_events on a create event
    bad = builder_for(ALICE).build(
        v,
        type=CREATE,
        sender=ALICE,
        content=dict(room.create.content),
        state_key="",
        room_id=room.room_id,
        prev_events=[room.create],
    )
    with pytest.raises(AuthError, match="prev_events"):
        check_auth_events(bad, [])
    # unknown room_version in content
    odd = Room(v, room_version="999")
    with pytest.raises(AuthError, match="room_version"):
        check_auth_events(odd.create, [])


@pytest.mark.parametrize("version", [v for v in ALL_VERSIONS if v != "12"])
def test_create_room_id_must_be_on_sender_server(version: str) -> None:
    v = room_version(version)
    content = {"creator": ALICE} if not v.implicit_room_creator else {}
    create = builder_for(ALICE).build(
        v, type=CREATE, sender=ALICE, content=content, state_key="", room_id="!x:elsewhere.test"
    )
    with pytest.raises(AuthError, match="room ID's server"):
        check_auth_events(create, [])


def test_v11_create_without_creator() -> None:
    """v11: ``creator`` is no longer required (the sender is the creator)."""
    for version, ok in (("10", False), ("11", True)):
        v = room_version(version)
        create = builder_for(ALICE).build(
            v, type=CREATE, sender=ALICE, content={}, state_key="", room_id="!c:a.test"
        )
        if ok:
            check_auth_events(create, [])
        else:
            with pytest.raises(AuthError, match="creator"):
                check_auth_events(create, [])


@pytest.mark.parametrize(
    "extra",
    ["@bob:b.test", [1], ["bob"], ["@bob"], ["@bob:bad_host!"], ["@" + "x" * 250 + ":b.test"]],
)
def test_v12_additional_creators_validated(extra: Any) -> None:
    """v12 validates ``additional_creators``; v11 ignores the key."""
    for version, ok in (("11", True), ("12", False)):
        room = Room(room_version(version), additional_creators=extra)
        if ok:
            check_auth_events(room.create, [])
        else:
            with pytest.raises(AuthError, match="additional_creators"):
                check_auth_events(room.create, [])
    valid = Room(room_version("12"), additional_creators=[BOB, "@x:[::1]:8448", "@y:h.test:80"])
    check_auth_events(valid.create, [])


@pytest.mark.parametrize("version", ["1", "6", "12"])
def test_auth_events_structure(version: str) -> None:
    room = setup_room(version)
    pl = room.state[(POWER_LEVELS, "")]
    msg = room.make("m.room.message", BOB, {"body": "x"})
    check_auth_events(msg, room.auth_list(msg))
    cited = room.cited(msg)

    def crafted(auth: list[Event]) -> Event:
        return room.make("m.room.message", BOB, {}, auth=auth)

    newer_pl = room.send(POWER_LEVELS, ALICE, {**pl.content, "ban": 60}, "")
    dup = crafted([*cited, newer_pl])
    with pytest.raises(AuthError, match="duplicate"):
        check_auth_events(dup, room.auth_list(dup))

    unexpected = crafted([*cited, room.state[(JOIN_RULES, "")]])  # join rules on a message
    with pytest.raises(AuthError, match="unexpected"):
        check_auth_events(unexpected, room.auth_list(unexpected))

    with pytest.raises(AuthError, match="rejected"):
        check_auth_events(msg, room.auth_list(msg), is_rejected=lambda i: i == pl.event_id)

    other = setup_room(version)
    foreign = other.state[(POWER_LEVELS, "")]
    other_room = crafted([e for e in cited if e.type != POWER_LEVELS] + [foreign])
    room.by_id[foreign.event_id] = foreign
    with pytest.raises(AuthError, match="is in room"):
        check_auth_events(other_room, room.auth_list(other_room))

    if room.version.room_id_from_create_event:
        with pytest.raises(AuthError, match=r"no m\.room\.create"):
            check_auth_events(msg, cited)  # the caller forgot the implied create event
    else:
        bare = crafted([e for e in cited if e.type != CREATE])
        with pytest.raises(AuthError, match=r"no m\.room\.create"):
            check_auth_events(bare, room.auth_list(bare))

    with pytest.raises(AuthError, match="not supplied"):
        check_auth_events(msg, [e for e in room.auth_list(msg) if e.type != POWER_LEVELS])


def test_v12_create_implied_must_be_accepted() -> None:
    """v12: the create event named by the room ID is vetted like a cited auth event."""
    room = setup_room("12")
    msg = room.make("m.room.message", BOB, {"body": "x"})
    assert room.create.event_id not in msg.auth_event_ids
    with pytest.raises(AuthError, match="rejected"):
        check_auth_events(msg, room.auth_list(msg), is_rejected=lambda i: i == room.create.event_id)


# --- m.federate ------------------------------------------------------------------------


@pytest.mark.parametrize("federate", [False, "false", 0])
def test_unfederated_room_refuses_remote_senders(federate: Any) -> None:
    room = Room(room_version("10"), **{"m.federate": federate})
    room.join(ALICE)
    room.send(JOIN_RULES, ALICE, {"join_rule": "public"}, "")
    assert "federated" in (room.refusal(room.member(BOB, BOB, "join")) or "")
    room.join(DAVE)  # same server as the creator
    assert "federated" in (room.refusal(room.member(DAVE, BOB, "invite")) or "")


# --- m.room.aliases (v1-v5) --------------------------------------------------------------


def test_aliases_special_case_until_v6() -> None:
    for version, ok in (("5", True), ("6", False)):
        room = setup_room(version)
        ev = room.make(ALIASES, CAROL, {"aliases": ["#x:c.test"]}, "c.test")  # not a member
        assert room.allowed(ev) is ok
    room = setup_room("1")
    assert "state_key" in (room.refusal(room.make(ALIASES, BOB, {"aliases": []}, "c.test")) or "")
    assert room.refusal(room.make(ALIASES, BOB, {"aliases": []}, "")) is not None


# --- membership ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_creator_first_join_only_right_after_create(version: str) -> None:
    room = Room(room_version(version))
    late = room.member(BOB, BOB, "join")
    assert room.refusal(late) is not None  # no join rules: invite-only
    assert room.allowed(room.member(ALICE, ALICE, "join"))


def _room_created_for(version: str, creator: str) -> Room:
    """Alice sends the create event; before v11 it may name someone else as ``creator``."""
    v = room_version(version)
    return Room(v, ALICE, **({} if v.implicit_room_creator else {"creator": creator}))


def test_v11_first_join_uses_create_sender() -> None:
    """Before v11 ``content.creator`` names who may join first; from v11, the sender."""
    for version, ok in (("10", False), ("11", True)):
        room = _room_created_for(version, creator=BOB)
        assert room.allowed(room.member(ALICE, ALICE, "join")) is ok


def test_v11_creator_level_without_power_levels() -> None:
    """With no power levels the creator has 100: ``content.creator`` before v11, the sender after."""
    for version, ok in (("10", False), ("11", True)):
        room = _room_created_for(version, creator=BOB)
        room.force(room.member(ALICE, ALICE, "join"))
        assert room.allowed(room.make("m.room.topic", ALICE, {"topic": "t"}, "")) is ok
        assert (user_level(ALICE, room.state) == 100) is ok


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_joins(version: str) -> None:
    room = setup_room(version, join_rule="invite")
    assert "not invited" in (room.refusal(room.member(CAROL, CAROL, "join")) or "")
    assert "sender must be" in (room.refusal(room.member(ALICE, CAROL, "join")) or "")
    room.send(MEMBER, ALICE, {"membership": "invite"}, CAROL)
    assert room.allowed(room.member(CAROL, CAROL, "join"))
    room.join(CAROL)
    assert room.allowed(room.member(CAROL, CAROL, "join", displayname="c"))  # already joined
    room.send(MEMBER, ALICE, {"membership": "ban"}, CAROL)
    assert "banned" in (room.refusal(room.member(CAROL, CAROL, "join")) or "")
    public = setup_room(version)
    assert public.allowed(public.member(CAROL, CAROL, "join"))
    private = setup_room(version, join_rule="private", members=())
    assert private.refusal(private.member(CAROL, CAROL, "join")) is not None


@pytest.mark.parametrize("version", ["1", "10", "12"])
def test_invites(version: str) -> None:
    room = setup_room(version, join_rule="invite", members=(), invite=50, users={BOB: 10})
    room.send(MEMBER, ALICE, {"membership": "invite"}, BOB)
    room.join(BOB)
    assert "invite level" in (room.refusal(room.member(BOB, CAROL, "invite")) or "")
    assert "not joined" in (room.refusal(room.member(CAROL, DAVE, "invite")) or "")
    assert "already joined" in (room.refusal(room.member(ALICE, BOB, "invite")) or "")
    room.send(MEMBER, ALICE, {"membership": "ban"}, CAROL)
    assert "banned" in (room.refusal(room.member(ALICE, CAROL, "invite")) or "")
    assert room.allowed(room.member(ALICE, DAVE, "invite"))


@pytest.mark.parametrize("version", ["1", "7", "12"])
def test_leave_kick_ban_unban(version: str) -> None:
    room = setup_room(version, members=(BOB, CAROL), users={BOB: 50})

    def refusal(sender: str, target: str, membership: str) -> str:
        return room.refusal(room.member(sender, target, membership)) or "allowed"

    assert refusal(CAROL, CAROL, "leave") == "allowed"
    assert refusal(BOB, CAROL, "leave") == "allowed"  # kick: 50 >= 50 and 50 > 0
    assert "kick" in refusal(CAROL, BOB, "leave")
    assert "kick" in refusal(BOB, ALICE, "leave")
    assert "ban level" in refusal(CAROL, BOB, "ban")
    assert "target level" in refusal(BOB, ALICE, "ban")
    assert refusal(BOB, CAROL, "ban") == "allowed"
    room.send(MEMBER, ALICE, {"membership": "ban"}, DAVE)
    assert "unban" in refusal(CAROL, DAVE, "leave")
    assert refusal(BOB, DAVE, "leave") == "allowed"
    assert "not joined" in refusal(DAVE, DAVE, "leave")
    assert "unknown membership" in refusal(ALICE, BOB, "dance")


# --- knock (v7) and knock_restricted (v10) ------------------------------------------------


def test_v7_knock() -> None:
    for version, ok in (("6", False), ("7", True)):
        room = setup_room(version, join_rule="knock", members=())
        assert room.allowed(room.member(BOB, BOB, "knock")) is ok


def test_v7_knock_details() -> None:
    room = setup_room("7", join_rule="knock", members=(BOB,))
    room.accept(room.member(CAROL, CAROL, "knock"))
    assert room.allowed(room.member(CAROL, CAROL, "leave"))  # withdraw the knock
    assert room.allowed(room.member(ALICE, CAROL, "invite"))
    assert "sender must be" in (room.refusal(room.member(ALICE, DAVE, "knock")) or "")
    assert "already joined" in (room.refusal(room.member(BOB, BOB, "knock")) or "")
    room.send(MEMBER, ALICE, {"membership": "invite"}, DAVE)
    assert "invited" in (room.refusal(room.member(DAVE, DAVE, "knock")) or "")
    room.send(MEMBER, ALICE, {"membership": "ban"}, DAVE)
    assert "banned" in (room.refusal(room.member(DAVE, DAVE, "knock")) or "")
    public = setup_room("7")
    assert "join rule" in (public.refusal(public.member(CAROL, CAROL, "knock")) or "")


def test_knock_leave_only_from_v7() -> None:
    """A user whose membership is ``knock`` may leave from v7; before, it is not a membership."""
    for version, ok in (("6", False), ("7", True)):
        room = setup_room(version, join_rule="knock", members=())
        room.force(room.member(CAROL, CAROL, "knock"))
        assert room.allowed(room.member(CAROL, CAROL, "leave")) is ok


def test_v10_knock_restricted() -> None:
    for version, ok in (("9", False), ("10", True)):
        room = setup_room(version, join_rule="knock_restricted", members=())
        assert room.allowed(room.member(BOB, BOB, "knock")) is ok
        via = room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE)
        assert room.allowed(via) is ok
        room.send(MEMBER, ALICE, {"membership": "invite"}, CAROL)
        assert room.allowed(room.member(CAROL, CAROL, "join")) is ok


# --- restricted joins (v8, v9) ------------------------------------------------------------


def test_v8_restricted_join() -> None:
    for version, ok in (("7", False), ("8", True), ("9", True)):
        room = setup_room(version, join_rule="restricted", members=())
        via = room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE)
        assert room.allowed(via) is ok


@pytest.mark.parametrize("version", ["8", "10", "12"])
def test_restricted_join_authoriser(version: str) -> None:
    room = setup_room(version, join_rule="restricted", members=(), invite=50)
    room.send(MEMBER, ALICE, {"membership": "invite"}, BOB)
    room.join(BOB)  # invited: no authoriser needed
    assert "no join_authorised_via_users_server" in (
        room.refusal(room.member(CAROL, CAROL, "join")) or ""
    )
    low = room.member(CAROL, CAROL, "join", join_authorised_via_users_server=BOB)
    assert "invite level" in (room.refusal(low) or "")
    absent = room.member(CAROL, CAROL, "join", join_authorised_via_users_server=DAVE)
    assert "not joined" in (room.refusal(absent) or "")
    assert room.allowed(room.member(CAROL, CAROL, "join", join_authorised_via_users_server=ALICE))
    assert room.allowed(room.member(BOB, BOB, "join", displayname="b"))  # already joined


# --- third-party invites ------------------------------------------------------------------


def _third_party_room(version: str) -> tuple[Room, Any, str]:
    room = setup_room(version)
    id_key = generate_signing_key("0")
    public = encode_base64(id_key.verify_key.encode())
    room.send(
        THIRD_PARTY_INVITE,
        ALICE,
        {"display_name": "c...", "key_validity_url": "https://id/", "public_key": public},
        "tok",
    )
    return room, id_key, public


def _signed(mxid: str, key: Any, token: str = "tok") -> dict[str, Any]:
    return sign_json({"mxid": mxid, "token": token}, "id.test", key)


@pytest.mark.parametrize("version", ["1", "10", "12"])
def test_third_party_invite(version: str) -> None:
    room, id_key, _ = _third_party_room(version)
    good = {"display_name": "c", "signed": _signed(CAROL, id_key)}
    assert room.allowed(room.member(ALICE, CAROL, "invite", third_party_invite=good))
    # another key's signature
    forged = {"signed": _signed(CAROL, generate_signing_key("0"))}
    assert "no signature" in (
        room.refusal(room.member(ALICE, CAROL, "invite", third_party_invite=forged)) or ""
    )
    # the signed mxid is someone else
    assert "mxid" in (
        room.refusal(room.member(ALICE, DAVE, "invite", third_party_invite=good)) or ""
    )
    # sender is not who sent the m.room.third_party_invite
    assert "did not send" in (
        room.refusal(room.member(BOB, CAROL, "invite", third_party_invite=good)) or ""
    )
    # unknown token
    other = {"signed": _signed(CAROL, id_key, token="nope")}
    assert "token" in (
        room.refusal(room.member(ALICE, CAROL, "invite", third_party_invite=other)) or ""
    )
    # no signed block
    assert "signed" in (
        room.refusal(room.member(ALICE, CAROL, "invite", third_party_invite={})) or ""
    )
    # banned target
    room.send(MEMBER, ALICE, {"membership": "ban"}, CAROL)
    assert "banned" in (
        room.refusal(room.member(ALICE, CAROL, "invite", third_party_invite=good)) or ""
    )


def test_third_party_invite_tries_the_first_signature_only() -> None:
    """Synapse (and we) try only the first ed25519 signature of ``signed`` per public key."""
    room, id_key, _ = _third_party_room("10")
    signed = sign_json({"mxid": CAROL, "token": "tok"}, "a-first.test", generate_signing_key("0"))
    signed = sign_json(signed, "id.test", id_key)
    assert list(signed["signatures"]) == ["a-first.test", "id.test"]
    tpi = {"signed": signed}
    assert "no signature" in (
        room.refusal(room.member(ALICE, CAROL, "invite", third_party_invite=tpi)) or ""
    )


def test_third_party_invite_public_keys_list() -> None:
    room = setup_room("10")
    id_key = generate_signing_key("0")
    room.send(
        THIRD_PARTY_INVITE,
        ALICE,
        {
            "public_keys": [
                {"public_key": encode_base64(generate_signing_key("1").verify_key.encode())},
                {"public_key": encode_base64(id_key.verify_key.encode())},
            ]
        },
        "tok",
    )
    tpi = {"signed": _signed(CAROL, id_key)}
    assert room.allowed(room.member(ALICE, CAROL, "invite", third_party_invite=tpi))


def test_sending_third_party_invite_needs_invite_level() -> None:
    room = setup_room("10", invite=50)
    ev = room.make(THIRD_PARTY_INVITE, BOB, {"public_key": "x"}, "tok2")
    assert "invite level" in (room.refusal(ev) or "")
    assert room.allowed(room.make(THIRD_PARTY_INVITE, ALICE, {"public_key": "x"}, "tok2"))


# --- sender joined, send levels, @-state keys ---------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_sender_must_be_joined_and_powerful_enough(version: str) -> None:
    room = setup_room(version, events={"m.room.name": 20})
    assert "not joined" in (room.refusal(room.make("m.room.message", CAROL, {})) or "")
    assert room.allowed(room.make("m.room.message", BOB, {}))
    assert "required power level 50" in (room.refusal(room.make("m.room.topic", BOB, {}, "")) or "")
    assert "required power level 20" in (room.refusal(room.make("m.room.name", BOB, {}, "")) or "")
    assert room.allowed(room.make("m.room.topic", ALICE, {}, ""))
    assert "starts with @" in (room.refusal(room.make("m.custom", ALICE, {}, BOB)) or "")
    assert room.allowed(room.make("m.custom", ALICE, {}, ALICE))


def test_check_auth_reads_only_selected_state() -> None:
    room = setup_room("10", members=(BOB, CAROL))
    msg = room.make("m.room.message", BOB, {})
    subset = {k: room.state[k] for k in auth_types_for_event(msg) if k in room.state}
    check_auth(msg, subset)
    check_auth(msg, room.state)
    with pytest.raises(AuthError, match=r"m\.room\.create"):
        check_auth(msg, {k: v for k, v in subset.items() if k[0] != CREATE})


# --- power levels ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_power_level_changes(version: str) -> None:
    room = setup_room(version, members=(BOB, CAROL), users={BOB: 50, CAROL: 50})
    pl = room.state[(POWER_LEVELS, "")].content

    def change(sender: str, **updates: Any) -> str | None:
        content = {**pl, **updates}
        return room.refusal(room.make(POWER_LEVELS, sender, content, ""))

    users = pl["users"]
    assert change(BOB) is None  # 50 >= state_default: bob may send power levels
    room.send(POWER_LEVELS, ALICE, {**pl, "events": {POWER_LEVELS: 50}}, "")
    pl = room.state[(POWER_LEVELS, "")].content
    assert change(BOB, ban=40) is None
    assert "above the sender" in (change(BOB, ban=60) or "")
    assert "above the sender" in (change(BOB, users={**users, DAVE: 60}) or "")
    assert change(BOB, users={**users, DAVE: 50}) is None
    assert "equals the sender" in (change(BOB, users={**users, CAROL: 0}) or "")
    assert change(BOB, users={**users, BOB: 0}) is None  # demoting oneself
    assert "above the sender" in (change(BOB, events={POWER_LEVELS: 50, "m.x": 60}) or "")
    assert "not a user ID" in (change(ALICE, users={**users, "carol": 1}) or "")


def test_v6_notifications_guarded() -> None:
    for version, ok in (("5", True), ("6", False)):
        room = setup_room(version, users={BOB: 50}, events={POWER_LEVELS: 50})
        pl = room.state[(POWER_LEVELS, "")].content
        ev = room.make(POWER_LEVELS, BOB, {**pl, "notifications": {"room": 100}}, "")
        assert room.allowed(ev) is ok


def test_v6_integer_range_is_a_parse_rule() -> None:
    """A level beyond 2**53 is fine in v5's JSON (and its auth) but not in v6's canonical JSON."""
    content = {"users": {ALICE: 100}, "users_default": -(2**60)}
    room = setup_room("5")
    assert room.allowed(room.make(POWER_LEVELS, ALICE, content, ""))
    room6 = setup_room("6")
    with pytest.raises(NonCanonicalJSON):
        room6.make(POWER_LEVELS, ALICE, content, "")


@pytest.mark.parametrize(
    "content",
    [
        {"ban": "50"},
        {"users_default": " 0 "},
        {"events": {"m.room.topic": "50"}},
        {"notifications": {"room": "50"}},
        {"users": {ALICE: "100", BOB: True}},
    ],
)
def test_v10_integer_power_levels(content: dict[str, Any]) -> None:
    for version, ok in (("9", True), ("10", False)):
        room = setup_room(version)
        users = {ALICE: 100}
        ev = room.make(POWER_LEVELS, ALICE, {"users": users, **content}, "")
        assert room.allowed(ev) is ok


def test_stringy_levels_are_read_as_integers_before_v10() -> None:
    room = setup_room("1", users={BOB: "60"}, state_default="55")
    assert user_level(BOB, room.state) == 60
    assert room.allowed(room.make("m.room.topic", BOB, {}, ""))
    room.send(POWER_LEVELS, ALICE, {"users": {ALICE: 100, BOB: "50"}, "state_default": "55"}, "")
    assert "required power level 55" in (room.refusal(room.make("m.room.topic", BOB, {}, "")) or "")


def test_unreadable_level_fails_only_the_checks_that_need_it() -> None:
    """The first power levels may hold ``"ban": "high"``; then every membership change fails."""
    room = setup_room("1", members=(), ban="high")
    assert room.allowed(room.make("m.room.message", ALICE, {}))
    assert "not an integer" in (room.refusal(room.member(BOB, BOB, "join")) or "")
    pl = room.state[(POWER_LEVELS, "")].content
    assert "not an integer" in (
        room.refusal(room.make(POWER_LEVELS, ALICE, {**pl, "ban": 50}, "")) or ""
    )


def test_v12_creators_outrank_everyone() -> None:
    """Bob (100) may ban Alice (creator, not in ``users``) in v11, never in v12."""
    for version, ok in (("11", True), ("12", False)):
        room = Room(room_version(version))
        room.join(ALICE)
        room.send(JOIN_RULES, ALICE, {"join_rule": "public"}, "")
        room.join(BOB)
        room.send(POWER_LEVELS, ALICE, {"users": {BOB: 100}}, "")
        assert room.allowed(room.member(BOB, ALICE, "ban")) is ok
        assert (user_level(ALICE, room.state) == CREATOR_POWER_LEVEL) is not ok


def test_v12_additional_creators_have_creator_power() -> None:
    for version, ok in (("11", False), ("12", True)):
        room = Room(room_version(version), additional_creators=[BOB])
        room.join(ALICE)
        users = {} if version == "12" else {ALICE: 100}
        room.send(POWER_LEVELS, ALICE, {"users": users}, "")
        room.send(JOIN_RULES, ALICE, {"join_rule": "public"}, "")
        room.join(BOB)
        assert room.allowed(room.make("m.room.topic", BOB, {}, "")) is ok


def test_v12_creators_cannot_be_given_a_level() -> None:
    for version, ok in (("11", True), ("12", False)):
        room = Room(room_version(version), additional_creators=[BOB])
        room.join(ALICE)
        assert room.allowed(room.make(POWER_LEVELS, ALICE, {"users": {ALICE: 100}}, "")) is ok
        assert room.allowed(room.make(POWER_LEVELS, ALICE, {"users": {BOB: 100}}, "")) is ok


# --- redactions (v1/v2 in the auth rules, v3+ out of them) --------------------------------


def test_v3_redaction_moves_out_of_auth() -> None:
    for version, ok in (("2", False), ("3", True)):
        room = setup_room(version, members=(BOB, CAROL))
        target = room.send("m.room.message", CAROL, {"body": "x"})  # c.test's event
        ev = room.make(REDACTION, BOB, {}, redacts=target.event_id)
        assert room.allowed(ev) is ok
        own = room.send("m.room.message", BOB, {"body": "mine"})
        assert room.allowed(room.make(REDACTION, BOB, {}, redacts=own.event_id))
        assert room.allowed(room.make(REDACTION, ALICE, {}, redacts=target.event_id))


def test_v1_redaction_without_redacts_passes() -> None:
    """Synapse lets a v1/v2 redaction that names no event through the redaction rule."""
    room = setup_room("1")
    assert room.allowed(room.make(REDACTION, BOB, {}))
