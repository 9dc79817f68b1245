"""Pydantic models of the wire JSON, as in Dendrite's roomserver/api at 6d832ae544.

Kept shallow on purpose: events stay plain dicts (headered PDUs) and are parsed by the
protocol layer, which validates them far more strictly than a schema could.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class QueryRoomVersionCapabilitiesResponse(BaseModel):
    default: str = Field(description="Room version for new rooms.", examples=["10"])
    available: dict[str, str] = Field(
        description="Every supported room version and its stability.",
        examples=[{"1": "stable", "10": "stable", "12": "stable"}],
    )
