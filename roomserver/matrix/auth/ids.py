"""The little identifier grammar the auth rules need: domains of IDs and user ID validity.

The auth rules compare servers (``m.federate``, the v1-v5 ``m.room.aliases`` rule, v1/v2
redactions) and validate user IDs (power level ``users`` keys, v12 ``additional_creators``).
Both follow Synapse's reading, which is what rooms in the wild were authorised with.
"""

from __future__ import annotations

import ipaddress
import re

from ..errors import AuthError

_HOSTNAME = re.compile(r"\A[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*\Z")


def domain_of(identifier: str) -> str:
    """Everything after the first ``:``; an ID without one has no server, so it is refused."""
    idx = identifier.find(":")
    if idx == -1:
        raise AuthError(f"invalid identifier {identifier!r}: no server name")
    return identifier[idx + 1 :]


def looks_like_user_id(value: str) -> bool:
    """``@localpart:domain`` shape only (how power level ``users`` keys are checked)."""
    return value.startswith("@") and ":" in value


def _valid_server_name(server_name: str) -> bool:
    if server_name.endswith("]"):
        host = server_name
    else:
        host, sep, port = server_name.rpartition(":")
        if not sep:
            host = server_name
        else:
            try:
                int(port)
            except ValueError:
                return False
    if host.startswith("["):
        if not host.endswith("]"):
            return False
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    return _HOSTNAME.match(host) is not None


def is_valid_user_id(value: str) -> bool:
    """A user ID with a well-formed server name, at most 255 characters and bytes.

    This is the check v12 applies to ``additional_creators`` entries (Synapse's
    ``UserID.is_valid`` plus its length limit); the localpart is not restricted, since
    historical user IDs with odd localparts exist.
    """
    if len(value) > 255 or len(value.encode("utf-8")) > 255:
        return False
    if not value.startswith("@"):
        return False
    _, sep, domain = value[1:].partition(":")
    return bool(sep) and _valid_server_name(domain)
