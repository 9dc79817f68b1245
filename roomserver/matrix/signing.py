"""Event signatures: who must sign an event, signing it, and verifying it.

Event signatures cover the redacted event without ``signatures`` and ``unsigned`` (so a
redaction never breaks them); :attr:`Event.signing_bytes` caches those bytes, which in
rooms v3+ the parser already computed for the event ID. Keys are signedjson/nacl
objects: a ``SigningKey`` carries ``alg`` and ``version``, so its key ID is
``f"{key.alg}:{key.version}"``; verification keys come from a caller-supplied lookup
(the key ring), as :class:`ServerKey`.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
from signedjson.types import SigningKey
from unpaddedbase64 import decode_base64, encode_base64

from .canonical import canonical_json
from .errors import InvalidIdentifier, SignatureError
from .events import MEMBER, Event
from .hashing import signing_input
from .ids import server_name_of
from .room_versions import EventFormat, RoomVersion

ED25519 = "ed25519"
AUTHORISING_USER = "join_authorised_via_users_server"


@dataclass(frozen=True, slots=True)
class ServerKey:
    """A server's public signing key as the key ring knows it.

    ``valid_until_ts`` is the key's ``valid_until_ts`` (ms; already capped at 7 days ahead by
    the key ring, as v5+ requires), or ``None`` when it does not expire (e.g. our own key).
    """

    verify_key: nacl.signing.VerifyKey
    valid_until_ts: int | None = None


KeyLookup = Callable[[str, str], ServerKey | None]
"""``(server_name, key_id) -> ServerKey | None``: ``None`` when the key is unknown."""


def key_id(key: SigningKey) -> str:
    return f"{key.alg}:{key.version}"


def server_key_from_base64(public_key: str, valid_until_ts: int | None = None) -> ServerKey:
    """A :class:`ServerKey` from the unpadded base64 of an ed25519 public key."""
    try:
        raw = decode_base64(public_key)
        return ServerKey(nacl.signing.VerifyKey(raw), valid_until_ts)
    except (ValueError, binascii.Error, nacl.exceptions.ValueError, TypeError) as e:
        raise SignatureError(f"not an ed25519 public key: {public_key!r} ({e})") from None


def server_key_of(key: SigningKey, valid_until_ts: int | None = None) -> ServerKey:
    """The :class:`ServerKey` that verifies what ``key`` signs (e.g. our own server's)."""
    return ServerKey(nacl.signing.VerifyKey(key.verify_key.encode()), valid_until_ts)


def key_lookup(
    keys: Mapping[str, Mapping[str, str]], valid_until_ts: int | None = None
) -> KeyLookup:
    """A :data:`KeyLookup` over ``{server_name: {key_id: unpadded base64 public key}}``,
    the ``signing_keys`` format of the conformance data and of ``/_matrix/key/v2``'s
    ``verify_keys`` (less the ``{"key": …}`` wrapper)."""
    table = {
        (server, kid): server_key_from_base64(b64, valid_until_ts)
        for server, by_id in keys.items()
        for kid, b64 in by_id.items()
    }
    return lambda server, kid: table.get((server, kid))


def signing_bytes(pdu: dict[str, Any], version: RoomVersion) -> bytes:
    """The bytes an event signature covers."""
    return signing_input(pdu, version)


def sign_event(
    pdu: dict[str, Any], version: RoomVersion, server_name: str, key: SigningKey
) -> None:
    """Add ``server_name``'s signature to ``pdu`` in place (``hashes`` must already be set)."""
    signature = key.sign(signing_input(pdu, version)).signature
    pdu.setdefault("signatures", {}).setdefault(server_name, {})[key_id(key)] = encode_base64(
        signature
    )


def sign_json(obj: dict[str, Any], server_name: str, key: SigningKey) -> dict[str, Any]:
    """Sign a JSON object (not an event) in place, as the appendix's "Signing JSON" says:
    the canonical JSON of the object without ``signatures`` and ``unsigned``."""
    body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = key.sign(canonical_json(body)).signature
    obj.setdefault("signatures", {}).setdefault(server_name, {})[key_id(key)] = encode_base64(
        signature
    )
    return obj


def _is_third_party_invite(event: Event) -> bool:
    return (
        event.type == MEMBER
        and event.content.get("membership") == "invite"
        and "third_party_invite" in event.content
    )


def _server_of(identifier: str, event: Event) -> str:
    """The server of an ID the parser already validated (its length may be the one thing
    wrong with it, for an event kept as rejected)."""
    server = identifier.partition(":")[2]
    if not server:
        raise SignatureError(f"event {event.event_id}: {identifier!r} names no server")
    return server


def required_signers(event: Event) -> set[str]:
    """The servers whose signatures ``event`` needs.

    - The sender's server, except for an invite made from a third-party invite: its
      sender must match the third-party invite's, but any server may send it.
    - Rooms v1/v2: also the server of the event ID.
    - Rooms v8+: a join carrying ``join_authorised_via_users_server`` also needs the
      authorising user's server (a restricted join is vouched for by a resident server).
    """
    required: set[str] = set()
    if not _is_third_party_invite(event):
        required.add(_server_of(event.sender, event))
    version = event.room_version
    if version.event_format is EventFormat.V1:
        required.add(_server_of(event.event_id, event))
    if (
        version.restricted_join_rule
        and event.type == MEMBER
        and event.content.get("membership") == "join"
        and AUTHORISING_USER in event.content
    ):
        authoriser = event.content[AUTHORISING_USER]
        try:
            if type(authoriser) is not str or not authoriser.startswith("@"):
                raise InvalidIdentifier(f"{authoriser!r} is not a user ID")
            required.add(server_name_of(authoriser))
        except InvalidIdentifier as e:
            raise SignatureError(
                f"event {event.event_id}: {AUTHORISING_USER} is not a valid user ID ({e})"
            ) from None
    return required


def check_signature_presence(event: Event) -> None:
    """Raise :class:`SignatureError` if a required server has no signature at all.

    The key-free part of validation (what Synapse checks in
    ``validate_event_for_room_version``); :func:`verify_event_signatures` does it all.
    """
    signatures = event.signatures
    for server in sorted(required_signers(event)):
        if not signatures.get(server):
            raise SignatureError(f"event {event.event_id} is not signed by {server}")


def verify_event_signatures(event: Event, key_for: KeyLookup) -> None:
    """Check every required server's signatures; raise :class:`SignatureError` on failure.

    Per server: only ``ed25519`` signatures count; signatures by keys ``key_for`` does not
    know are skipped, as are (rooms v5+) keys that expired before the event's
    ``origin_server_ts``; every remaining signature must verify, and at least one must.
    """
    signatures = event.signatures
    message: bytes | None = None
    for server in sorted(required_signers(event)):
        by_key = signatures.get(server)
        if not by_key:
            raise SignatureError(f"event {event.event_id} is not signed by {server}")
        if type(by_key) is not dict:
            raise SignatureError(
                f"event {event.event_id}: signatures of {server} are not an object"
            )
        verified = 0
        skipped: list[str] = []
        for kid, sig_b64 in by_key.items():
            if not kid.startswith(ED25519 + ":"):
                continue
            key = key_for(server, kid)
            if key is None:
                skipped.append(f"{kid} is unknown")
                continue
            if (
                event.room_version.enforce_key_validity
                and key.valid_until_ts is not None
                and key.valid_until_ts < event.origin_server_ts
            ):
                skipped.append(
                    f"{kid} expired at {key.valid_until_ts}, before the event's"
                    f" origin_server_ts {event.origin_server_ts}"
                )
                continue
            try:
                signature = decode_base64(sig_b64)
            except (ValueError, binascii.Error, TypeError):
                raise SignatureError(
                    f"event {event.event_id}: signature of {server} with {kid} is not base64"
                ) from None
            if message is None:
                message = event.signing_bytes
            try:
                key.verify_key.verify(message, signature)
            except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
                raise SignatureError(
                    f"event {event.event_id}: bad signature from {server} with key {kid}"
                ) from None
            verified += 1
        if not verified:
            why = "; ".join(skipped) if skipped else "it has no ed25519 signature"
            raise SignatureError(
                f"event {event.event_id}: no verifiable signature from {server}: {why}"
            )
