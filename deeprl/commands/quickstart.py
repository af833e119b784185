"""The README's main job on the embedded defaults: train, evaluate, push to the local hub, show the leaderboard."""

import argparse

from deeprl.commands import seed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="train Q-Learning on Taxi-v3, evaluate, push locally, show the leaderboard")
    p.add_argument("--algo", default="qlearning")
    p.add_argument("--env", default="Taxi-v3")
    p.add_argument("--repo-id", default=None, help="default: local-user/<algo>-<env tag>")
    p.add_argument("-f", "--log-folder", default="logs")
    p.add_argument("--seed", type=seed, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from deeprl.agent import load_agent
    from deeprl.commands import format_result
    from deeprl.evaluation import evaluate
    from deeprl.paths import home, writable_folder
    from deeprl.train import train

    # everything it will write, checked before minutes of training: the data folder (hub, database), the runs
    writable_folder(home() / "hub", "The local hub folder", "set DEEPRL_HOME to a folder you can write to")
    writable_folder(args.log_folder, "The log folder", "pick another one with -f")
    if args.repo_id:
        from deeprl.hub import validate_repo_id

        validate_repo_id(args.repo_id)
    t0 = time.perf_counter()
    print(f"[1/4] Training {args.algo} on {args.env} (seed {args.seed}) ...", flush=True)
    run_ = train(args.algo, args.env, seed=args.seed, log_folder=args.log_folder)
    print(f"      saved in {run_.run_dir} ({time.perf_counter() - t0:.1f} s)")
    print("[2/4] Evaluating by the course protocol ...", flush=True)
    result = evaluate(load_agent(run_.run_dir), seed=args.seed)
    print(f"      {format_result(result)}")
    repo_id = args.repo_id or f"local-user/{run_.algo}-{run_.env_tag}"
    print(f"[3/4] Pushing to the local hub as {repo_id} ...", flush=True)
    from deeprl.publish import push_model

    pushed = push_model(run_.run_dir, repo_id, hub="local", commit_message=f"Quickstart: {run_.algo} on {args.env}")
    print(f"      {pushed['location']} @ {pushed['revision'][:12]}")
    print("[4/4] Leaderboard (verified: every model re-evaluated) ...", flush=True)
    from deeprl.cli import build_parser

    lb = build_parser().parse_args(["leaderboard", "--env", run_.env_tag])
    return lb.func(lb)
