"""Settings, from ``ROOMSERVER_*`` environment variables.

The variable names are a contract with deployments (Dockerfile, docker-compose.yml, operators'
scripts): add new ones freely, never rename one.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from roomserver.matrix.room_versions import KNOWN_ROOM_VERSIONS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOMSERVER_", extra="ignore")

    database_url: str = "sqlite:///roomserver.db"
    """``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    ``postgresql://user@host:port/dbname``."""

    server_name: str = "localhost"
    """The homeserver this roomserver belongs to; its name in federation."""

    default_room_version: str = "10"
    """Offered by ``queryRoomVersionCapabilities`` as the version for new rooms."""

    max_request_bytes: int = 32 * 1024 * 1024
    """Request bodies above this are refused with 413 ``M_TOO_LARGE``."""

    # -- output stream (docs/output.md) --
    output_poll_ms: int = Field(default=1000, ge=10)
    """While a reader of the output stream waits, how often the database is asked for rows
    committed by another process (another replica on the same database); commits of this
    process wake readers at once."""

    nats_url: str = ""
    """``nats://host:4222`` to publish the output stream to NATS JetStream; empty: off."""

    nats_stream: str = "RoomserverOutput"
    """The JetStream stream to publish to (created with ``nats_subject`` if missing)."""

    nats_subject: str = "roomserver.output"
    """The subject of the output messages, dedicated to one roomserver deployment."""

    @field_validator("default_room_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value not in KNOWN_ROOM_VERSIONS:
            raise ValueError(
                f"unknown room version {value!r}; known: {', '.join(KNOWN_ROOM_VERSIONS)}"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("database_url must start with sqlite:// or postgresql://")
        return value
