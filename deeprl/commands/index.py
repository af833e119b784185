from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from deeprl.commands.league import add_dispatch_options

if TYPE_CHECKING:
    from deeprl.leaderboard import IndexReport
    from deeprl.leaderboard.indexer import Listing


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="re-evaluate new model revisions in a hub for the leaderboard")
    add_index_options(p)
    add_dispatch_options(p, "the evaluations")
    p.add_argument("--force", action="store_true", help="evaluate again revisions already in the database")
    p.add_argument("--json", action="store_true", help="print one JSON object (the index report)")
    p.set_defaults(func=run)


def add_index_options(p: argparse.ArgumentParser) -> None:
    # defaults are filled in from deeprl.leaderboard, which is not imported here: every command's parser is
    # built on each `deeprl` start, and the leaderboard module pulls in SQLAlchemy
    p.add_argument(
        "--hub", default=None, help="local (default) or hf (Hugging Face Hub models tagged reinforcement-learning)"
    )
    p.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="seconds one model's evaluation may take (default 600)"
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        default=None,
        metavar="MB",
        help="address-space limit of one evaluation, in MiB (default 4096)",
    )
    p.add_argument(
        "--max-revisions",
        type=int,
        default=None,
        metavar="N",
        help="newest revisions per repo to evaluate (default 10)",
    )
    p.add_argument(
        "--filter",
        action="append",
        default=None,
        metavar="TAG",
        help="only repos with this tag on their card (repeatable: all of them), e.g. deep-rl-course or LunarLander-v2",
    )
    p.add_argument("--author", default=None, metavar="USER", help="only this user's (or organization's) repos")
    p.add_argument("--search", default=None, metavar="TEXT", help="only repos whose id contains TEXT")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="at most N repos of the listing")


def _checked(args: argparse.Namespace) -> str:
    """Fill in the defaults, check the options; the hub's name."""
    from deeprl.errors import UserError
    from deeprl.hub import check_hub
    from deeprl.leaderboard import DEFAULT_MAX_REVISIONS, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S

    for key, default in (
        ("timeout", DEFAULT_TIMEOUT_S),
        ("memory_mb", DEFAULT_MEMORY_MB),
        ("max_revisions", DEFAULT_MAX_REVISIONS),
    ):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.timeout <= 0 or args.memory_mb < 256 or args.max_revisions < 1:
        raise UserError("--timeout must be positive, --memory-mb at least 256 and --max-revisions at least 1.")
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise UserError("--limit must be at least 1.")
    for what, value in (("--filter", ",".join(getattr(args, "filter", None) or [])), ("--search", args.search or "")):
        if len(value) > 200 or any(not c.isprintable() for c in value):
            raise UserError(f"{what} takes at most 200 printable characters.")
    if getattr(args, "author", None) is not None:
        from deeprl.certification import check_user

        check_user(args.author)
    return check_hub(args.hub)


def listing(args: argparse.Namespace, hub: str) -> Listing:
    """The part of the hub the options name. `deeprl progress USER --hub hf` takes USER's repos only: the real
    Hub holds tens of thousands of RL models, and only USER's count for USER's progress."""
    from deeprl.leaderboard.indexer import Listing

    author = getattr(args, "author", None)
    if author is None and hub == "hf" and isinstance(getattr(args, "user", None), str):
        author = args.user
    return Listing(
        filters=tuple(getattr(args, "filter", None) or ()),
        author=author,
        search=getattr(args, "search", None) or None,
        limit=getattr(args, "limit", None),
    )


def _index(args: argparse.Namespace, hub: str, quiet: bool) -> IndexReport:
    import sys

    from deeprl.dispatch import DispatchOptions
    from deeprl.leaderboard import index

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    return index(
        hub,
        timeout_s=args.timeout,
        memory_mb=args.memory_mb,
        max_revisions=args.max_revisions,
        force=getattr(args, "force", False),
        log=log,
        # `deeprl index` takes --ray and --workers; the commands that index before showing honour RAY_ADDRESS
        dispatch=DispatchOptions.resolve(getattr(args, "ray", None), getattr(args, "workers", None)),
        listing=listing(args, hub),
    )


def do_index(args: argparse.Namespace, quiet: bool = False) -> IndexReport:
    return _index(args, _checked(args), quiet)


def index_before_showing(args: argparse.Namespace, quiet: bool = False) -> IndexReport | None:
    """Index first so a push shows at once; an unreachable hub leaves the last indexed figures, with a warning."""
    from deeprl.errors import UserError
    from deeprl.log import warn

    hub = _checked(args)  # bad options are the user's to fix: not swallowed below
    try:
        return _index(args, hub, quiet)
    except UserError as exc:
        warn(f"could not index the {hub} hub ({exc}); showing the figures of the last index.")
        return None


def run(args: argparse.Namespace) -> int:
    from deeprl.commands import print_json

    report = do_index(args, quiet=args.json)
    if args.json:
        print_json(report.to_dict())
        return 0
    for line in report.errors:
        print(f"  not evaluated: {line}")
    for line in report.flagged:
        print(f"  claim flagged: {line}")
    print(report.summary())
    return 0
