from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from deeprl.commands.league import add_dispatch_options, duration

if TYPE_CHECKING:
    from fastapi import FastAPI

ADMIN_TOKEN_ENV = "DEEPRL_ADMIN_TOKEN"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the leaderboard, model and progress web pages (FastAPI)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--hub", default=None, help="local (default) or hf")
    p.add_argument(
        "--no-index",
        action="store_true",
        help="do not index the hub when the server starts (pushes made later are still indexed)",
    )
    p.add_argument(
        "--watch-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often to look for new pushes to the local hub (default 5; 0: never)",
    )
    p.add_argument(
        "--admin-token",
        default=None,
        help=f"token that allows starting an index run by hand (or set {ADMIN_TOKEN_ENV}); "
        "needed for that on a server that listens beyond loopback",
    )
    p.add_argument(
        "--league-every",
        type=duration,
        default=None,
        metavar="DURATION",
        help="play a SoccerTwos league round this often in the background (e.g. 4h, the course's league; default: off)",
    )
    add_dispatch_options(p, "the index's evaluations and the league's matches")
    p.set_defaults(func=run)


def build_app(args: argparse.Namespace) -> FastAPI:
    """The app `serve` runs, from its arguments (tests build it without a server)."""
    import os

    from deeprl.dispatch import DispatchOptions
    from deeprl.errors import UserError
    from deeprl.hub import check_hub
    from deeprl.web import create_app
    from deeprl.web.security import LOOPBACK, is_loopback

    if args.watch_interval < 0:
        raise UserError(f"--watch-interval must be 0 or more seconds, not {args.watch_interval:g}.")
    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
    if token is not None and len(token) < 16:
        raise UserError(
            "The admin token must be at least 16 characters long; make one with "
            "'python -c \"import secrets; print(secrets.token_urlsafe())\"'."
        )
    local = is_loopback(args.host)
    return create_app(
        hub=check_hub(args.hub),
        index_on_start=not args.no_index,
        admin_token=token,
        public=not local,
        watch_interval_s=args.watch_interval or None,
        trusted_hosts=LOOPBACK if local else None,
        league_every_s=getattr(args, "league_every", None),
        dispatch=DispatchOptions.resolve(getattr(args, "ray", None), getattr(args, "workers", None)),
    )


def run(args: argparse.Namespace) -> int:
    import socket
    import sys

    from deeprl.errors import UserError

    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, not {args.port}.")
    try:  # uvicorn logs a failed bind and exits 1; say it in one sentence before building anything
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((args.host, args.port))
    except OSError as exc:
        raise UserError(
            f"Cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pick another --port or --host."
        ) from None
    app = build_app(args)
    import uvicorn

    if app.state.public:
        print(
            f"note: serving on {args.host}: other machines can reach this server"
            + ("." if app.state.admin_token else "; index runs start on pushes only (no --admin-token)."),
            file=sys.stderr,
        )
    print(f"deeprl: serving the leaderboard at http://{args.host}:{args.port} (Ctrl-C stops)", file=sys.stderr)
    try:
        # no access log: a line per request costs more than answering a cached page
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    except OSError as exc:
        raise UserError(f"Cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another --port.") from None
    return 0
