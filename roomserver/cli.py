"""The ``roomserver`` command: ``serve`` and the operator's maintenance commands."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from roomserver.config import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        sys.exit(f"roomserver: bad configuration:\n{e}")


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from roomserver.api.app import create_app

    uvicorn.run(create_app(_settings()), host=args.host, port=args.port, log_level=args.log_level)


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

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
