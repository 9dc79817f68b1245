"""roomserver: serve the API, or run an operator's command (migrate, gc).

Every command reads the same ROOMSERVER_* settings as the service."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys

from pydantic import ValidationError

from roomserver.config import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        sys.exit(f"roomserver: bad configuration:\n{e}")


def tune_collector() -> None:
    """The service keeps many long-lived objects (caches of committed rows, parsed events,
    state blocks) that the collector's default thresholds (700, 10, 10) rescan so often
    that its pauses were the p99 of 100-event requests (docs/input-bench.md): collect the
    young generation every 50,000 net allocations instead."""
    gc.set_threshold(50_000, 20, 20)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from roomserver.api.app import create_app

    tune_collector()
    # An open event stream (SSE) never ends by itself: give streams 5 s to finish on shutdown.
    # The access log (one INFO line per request) is shown at info and debug only; off, it
    # costs nothing per request (uvicorn would still build each line's arguments).
    uvicorn.run(
        create_app(_settings()),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.log_level in ("debug", "info"),
        timeout_graceful_shutdown=5,
    )


def _migrate(_: argparse.Namespace) -> None:
    from roomserver.storage import migrate

    applied = asyncio.run(migrate(_settings().database_url))
    if applied:
        for m in applied:
            print(f"applied {m.version:04d} {m.name}")
    else:
        print("the database schema is up to date")


def _gc(args: argparse.Namespace) -> None:
    from roomserver.state import collect_garbage
    from roomserver.storage import Storage

    async def run() -> None:
        storage = await Storage.open(_settings().database_url)
        try:
            report = await collect_garbage(storage, dry_run=args.dry_run)
        finally:
            await storage.close()
        verb = "would remove" if args.dry_run else "removed"
        print(
            f"{verb} {report.snapshots} state snapshots and {report.blocks} state blocks"
            f" no longer referenced; {report.live_snapshots} snapshots and"
            f" {report.live_blocks} blocks are live"
        )

    asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="roomserver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service (migrates the database first)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=7770, help="port to listen on (default 7770)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)

    migrate = commands.add_parser("migrate", help="apply pending database migrations and exit")
    migrate.set_defaults(func=_migrate)

    gc = commands.add_parser(
        "gc", help="remove state snapshots and blocks that nothing references any more"
    )
    gc.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    gc.set_defaults(func=_gc)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
