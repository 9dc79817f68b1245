"""A real ``python -m roomserver serve`` process on loopback, started, awaited and killed.

The crash and two-process tests need the service as an operating system process (so that
SIGKILL really loses whatever was in flight), not an app inside the test's event loop.
The process's output goes to a log file that the failure messages quote.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

READY_PATH = "/api/roomserver/queryRoomVersionCapabilities"


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """One roomserver service on ``database_url``; restartable, on a new port each time
    (a killed listener's port may linger in TIME_WAIT)."""

    def __init__(
        self, database_url: str, log_path: Path, *, server_name: str = "test.local"
    ) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.server_name = server_name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    async def start(self, timeout: float = 30.0) -> float:
        """Start the process and wait until it answers HTTP; returns the seconds it took."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("already running")
        began = time.monotonic()
        self.port = free_port()
        env = dict(
            os.environ,
            ROOMSERVER_DATABASE_URL=self.database_url,
            ROOMSERVER_SERVER_NAME=self.server_name,
        )
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "roomserver",
                    "serve",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        await self._wait_ready(began + timeout)
        return time.monotonic() - began

    async def _wait_ready(self, deadline: float) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as http:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"roomserver exited with {self.proc.returncode} while starting:\n"
                        + self.log_tail()
                    )
                try:
                    resp = await http.post(READY_PATH, json={})
                    if resp.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise TimeoutError("roomserver did not answer in time:\n" + self.log_tail())
                await asyncio.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as in a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """A clean shutdown (SIGTERM), killed if it does not finish in ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
