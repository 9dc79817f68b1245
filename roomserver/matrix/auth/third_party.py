"""Invites that redeem a third-party invite (rule 4.4.1 in v8-v11 numbering).

The inviting server cannot prove the invitee's identity itself: the identity server
signed ``content.third_party_invite.signed`` (``mxid``, ``token``) with a key whose public
half the room's ``m.room.third_party_invite`` event (state key = token) published. The
invite is valid when that signature verifies with one of those public keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import decode_base64

from ..errors import AuthError
from ..events import THIRD_PARTY_INVITE, Event
from .levels import StateMap


def _public_keys(invite: Event) -> list[Any]:
    """``public_key`` first, then the entries of ``public_keys``."""
    content = invite.content
    keys: list[Any] = []
    if "public_key" in content:
        keys.append({"public_key": content["public_key"]})
    extra = content.get("public_keys", [])
    if isinstance(extra, (list, str, dict)):
        keys.extend(extra)  # Synapse extends with whatever is there; non-entries fail below
    else:
        raise AuthError("m.room.third_party_invite: public_keys is not an array")
    return keys


def _signed_by(signed: Mapping[str, Any], public_key: object) -> bool:
    """Does the first ed25519 signature in ``signed`` verify with ``public_key``?

    Like Synapse, only the first ``ed25519:`` signature found is tried for each public
    key; a bad key (not base64, wrong length) refuses the invite outright.
    """
    signatures = signed["signatures"]
    if not isinstance(signatures, Mapping):
        raise AuthError("third_party_invite.signed.signatures is not an object")
    for server, block in signatures.items():
        if not isinstance(block, Mapping):
            raise AuthError("third_party_invite.signed.signatures entries must be objects")
        for key_name in block:
            if not key_name.startswith("ed25519:"):
                continue
            if not isinstance(public_key, str):
                raise AuthError("m.room.third_party_invite public key is not a string")
            try:
                verify_key = decode_verify_key_bytes(key_name, decode_base64(public_key))
            except Exception:
                raise AuthError(
                    f"m.room.third_party_invite public key {public_key!r} is not an ed25519 key"
                ) from None
            try:
                verify_signed_json(dict(signed), server, verify_key)
            except (KeyError, SignatureVerifyException):
                return False
            return True
    return False


def check_third_party_invite(event: Event, state: StateMap) -> None:
    """Raise :class:`AuthError` unless the invite carries a valid third-party signature."""
    tpi = event.content.get("third_party_invite")
    if not isinstance(tpi, Mapping) or not isinstance(tpi.get("signed"), Mapping):
        raise AuthError("invite: third_party_invite has no 'signed' object (rule 4.4.1.2)")
    signed: Mapping[str, Any] = tpi["signed"]
    for key in ("mxid", "token", "signatures"):
        if key not in signed:
            raise AuthError(f"invite: third_party_invite.signed has no {key!r} (rule 4.4.1.3)")
    token = signed["token"]
    invite = state.get((THIRD_PARTY_INVITE, token)) if isinstance(token, str) else None
    if invite is None:
        raise AuthError(f"invite: no m.room.third_party_invite for token {token!r} (rule 4.4.1.5)")
    if invite.sender != event.sender:
        raise AuthError(
            "invite: the sender did not send the m.room.third_party_invite (rule 4.4.1.6)"
        )
    if signed["mxid"] != event.state_key:
        raise AuthError(
            "invite: third_party_invite.signed.mxid is not the state_key (rule 4.4.1.4)"
        )
    for entry in _public_keys(invite):
        if not isinstance(entry, Mapping) or "public_key" not in entry:
            raise AuthError("m.room.third_party_invite: a public_keys entry has no public_key")
        if _signed_by(signed, entry["public_key"]):
            return
    raise AuthError(
        "invite: no signature in third_party_invite.signed matches the room's public keys"
        " (rule 4.4.1.7)"
    )
