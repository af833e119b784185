import argparse

from deeprl.commands.enjoy import add_run_id


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model by the course protocol")
    p.add_argument("model", nargs="?", help="run folder, model folder, course .pkl file, or NAMESPACE/NAME repo id")
    p.add_argument("--algo", default=None, help="with --env or --run-id: a run under LOG_FOLDER")
    p.add_argument("--env", default=None, help="with --algo: the newest run of ALGO on ENV under LOG_FOLDER")
    p.add_argument("-f", "--log-folder", default="logs")
    add_run_id(p)
    p.add_argument("--n-eval-episodes", type=int, default=None, help="default: the env's protocol (10 or 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--revision", default=None, help="hub revision (commit, branch or tag)")
    p.add_argument("--hub", choices=["local", "hf"], default=None, help="hub for a repo id: local (default) or hf")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeprl.commands import format_result, print_json
    from deeprl.commands.enjoy import find_model
    from deeprl.errors import UserError
    from deeprl.evaluation import evaluate

    if args.n_eval_episodes is not None and args.n_eval_episodes < 1:
        raise UserError("--n-eval-episodes must be at least 1.")
    agent = find_model(args)  # a model, a --run-id, or --algo with --env, as enjoy finds them
    result = evaluate(agent, n_eval_episodes=args.n_eval_episodes, seed=args.seed)
    if args.json:
        print_json(result)
    else:
        print(format_result(result))
    return 0
