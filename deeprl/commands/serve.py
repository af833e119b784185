def add_parser(sub):
    p = sub.add_parser("serve", help="the leaderboard, model and progress web pages (FastAPI)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--hub", default=None, help="local (default) or hf")
    p.add_argument("--no-index", action="store_true", help="do not index the hub when the server starts")
    p.set_defaults(func=run)


def run(args):
    import sys

    from deeprl.errors import UserError
    from deeprl.hub import check_hub

    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, not {args.port}.")
    hub = check_hub(args.hub)
    import uvicorn

    from deeprl.web import create_app

    import socket

    try:  # uvicorn logs a failed bind and exits 1; say it in one sentence before building anything
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((args.host, args.port))
    except OSError as exc:
        raise UserError(f"Cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
                        "pick another --port or --host.") from None
    app = create_app(hub=hub, index_on_start=not args.no_index)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: serving on {args.host}: other machines can reach this server.", file=sys.stderr)
    print(f"deeprl: serving the leaderboard at http://{args.host}:{args.port} (Ctrl-C stops)", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except OSError as exc:
        raise UserError(f"Cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another --port.") from None
    return 0
