"""Content hashes, reference hashes and the event IDs derived from them.

Every function takes ``has_float``: what :func:`~roomserver.matrix.canonical.check_json_values`
answered for the PDU. :func:`~roomserver.matrix.events.parse_pdu` knows it and passes it;
left at ``None`` the PDU is checked here first (never strictly: these functions compute,
validation is the parser's job).
"""

from __future__ import annotations

import binascii
import hashlib
from typing import Any

from unpaddedbase64 import decode_base64

from .canonical import check_json_values, encode_canonical
from .redaction import signed_form
from .room_versions import EventFormat, RoomVersion

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64(digest: bytes) -> str:
    """Unpadded standard base64, the encoding of hashes and signatures."""
    return binascii.b2a_base64(digest, newline=False).rstrip(b"=").decode("ascii")


def _exact(pdu: dict[str, Any], has_float: bool | None) -> bool:
    return check_json_values(pdu, False) if has_float is None else has_float


def content_hash_input(pdu: dict[str, Any], *, has_float: bool | None = None) -> bytes:
    """The canonical bytes the content hash covers: the PDU less unsigned, signatures, hashes."""
    body = pdu.copy()
    body.pop("unsigned", None)
    body.pop("signatures", None)
    body.pop("hashes", None)
    return encode_canonical(body, has_float=_exact(pdu, has_float))


def content_hash(pdu: dict[str, Any], *, has_float: bool | None = None) -> str:
    """The unpadded base64 sha256 that belongs in ``hashes.sha256``."""
    return b64(hashlib.sha256(content_hash_input(pdu, has_float=has_float)).digest())


def hash_matches(claimed: object, digest: bytes) -> bool:
    """Whether a ``hashes.sha256`` value names ``digest``.

    Compares the unpadded base64 form first; falls back to decoding ``claimed`` so that a
    padded or URL-safe spelling of the right hash is accepted, as Synapse accepts it.
    """
    if type(claimed) is not str:
        return False
    if claimed == b64(digest):
        return True
    try:
        return decode_base64(claimed) == digest
    except (ValueError, binascii.Error):
        return False


def signing_input(
    pdu: dict[str, Any], version: RoomVersion, *, has_float: bool | None = None
) -> bytes:
    """Canonical JSON of the redacted event without signatures: what is signed and
    what the reference hash hashes."""
    return encode_canonical(signed_form(pdu, version), has_float=_exact(pdu, has_float))


def reference_hash(
    pdu: dict[str, Any], version: RoomVersion, *, has_float: bool | None = None
) -> bytes:
    """sha256 of the redacted event without signatures: what rooms v3+ name events by."""
    return hashlib.sha256(signing_input(pdu, version, has_float=has_float)).digest()


def event_id_from_reference_hash(digest: bytes, version: RoomVersion) -> str:
    """``$`` + base64 of the reference hash: standard in room v3, URL-safe from v4."""
    return encode_event_id(digest, urlsafe=version.event_format is EventFormat.V3)


def encode_event_id(digest: bytes, *, urlsafe: bool) -> str:
    encoded = binascii.b2a_base64(digest, newline=False).rstrip(b"=")
    if urlsafe:
        encoded = encoded.translate(_URLSAFE)
    return "$" + encoded.decode("ascii")


def compute_event_id(
    pdu: dict[str, Any], version: RoomVersion, *, has_float: bool | None = None
) -> str:
    """The event ID a room v3+ event must have; for v1/v2 the one the PDU carries ("" if none)."""
    event_format = version.event_format
    if event_format is EventFormat.V1:
        event_id = pdu.get("event_id")
        return event_id if isinstance(event_id, str) else ""
    data = encode_canonical(signed_form(pdu, version), has_float=_exact(pdu, has_float))
    return encode_event_id(hashlib.sha256(data).digest(), urlsafe=event_format is EventFormat.V3)


def reference_sha256(pdu: dict[str, Any], version: RoomVersion) -> str:
    """The ``{"sha256": …}`` value of a v1/v2 event reference ``[event_id, hashes]``."""
    return b64(reference_hash(pdu, version))
