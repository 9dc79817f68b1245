"""Signing events with a server's ed25519 key.

Event signatures cover the redacted event (so a redaction never breaks them), without
``signatures`` and ``unsigned``. Keys are signedjson/nacl ``SigningKey`` objects carrying
``alg`` and ``version``, so a key ID is ``f"{key.alg}:{key.version}"``.
"""

from __future__ import annotations

from typing import Any

from signedjson.key import SigningKey
from unpaddedbase64 import encode_base64

from .canonical import encode_canonical
from .redaction import redact
from .room_versions import RoomVersion


def key_id(key: SigningKey) -> str:
    return f"{key.alg}:{key.version}"


def signing_bytes(pdu: dict[str, Any], version: RoomVersion) -> bytes:
    """The bytes an event signature covers."""
    redacted = redact(pdu, version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return encode_canonical(redacted)


def sign_event(pdu: dict[str, Any], version: RoomVersion, server_name: str, key: SigningKey) -> None:
    """Add ``server_name``'s signature to ``pdu`` in place."""
    signature = key.sign(signing_bytes(pdu, version)).signature
    pdu.setdefault("signatures", {}).setdefault(server_name, {})[key_id(key)] = encode_base64(
        signature
    )
