"""The `deeprl` command: parses, calls library functions, prints.

Each subcommand lives in deeprl/commands/<name>.py with `add_parser(subparsers)` (which sets `func`) and imports
heavy libraries only inside its function, so `deeprl --help` stays instant. Errors a user can fix print one
sentence on stderr and exit 2; our own failures exit 1; Ctrl-C exits 130 after keeping the last checkpoint.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from deeprl import __version__
from deeprl.errors import UserError

ORDER = ["envs", "train", "enjoy", "evaluate", "record", "push", "load", "leaderboard", "index", "progress",
         "certificate", "serve", "tune", "match", "quickstart"]


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, exit 2, no usage dump
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
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"deeprl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ndeeprl: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # our bug, not the user's: one line, traceback on request
        if os.environ.get("DEEPRL_DEBUG"):
            raise
        print(f"deeprl: internal error: {exc.__class__.__name__}: {exc} (set DEEPRL_DEBUG=1 for the traceback).",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
