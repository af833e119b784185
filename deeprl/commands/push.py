import argparse

from deeprl.commands import seed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="evaluate, record, write the model card and push a run to a hub")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder (logs/<algo>/<env>_N), model folder or course .pkl")
    p.add_argument("--repo-id", required=True, help="NAMESPACE/NAME, for example alice/q-Taxi-v3")
    p.add_argument(
        "--hub",
        choices=["local", "hf"],
        default=None,
        help="local (default: DEEPRL_HOME/hub, git-versioned) or hf (Hugging Face Hub, HF_ENDPOINT)",
    )
    p.add_argument("--commit-message", default=None)
    p.add_argument("--no-video", action="store_true", help="skip replay.mp4")
    p.add_argument("--n-eval-episodes", type=int, default=None, help="default: the env's protocol (10 or 100)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeprl.commands import format_result, print_json
    from deeprl.errors import UserError
    from deeprl.publish import push_model

    if args.n_eval_episodes is not None and args.n_eval_episodes < 1:
        raise UserError("--n-eval-episodes must be at least 1.")
    out = push_model(
        args.run_dir,
        args.repo_id,
        hub=args.hub,
        commit_message=args.commit_message,
        record_video=not args.no_video,
        n_eval_episodes=args.n_eval_episodes,
        seed=args.seed,
    )
    if args.json:
        print_json(out)
        return 0
    print(format_result(out["results"]))
    print(f"Pushed {out['repo_id']} to {out['location']} (revision {out['revision']}).")
    print(f"Load it with: deeprl load {out['repo_id']}{' --hub hf' if out['hub'] == 'hf' else ''}")
    return 0
