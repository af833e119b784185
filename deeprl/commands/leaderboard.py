"""`deeprl leaderboard`: verified results per env, indexing the hub first so a push shows at once.

`--json` prints {"env": ENV, "rows": [...]} with the row keys of the issue. Without --env it prints every env:
"env" is null and each row also carries its "env" (ranks restart in each env); the text output prints one
table per env.
"""

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from deeprl.commands.index import add_index_options

    p = sub.add_parser("leaderboard", help="rank the hub's models by verified result (mean - std)")
    p.add_argument("--env", default=None, help="env tag (FrozenLake-v1-4x4-no_slippery, Taxi-v3...); default: all")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-index", action="store_true", help="show the database as it is, without indexing first")
    add_index_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from deeprl import db
    from deeprl.commands import print_json
    from deeprl.commands.index import index_before_showing
    from deeprl.errors import UserError, closest
    from deeprl.hub import check_hub
    from deeprl.leaderboard import env_summaries, format_table, leaderboard, ranking, unranked

    hub = check_hub(args.hub)
    if not args.no_index:
        report = index_before_showing(args, quiet=args.json)
        if report and report.evaluated and not args.json:
            print(report.summary(), file=sys.stderr)
    with db.session() as s:
        envs = [e["env"] for e in env_summaries(s, hub=hub)]
    if args.env is not None and args.env not in envs:
        from deeprl.envs.registry import get_spec

        try:  # a course id such as FrozenLake-v1 names the env; its default card tag is the board
            spec = get_spec(args.env)
            if spec.card_tag() in envs:
                args.env = spec.card_tag()
        except UserError:
            from deeprl.envs.registry import list_specs

            hints = closest(args.env, envs + [sp.card_tag() for sp in list_specs()])
            raise UserError(
                f"No leaderboard for '{args.env}'."
                + (
                    f" Did you mean {' or '.join(hints)}?"
                    if hints
                    else f" Boards with models: {', '.join(envs) or 'none yet'}."
                )
            ) from None
    if args.json:
        print_json(leaderboard(args.env, hub=hub))
        return 0
    with db.session() as s:
        shown = [args.env] if args.env else envs
        if not shown:
            print(f"No models in the {hub} hub yet: train one, then 'deeprl push RUN_DIR --repo-id YOU/NAME'.")
        for i, env in enumerate(shown):
            if i:
                print()
            print(format_table(env, ranking(s, env, hub=hub)[0], unranked(s, env, hub=hub)))
        lost = unranked(s, None, hub=hub)
        if lost and not args.env:
            print("\nNot ranked (env unknown):")
            for e in lost:
                print(f"   -  {e['repo_id']}: {e['error']}")
    print("\nOpen the web page with: deeprl serve   (then http://127.0.0.1:8000)")
    return 0
