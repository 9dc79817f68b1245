"""Following the output log: ranges read from storage, and a wake-up for readers that wait.

The output log (``output_log``) is durable and its positions are gap-free and visible in
order, so a reader only ever needs the last position it has seen. What this module adds is
*waiting* without polling per reader:

- the input pipeline calls :meth:`OutputStream.notify` with the newest position right after
  each commit, which wakes every waiter at once (same process, no database round trip);
- rows committed by another process on the same database (a second replica) produce no
  callback here, so while anyone waits one background task asks the database for the head
  every ``poll_interval`` seconds, shared by all waiters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from roomserver.errors import ServiceError
from roomserver.storage import OutputRow, Storage

log = logging.getLogger(__name__)


class OutputStream:
    """Reads of the output log, and waits for positions beyond a given one."""

    def __init__(self, storage: Storage, *, poll_interval: float = 1.0) -> None:
        self.storage = storage
        self.poll_interval = poll_interval
        self._head = 0
        self._moved = asyncio.Event()
        """Set (and replaced) whenever ``_head`` moves: every waiter wakes and re-checks."""
        self._notified = 0
        """Counts :meth:`notify` calls, so :meth:`refresh` never undoes a newer one."""
        self._waiters = 0
        self._someone_waits = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    @property
    def head(self) -> int:
        """The newest committed position this process knows of (it may lag other processes
        by up to ``poll_interval``)."""
        return self._head

    @property
    def waiting(self) -> int:
        """How many readers wait right now (long-polls, event streams, the publisher)."""
        return self._waiters

    async def start(self) -> None:
        """Learn the current head and start the cross-process poller."""
        await self.refresh()
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="output-stream-poller")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self._wake()  # waiters re-check and time out as usual

    def notify(self, position: int) -> None:
        """A transaction that wrote rows up to ``position`` has committed (the input
        pipeline's ``on_output``). Callbacks of concurrent commits may arrive out of order,
        hence the max."""
        self._notified += 1
        if position > self._head:
            self._head = position
            self._wake()

    async def refresh(self) -> int:
        """Ask the database for the head. Unlike :meth:`notify` this may move it *down*
        (the database was replaced or rows were deleted), so waiters never spin on a head
        that no read can reach."""
        notified = self._notified
        async with self.storage.read() as r:
            head = await r.output.head()
        if self._notified != notified:  # a commit notified meanwhile may be newer than we read
            head = max(head, self._head)
        if head != self._head:
            self._head = head
            self._wake()
        return head

    async def read(self, after: int, limit: int) -> list[OutputRow]:
        """Up to ``limit`` committed rows above position ``after``, in order."""
        async with self.storage.read() as r:
            return await r.output.read(after, limit)

    async def check_resume(self, after: int, first: list[OutputRow]) -> None:
        """Refuse to follow from ``after`` when that cannot be done without a silent loss.

        ``first`` is what :meth:`read` returned for ``after``. A position beyond the head
        means the caller follows another database (or one restored from an older backup):
        it would wait forever. A first row above ``after + 1`` means rows were deleted
        (positions are gap-free otherwise): the caller would miss them.
        """
        if first:
            if first[0].position > after + 1:
                raise ServiceError(
                    410,
                    "M_OUTPUT_TRUNCATED",
                    f"positions {after + 1}..{first[0].position - 1} were deleted from the"
                    f" output log; the oldest position left is {first[0].position}",
                    first_position=first[0].position,
                )
            return
        if after > self._head and after > await self.refresh():
            raise ServiceError(  # well-formed, but in conflict with the log: 409
                409,
                "M_INVALID_PARAM",
                f"position {after} is beyond the head of the output log ({self._head}):"
                " was it issued by another roomserver database?",
                head=self._head,
            )

    async def next_rows(self, after: int, limit: int, timeout: float) -> list[OutputRow]:
        """Up to ``limit`` rows above ``after``: at once if there are any, else as soon as
        one is committed, within ``timeout`` seconds (then an empty list)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.read(after, limit)
            if rows:
                return rows
            if self._head > after:  # known head that no read reaches: resync, never spin
                await self.refresh()
            if not await self.wait(after, deadline - time.monotonic()):
                return []

    async def wait(self, after: int, timeout: float) -> bool:
        """Wait until a position above ``after`` is committed, at most ``timeout`` seconds;
        whether one is. Holds no database connection while waiting."""
        if self._head > after:
            return True
        if timeout <= 0:
            return False
        deadline = time.monotonic() + timeout
        self._waiters += 1
        self._someone_waits.set()
        try:
            while self._head <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                moved = self._moved
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(moved.wait(), remaining)
            return True
        finally:
            self._waiters -= 1
            if not self._waiters:
                self._someone_waits.clear()

    def _wake(self) -> None:
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def _poll(self) -> None:
        """While someone waits, ask the database for the head every ``poll_interval``."""
        while True:
            await self._someone_waits.wait()
            await asyncio.sleep(self.poll_interval)
            if not self._waiters:
                continue
            try:
                async with self.storage.read() as r:
                    head = await r.output.head()
            except Exception:  # the database is away for a moment: try again next round
                log.warning("output stream: could not read the head of the log", exc_info=True)
                continue
            self.notify(head)


def event_json(row: OutputRow) -> bytes:
    """The row as one JSON object: ``{"position": p, ...the payload's fields...}``.

    Spliced as bytes (payloads are JSON objects written by :mod:`.payloads`), so a page of
    events costs no parsing and no re-encoding.
    """
    payload = row.payload.strip()
    if not payload.startswith(b"{") or not payload.endswith(b"}"):
        raise ValueError(f"output row {row.position} is not a JSON object")
    rest = payload[1:].lstrip()
    separator = b"" if rest.startswith(b"}") else b","
    return b'{"position":%d%s%s' % (row.position, separator, rest)
