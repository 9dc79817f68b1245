"""Errors of the roomserver's services (input, query, aliases): refusals with an HTTP status.

The protocol layer raises :class:`~roomserver.matrix.errors.MatrixError` subclasses (a 400 by
default); services raise :class:`ServiceError` when the status or extra fields matter, e.g.
the IDs of the events an input is missing, so a federation caller can fetch them.
"""

from __future__ import annotations

from typing import Any

from roomserver.matrix.errors import MatrixError


class ServiceError(MatrixError):
    def __init__(self, status: int, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.extra = extra


def not_found(message: str, **extra: Any) -> ServiceError:
    return ServiceError(404, "M_NOT_FOUND", message, **extra)


def bad_request(message: str, errcode: str = "M_INVALID_PARAM", **extra: Any) -> ServiceError:
    return ServiceError(400, errcode, message, **extra)


def missing_events(what: str, event_ids: list[str]) -> ServiceError:
    """Events cited but not stored: nothing of the request was written."""
    shown = ", ".join(event_ids[:10]) + (" …" if len(event_ids) > 10 else "")
    return ServiceError(
        400,
        "M_MISSING_EVENTS",
        f"{what} not known to the roomserver: {shown}",
        missing_event_ids=event_ids,
    )
