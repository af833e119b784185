"""`deeprl dataset make|show`: trajectory datasets (deeprl.datasets) from an agent, and what one holds."""

from __future__ import annotations

import argparse

from deeprl.commands import seed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="trajectory datasets for imitation learning and Decision Transformers")
    dsub = p.add_subparsers(dest="dataset_command", metavar="ACTION")

    m = dsub.add_parser("make", help="record an agent's episodes as a trajectory dataset")
    m.add_argument(
        "--from", dest="model", required=True, help="run folder, model folder, .pkl, SB3 .zip or NAMESPACE/NAME repo id"
    )
    m.add_argument("--env", default=None, help="the env to play (default: the model's own)")
    m.add_argument("--episodes", type=int, default=20, help="episodes to record (default 20)")
    m.add_argument("-o", "--out", required=True, help="dataset folder to create")
    m.add_argument("--append", action="store_true", help="add the episodes to the dataset in --out")
    m.add_argument("--seed", type=seed, default=0, help="seed of the first episode (the next ones count up)")
    m.add_argument("--sampled", action="store_true", help="sample the agent's actions instead of its best ones")
    m.add_argument("--revision", default=None, help="hub revision (commit, branch or tag)")
    m.add_argument("--hub", choices=["local", "hf"], default=None, help="hub for a repo id: local (default) or hf")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=make)

    s = dsub.add_parser("show", help="episodes, steps and returns of a trajectory dataset")
    s.add_argument("folder", help="dataset folder")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=show)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def make(args: argparse.Namespace) -> int:
    from deeprl import datasets
    from deeprl.agent import load_agent
    from deeprl.errors import UserError
    from deeprl.paths import check_can_create

    if args.episodes < 1:
        raise UserError("--episodes must be at least 1.")
    check_can_create(args.out, "The dataset folder", "pick another one with -o")
    agent = load_agent(args.model, revision=args.revision, hub=args.hub, env=args.env)
    trajectories, info = datasets.agent_episodes(
        agent, args.episodes, env_id=args.env, seed=args.seed, deterministic=False if args.sampled else None
    )
    datasets.write(
        args.out,
        trajectories,
        env_id=info["env_id"],
        env_kwargs=info["env_kwargs"],
        spaces=info["spaces"],
        source=str(getattr(agent, "source", args.model)),
        append=args.append,
    )
    return _print(datasets.read(args.out).summary(), args.out, args.json)


def show(args: argparse.Namespace) -> int:
    from deeprl import datasets

    return _print(datasets.read(args.folder).summary(), args.folder, args.json)


def _print(summary: dict, folder: str, as_json: bool) -> int:
    from deeprl.commands import print_json

    if as_json:
        print_json({**summary, "folder": folder})
        return 0
    print(
        f"{folder}: {summary['env_id']}, {summary['episodes']} episodes, {summary['steps']:,} steps "
        f"({summary['terminated']} terminated); return {summary['mean_return']:.2f} +/- {summary['std_return']:.2f}, "
        f"mean length {summary['mean_length']:.1f}"
    )
    return 0
