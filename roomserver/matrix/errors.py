"""The protocol layer's errors.

Each carries a Matrix ``errcode`` so the HTTP edge can answer with a precise 4xx without
knowing every failure by name. A subclass names one way an event can be wrong, so tests and
callers can tell a bad hash from a bad signature without parsing messages.
"""

from __future__ import annotations


class MatrixError(Exception):
    """A protocol-level refusal: something the caller sent is wrong, not a bug of ours."""

    errcode = "M_UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedRoomVersion(MatrixError):
    errcode = "M_UNSUPPORTED_ROOM_VERSION"


class InvalidIdentifier(MatrixError):
    """A user, room, event ID or server name that breaks the spec's grammar."""

    errcode = "M_INVALID_PARAM"


class InvalidEvent(MatrixError):
    """An event that does not parse or validate for its room version."""

    errcode = "M_BAD_JSON"


class EventTooLarge(InvalidEvent):
    """Over 65,536 bytes of canonical JSON, or a field over its own size limit."""

    errcode = "M_TOO_LARGE"


class NonCanonicalJSON(InvalidEvent):
    """Floats, out-of-range integers or NaN where the room version's canonical JSON forbids them."""


class ContentHashMismatch(InvalidEvent):
    """``hashes.sha256`` does not match the event's content."""


class EventIDMismatch(InvalidEvent):
    """The event ID given does not match the one the room version derives from the event."""


class SignatureError(InvalidEvent):
    """A required signature is missing, unverifiable or wrong."""

    errcode = "M_FORBIDDEN"


class AuthError(MatrixError):
    """The auth rules refuse an event; the message says which rule."""

    errcode = "M_FORBIDDEN"
