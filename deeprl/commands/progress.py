import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from deeprl.commands.index import add_index_options

    p = sub.add_parser("progress", help="which course assignments a hub user has passed")
    p.add_argument("user", help="hub username (the NAMESPACE of the user's repos)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-index", action="store_true", help="use the database as it is, without indexing first")
    add_index_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeprl.certification import check_user, format_progress, progress
    from deeprl.commands import print_json
    from deeprl.commands.index import index_before_showing
    from deeprl.hub import check_hub

    check_user(args.user)
    hub = check_hub(args.hub)
    if not args.no_index:
        index_before_showing(args, quiet=args.json)
    p = progress(args.user, hub=hub)
    if args.json:
        print_json(p)
    else:
        print(format_progress(p))
    return 0
