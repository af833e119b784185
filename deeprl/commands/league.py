"""`deeprl league ...`: the Unit 7 league of pushed SoccerTwos models (run rounds, the table, a model's history,
ratings rebuilt from the stored matches, exports)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from deeprl.commands import seed

if TYPE_CHECKING:
    from deeprl.league.runner import Settings


def duration(text: str) -> float:
    """argparse type: seconds from '90', '90s', '15m', '4h' or '1d'."""
    import argparse

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive duration such as 300, 15m or 4h, not '{text}'")
    return value


def add_dispatch_options(p: argparse.ArgumentParser, what: str) -> None:
    """--ray and --workers: where `what` (independent jobs, each in its limited child) run."""
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help=f"run {what} as tasks on the Ray cluster at ADDRESS (host:6379, or 'auto' for this machine's; "
        "default: the RAY_ADDRESS variable, else a local pool)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help=f"without Ray, run {what} N at a time in a local pool (default: the cores; 1: one by one)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "league", help="the AI vs AI league: every pushed SoccerTwos model plays the others, rated by Elo"
    )
    lsub = p.add_subparsers(dest="league_command", metavar="ACTION")

    r = lsub.add_parser("run", help="play league rounds (every model queued, paired by rating, played, rated)")
    r.add_argument("--once", action="store_true", help="play one round and stop (same as --rounds 1)")
    r.add_argument("--rounds", type=int, default=None, help="play this many rounds and stop (default: forever)")
    r.add_argument(
        "--every",
        type=duration,
        default=4 * 3600.0,
        metavar="DURATION",
        help="time between the starts of rounds when repeating (default 4h, the course's league)",
    )
    r.add_argument(
        "--n-closest",
        type=int,
        default=None,
        help="pick each opponent at random among this many closest ratings (default 3)",
    )
    r.add_argument("--max-gap", type=float, default=None, help="never pair ratings further apart (default 500)")
    r.add_argument("--k", type=float, default=None, help="Elo K-factor (default 20, as the course's league ran)")
    r.add_argument("--games", type=int, default=None, help="games in a match's set, half on each side (default 6)")
    r.add_argument("--max-steps", type=int, default=None, help="decisions before a game is a draw (default 500)")
    r.add_argument("--seed", type=seed, default=None, help="the matches' game seed (default 0, fixed)")
    r.add_argument("--queue-seed", type=seed, default=None, help="seed of queue order and opponent picks")
    r.add_argument("--timeout", type=float, default=None, help="seconds a match may take (default 300)")
    r.add_argument("--no-replay", action="store_true", help="do not record each match's first game")
    r.add_argument("--hub", default=None, help="local (default) or hf")
    add_dispatch_options(r, "a round's matches")
    r.add_argument("--json", action="store_true", help="print one JSON object per round")
    r.set_defaults(func=run)

    for name, func, text in (
        ("table", show_table, "the league table: rank, author, model, Elo, games"),
        ("history", show_history, "one model's matches and its rating after each"),
        ("recompute", recompute, "drop the cached ratings and rebuild them from the stored matches"),
    ):
        q = lsub.add_parser(name, help=text)
        if name == "history":
            q.add_argument("model", metavar="MODEL", help="NAMESPACE/NAME")
        q.add_argument("--hub", default=None, help="local (default) or hf")
        q.add_argument("--json", action="store_true", help="print one JSON object")
        q.set_defaults(func=func)

    e = lsub.add_parser("export", help="write soccer_history.csv, soccer_elo.csv and matches.parquet")
    e.add_argument("--out", default=".", help="folder to write into (default: here)")
    e.add_argument("--hub", default=None)
    e.set_defaults(func=export)
    p.set_defaults(func=lambda args: _help(p))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def settings_from(args: argparse.Namespace) -> Settings:
    from deeprl.dispatch import DispatchOptions
    from deeprl.errors import UserError
    from deeprl.league.runner import Settings

    s = Settings(dispatch=DispatchOptions.resolve(args.ray, args.workers))
    for name in ("n_closest", "max_gap", "k", "games", "max_steps", "seed"):
        value = getattr(args, name)
        if value is not None:
            setattr(s, name, value)
    if args.timeout is not None:
        s.timeout_s = args.timeout
    s.replays = not args.no_replay
    if s.n_closest < 1:
        raise UserError("--n-closest must be at least 1.")
    if not s.max_gap >= 0:
        raise UserError("--max-gap must be 0 or more rating points.")
    if not s.k > 0:
        raise UserError("--k must be positive.")
    if s.games < 1:
        raise UserError("--games must be at least 1.")
    if s.max_steps < 1:
        raise UserError("--max-steps must be at least 1.")
    if not s.timeout_s > 0:
        raise UserError("--timeout must be a positive number of seconds.")
    return s


def run(args: argparse.Namespace) -> int:
    import random
    import sys
    import time

    from deeprl.commands import print_json
    from deeprl.dispatch import dispatching
    from deeprl.errors import UserError
    from deeprl.hub import check_hub
    from deeprl.league.runner import run_round

    hub = check_hub(args.hub)
    settings = settings_from(args)
    if args.rounds is not None and args.rounds < 1:
        raise UserError("--rounds must be at least 1.")
    rounds = 1 if args.once else args.rounds
    rng = random.Random(args.queue_seed)
    done = 0
    # one Ray connection for all the rounds (each round's dispatcher shares it); the local pool needs none
    with dispatching(settings.dispatch):
        while rounds is None or done < rounds:
            started = time.monotonic()
            log = None if args.json else (lambda line: print(line, flush=True))
            report = run_round(hub, settings=settings, rng=rng, log=log)
            done += 1
            if args.json:
                print_json(report.as_dict())
            else:
                print(
                    f"Round {done}: {report.models} models, {len(report.played)} matches, "
                    f"{len(report.idle)} without an opponent within {settings.max_gap:g} points, "
                    f"{len(report.benched)} benched after a forfeit ({report.seconds:.1f} s"
                    + (f", {report.ran_on})." if report.ran_on else ")."),
                    flush=True,
                )
                for model, why in report.benched.items():
                    print(f"  benched {model}: {why}")
            if rounds is not None and done >= rounds:
                break
            wait = max(0.0, args.every - (time.monotonic() - started))
            if not args.json:
                print(f"next round in {wait:.0f} s (Ctrl-C stops)", file=sys.stderr, flush=True)
            time.sleep(wait)
    return 0


def show_table(args: argparse.Namespace) -> int:
    from deeprl.commands import print_json
    from deeprl.hub import check_hub
    from deeprl.league import table

    rows = table(check_hub(args.hub))
    if args.json:
        print_json({"env": "ML-Agents-SoccerTwos", "rows": rows})
        return 0
    if not rows:
        print("The league has played no matches yet; push SoccerTwos models and run 'deeprl league run --once'.")
        return 0
    width = max(len(r["model"]) for r in rows)
    print(f"{'rank':>4}  {'model':<{width}}  {'elo':>7}  {'games':>5}  {'w-d-l':>9}")
    for r in rows:
        if r["rank"] is None:
            print(f"{'-':>4}  {r['model']:<{width}}  {'-':>7}  {0:>5}  forfeited: {r['forfeit']}")
            continue
        wdl = f"{r['wins']}-{r['draws']}-{r['losses']}"
        print(f"{r['rank']:>4}  {r['model']:<{width}}  {r['elo']:>7.1f}  {r['games_played']:>5}  {wdl:>9}")
    return 0


def show_history(args: argparse.Namespace) -> int:
    from deeprl.commands import print_json
    from deeprl.errors import UserError
    from deeprl.hub import check_hub
    from deeprl.hub.base import validate_repo_id
    from deeprl.league import history

    h = history(validate_repo_id(args.model), check_hub(args.hub))
    if args.json:
        print_json(h)
        return 0
    if not h["matches"]:
        raise UserError(f"{args.model} has played no league match; see 'deeprl league table'.")
    print(f"{h['model']}: Elo {h['elo']:.1f} after {len(h['matches'])} matches (newest first)")
    for m in h["matches"]:
        what = (
            f"{m['won']}-{m['drawn']}-{m['lost']} -> {m['result']:g}  Elo {m['elo_before']:.1f} -> {m['elo_after']:.1f}"
            if m["rated"]
            else f"not rated: {m['error']}"
        )
        print(f"  #{m['match']:<5} {m['played_at'][:19]}  vs {m['opponent']}: {what}")
    return 0


def recompute(args: argparse.Namespace) -> int:
    from deeprl.commands import print_json
    from deeprl.hub import check_hub
    from deeprl.league import recompute as rebuild

    out = rebuild(check_hub(args.hub))
    if args.json:
        print_json(out)
    else:
        print(
            f"Dropped the cached ratings and replayed {out['matches']} rated matches for {out['models']} models: "
            + (
                "the same numbers."
                if out["same"]
                else f"the cache was off by up to {out['max_difference']:.6g} points; it is rebuilt now."
            )
        )
    return 0 if out["same"] else 1


def export(args: argparse.Namespace) -> int:
    from deeprl.hub import check_hub
    from deeprl.league.export import export as write
    from deeprl.paths import writable_folder

    paths = write(writable_folder(args.out, "The output folder (--out)"), check_hub(args.hub))
    print("Wrote " + ", ".join(str(p) for p in paths.values()) + ".")
    return 0
