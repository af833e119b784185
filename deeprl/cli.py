"""The `deeprl` command: parses, calls library functions, prints.

Each subcommand lives in deeprl/commands/<name>.py with `add_parser(subparsers)` (which sets `func`) and imports
heavy libraries only inside its function, so `deeprl --help` stays instant. Errors a user can fix print one
sentence on stderr and exit 2; our own failures exit 1; Ctrl-C exits 130 after keeping the last checkpoint.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
from typing import NoReturn

from deeprl.errors import UserError
from deeprl.version import __version__

ORDER = [
    "envs",
    "train",
    "enjoy",
    "evaluate",
    "record",
    "push",
    "load",
    "convert",
    "leaderboard",
    "index",
    "progress",
    "certificate",
    "serve",
    "tune",
    "match",
    "league",
    "quickstart",
]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one sentence, exit 2, no usage dump
        raise UserError(f"{message[0].upper()}{message[1:]} (see '{self.prog} --help').")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="deeprl", description="Train, evaluate, push, rank and certify Deep RL Course agents.")
    parser.add_argument("--version", action="version", version=f"deeprl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    import deeprl.commands as pkg

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    for name in names:
        importlib.import_module(f"deeprl.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        if needs_home(args):
            from deeprl.paths import home

            home()  # a DEEPRL_HOME that cannot be written is one sentence now, not a failure halfway through
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"deeprl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ndeeprl: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        sentence = os_error_sentence(exc)
        if sentence is None or os.environ.get("DEEPRL_DEBUG"):
            return _internal(exc)
        print(f"deeprl: error: {sentence}", file=sys.stderr)
        return 2
    except Exception as exc:  # our bug, not the user's: one line, traceback on request
        return _internal(exc)


# Commands that always read and write DEEPRL_HOME (the database, the local hub, tuning studies).
HOME_COMMANDS = {"leaderboard", "index", "progress", "certificate", "serve", "quickstart", "league"}


def needs_home(args: argparse.Namespace) -> bool:
    if args.command == "tune":  # a study elsewhere (--storage) with its runs elsewhere (-f) needs no DEEPRL_HOME
        return bool(args.show or not (args.storage or os.environ.get("DEEPRL_TUNE_STORAGE")) or not args.log_folder)
    return args.command in HOME_COMMANDS


def _internal(exc: BaseException) -> int:
    if os.environ.get("DEEPRL_DEBUG"):
        raise exc
    print(
        f"deeprl: internal error: {exc.__class__.__name__}: {exc} (set DEEPRL_DEBUG=1 for the traceback).",
        file=sys.stderr,
    )
    return 1


# What the user can fix about a path: the last-resort translation of an OSError that no up-front check caught.
USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
}


def os_error_sentence(exc: OSError) -> str | None:
    """One sentence naming the path and what to do, for an OSError the user can fix (a read-only or full disk, a
    file where a folder should be); None for anything else, which stays an internal error."""
    from deeprl.paths import why

    if exc.errno not in USER_ERRNOS:
        return None
    path = exc.filename
    if path is None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "No space left on the device; free some space and run the command again."
        return f"A write was refused ({why(exc)}); check DEEPRL_HOME and the folders given on the command line."
    path = os.fsdecode(path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Cannot write {path}: no space left on the device; free some space or pick another folder."
    if exc.errno == errno.EEXIST:
        return f"Cannot create {path}: {why(exc, path)}; move it away or pick another path."
    if exc.errno == errno.EISDIR:
        return f"{path} is a folder, not a file; give a file name instead."
    return f"Cannot write {path} ({why(exc, path)}); pick a folder you can write to (or set DEEPRL_HOME to one)."


if __name__ == "__main__":
    sys.exit(main())
