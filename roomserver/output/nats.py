"""Publication of the output log to NATS JetStream, each position exactly once, in order.

For deployments whose consumers already live on NATS, or outgrow one roomserver's HTTP
stream. The publisher follows the log like any other reader; what makes it exactly-once
is that its cursor lives in JetStream itself, next to what it published:

- every message carries ``Roomserver-Position`` and ``Nats-Msg-Id: <position>``; on
  (re)start the cursor is the position of the last message on the subject, so a restart,
  a crash between publish and ack, or a second replica publishing too never publishes a
  position twice (JetStream drops a repeated Msg-Id within the stream's duplicate window);
- every message also carries ``Nats-Expected-Last-Subject-Sequence``, the sequence the
  previous one was stored at: JetStream refuses a message that would land after anything
  unexpected, so nothing is ever stored out of order or twice even beyond the window. On a
  refusal the publisher re-reads its cursor from the stream and carries on.

Messages of a batch are sent without waiting for each acknowledgement (the sequence each
will get is predicted; a wrong prediction is one of the refusals above), which publishes
about five times faster than one round trip per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType
from nats.js.errors import NotFoundError

from roomserver.output.stream import OutputStream, event_json
from roomserver.storage import OutputRow

log = logging.getLogger(__name__)

POSITION_HEADER = "Roomserver-Position"
TYPE_HEADER = "Roomserver-Type"
ROOM_HEADER = "Roomserver-Room-ID"
DUPLICATE_WINDOW = 120.0
"""Seconds, for a stream this publisher creates (JetStream's default too)."""


class NatsPublisher:
    """Follows the output log and publishes it to ``subject`` on JetStream ``stream_name``
    (created if missing). Runs as one background task between :meth:`start` and
    :meth:`close`, reconnecting and resuming by itself: an unreachable NATS never stops
    the roomserver, it only delays publication."""

    def __init__(
        self,
        stream: OutputStream,
        url: str,
        *,
        stream_name: str,
        subject: str,
        batch_size: int = 256,
        ack_timeout: float = 5.0,
    ) -> None:
        self.stream = stream
        self.url = url
        self.stream_name = stream_name
        self.subject = subject
        self.batch_size = batch_size
        self.ack_timeout = ack_timeout
        self.position = 0
        """The last position known to be on the stream."""
        self._last_seq = 0
        """The stream sequence of the message at ``position`` (0: none on the subject)."""
        self._nc: NatsClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="output-nats-publisher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    # -- the loop --

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                js = await self._jetstream()
                await self._resume(js)
                self._recovered()
                delay = 0.5
                await self._follow(js)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._failed("publishing the output stream to NATS failed; retrying", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _jetstream(self) -> JetStreamContext:
        if self._nc is None:
            # Retries forever by itself (inside connect too): NATS may start after us.
            self._nc = await nats.connect(
                self.url,
                name="roomserver-output",
                max_reconnect_attempts=-1,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        return self._nc.jetstream(timeout=self.ack_timeout)

    async def _resume(self, js: JetStreamContext) -> None:
        """Take the cursor from the stream: the last message on our subject."""
        try:
            await js.stream_info(self.stream_name)
        except NotFoundError:
            await js.add_stream(
                name=self.stream_name,
                subjects=[self.subject],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW,
                description="roomserver output stream (one message per output log position)",
            )
            log.info("created JetStream stream %s for %s", self.stream_name, self.subject)
        try:
            last = await js.get_last_msg(self.stream_name, self.subject)
        except NotFoundError:
            self.position, self._last_seq = 0, 0
        else:
            headers = last.headers or {}
            if POSITION_HEADER not in headers or last.seq is None:
                raise RuntimeError(
                    f"the last message on {self.subject} in stream {self.stream_name} has no"
                    f" {POSITION_HEADER} header: is another publisher using the subject?"
                )
            self.position, self._last_seq = int(headers[POSITION_HEADER]), last.seq
        head = await self.stream.refresh()
        if self.position > head:
            log.error(
                "NATS stream %s is at output position %d, beyond the output log's head %d:"
                " was the database replaced? Publishing resumes after position %d.",
                self.stream_name,
                self.position,
                head,
                self.position,
            )
        log.info("publishing the output stream to NATS after position %d", self.position)

    async def _follow(self, js: JetStreamContext) -> None:
        while True:
            rows = await self.stream.next_rows(self.position, self.batch_size, 30.0)
            if not rows:
                continue
            if rows[0].position > self.position + 1:
                log.warning(
                    "output positions %d..%d were deleted before they were published to NATS",
                    self.position + 1,
                    rows[0].position - 1,
                )
            if not await self._publish(js, rows):
                await self._resume(js)

    async def _publish(self, js: JetStreamContext, rows: list[OutputRow]) -> bool:
        """Publish ``rows`` pipelined; whether all went in as predicted (advances the cursor
        over every message acknowledged in order)."""
        sends = [
            js.publish(
                self.subject,
                event_json(row),
                stream=self.stream_name,
                headers=self._headers(row, expected_seq=self._last_seq + i),
            )
            for i, row in enumerate(rows)
        ]
        acks = await asyncio.gather(*sends, return_exceptions=True)
        for row, ack in zip(rows, acks, strict=True):
            if not isinstance(ack, PubAck):
                log.info(
                    "NATS refused output position %d (%s); re-reading the cursor",
                    row.position,
                    ack,
                )
                return False
            if ack.duplicate:
                # Published before (a crash before the ack, or another replica): the
                # sequence predictions of the rest no longer hold.
                log.info("output position %d was already on NATS", row.position)
                self.position = row.position
                return False
            self.position, self._last_seq = row.position, ack.seq
        return True

    def _headers(self, row: OutputRow, *, expected_seq: int) -> dict[str, str]:
        headers = {
            "Nats-Msg-Id": str(row.position),
            "Nats-Expected-Last-Subject-Sequence": str(expected_seq),
            POSITION_HEADER: str(row.position),
        }
        kind, room_id = _type_and_room(row.payload)
        if kind:
            headers[TYPE_HEADER] = kind
        if room_id:
            headers[ROOM_HEADER] = room_id
        return headers

    # -- connection events: logged once per outage, not once per retry --

    def _failed(self, message: str, error: BaseException) -> None:
        if not self._failing:
            log.warning("%s: %r", message, error)
            self._failing = True
        else:
            log.debug("%s: %r", message, error)

    def _recovered(self) -> None:
        if self._failing:
            log.warning("publishing the output stream to NATS again")
            self._failing = False

    async def _on_error(self, error: Exception) -> None:
        self._failed(f"NATS connection to {self.url}", error)

    async def _on_disconnected(self) -> None:
        log.info("disconnected from NATS at %s", self.url)

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS at %s", self.url)


def _type_and_room(payload: bytes) -> tuple[str | None, str | None]:
    """The output type, and the room when there is one, for consumers that filter by
    header without parsing the body."""
    try:
        doc: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, None
    kind = doc.get("type") if isinstance(doc, dict) else None
    if not isinstance(kind, str):
        return None, None
    body = doc.get(kind)
    event = body.get("event") if isinstance(body, dict) else None
    if not isinstance(event, dict):
        return kind, None
    room_id = event.get("room_id")
    if not room_id and event.get("type") == "m.room.create":  # v12: named by its create event
        event_id = event.get("event_id")
        room_id = "!" + event_id[1:] if isinstance(event_id, str) and event_id else None
    return kind, room_id if isinstance(room_id, str) else None
