"""Content hashes, reference hashes and event IDs derived from them."""

from __future__ import annotations

import hashlib
from base64 import b64encode, urlsafe_b64encode
from typing import Any

from .canonical import encode_canonical
from .redaction import redact
from .room_versions import EventFormat, RoomVersion

_NOT_HASHED = ("unsigned", "signatures", "hashes")


def _b64(digest: bytes) -> str:
    return b64encode(digest).decode("ascii").rstrip("=")


def content_hash(pdu: dict[str, Any], *, has_float: bool = False) -> str:
    """The unpadded base64 sha256 that belongs in ``hashes.sha256``."""
    body = {k: v for k, v in pdu.items() if k not in _NOT_HASHED}
    return _b64(hashlib.sha256(encode_canonical(body, has_float=has_float)).digest())


def reference_hash(pdu: dict[str, Any], version: RoomVersion, *, has_float: bool = False) -> bytes:
    """sha256 of the redacted event without signatures: what rooms v3+ name events by."""
    redacted = redact(pdu, version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(encode_canonical(redacted, has_float=has_float)).digest()


def compute_event_id(pdu: dict[str, Any], version: RoomVersion, *, has_float: bool = False) -> str:
    """The event ID a room v3+ event must have; for v1/v2 the one the PDU carries."""
    if version.event_format is EventFormat.V1:
        event_id = pdu.get("event_id")
        return event_id if isinstance(event_id, str) else ""
    digest = reference_hash(pdu, version, has_float=has_float)
    if version.event_format is EventFormat.V2:
        return "$" + _b64(digest)
    return "$" + urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def reference_sha256(pdu: dict[str, Any], version: RoomVersion) -> str:
    """The ``{"sha256": …}`` value of a v1/v2 event reference ``[event_id, hashes]``."""
    return _b64(reference_hash(pdu, version))
