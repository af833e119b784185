from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from deeprl.commands import seed

if TYPE_CHECKING:
    import gymnasium as gym

    from deeprl.agent import Agent


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enjoy", help="watch a trained agent act (text render for grid worlds)")
    p.add_argument("model", nargs="?", help="run folder, model folder, .pkl or repo id (or use --algo/--env/-f)")
    p.add_argument("--algo", default=None)
    p.add_argument("--env", default=None)
    p.add_argument("-f", "--log-folder", default="logs")
    add_run_id(p)
    p.add_argument(
        "--n-episodes", type=int, default=None, help="episodes to play (default 1, or as many as --n-timesteps allows)"
    )
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="play this many steps (RL-Zoo's enjoy -n)")
    p.add_argument("--no-render", action="store_true", help="only print each episode's return")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--fps", type=float, default=4.0, help="frames per second for text rendering")
    p.add_argument("--revision", default=None, help="hub revision (commit, branch or tag)")
    p.add_argument("--hub", choices=["local", "hf"], default=None, help="hub for a repo id: local (default) or hf")
    p.set_defaults(func=run)


def add_run_id(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run-id",
        default=None,
        help="the run train --run-id named: LOG_FOLDER/ALGO/RUN_ID (--algo may be left out when one algo has it)",
    )


def named_run(log_folder: str, run_id: str, algo: str | None) -> Path:
    """LOG_FOLDER/ALGO/RUN_ID, the folder `deeprl train --run-id` made; without --algo, the one algo that has it."""
    from deeprl.errors import UserError
    from deeprl.train import check_run_id

    check_run_id(run_id)
    root = Path(log_folder)
    folder = "*"
    if algo is not None:
        from deeprl.algos import get_algo

        folder = get_algo(algo).__name__.rsplit(".", 1)[-1]
    found = sorted(p for p in root.glob(f"{folder}/{run_id}") if p.is_dir())
    if not found:
        raise UserError(
            f"No run named {run_id} ({root / folder / run_id}); train one with 'deeprl train ... --run-id {run_id}'."
        )
    if len(found) > 1:
        algos = ", ".join(p.parent.name for p in found)
        raise UserError(f"Runs named {run_id} exist for {algos} under {root}; say which with --algo.")
    return found[0]


def find_model(args: argparse.Namespace) -> Agent:
    """RL-Zoo style: --algo A --env E -f logs/ -> the newest run of A on E under logs/; ML-Agents style:
    --run-id NAME -> the run `deeprl train --run-id NAME` made (logs/ALGO/NAME)."""
    from deeprl.agent import load_agent
    from deeprl.errors import UserError

    run_id = getattr(args, "run_id", None)
    if args.model:
        if run_id is not None:
            raise UserError("Give a model or --run-id, not both.")
        return load_agent(
            args.model,
            revision=getattr(args, "revision", None),
            hub=getattr(args, "hub", None),
            env=getattr(args, "env", None),  # an SB3 .zip's env, where its name does not say
        )
    if run_id is not None:
        return load_agent(named_run(args.log_folder, run_id, args.algo))
    if not (args.algo and args.env):
        raise UserError(
            "Give a model (folder, .pkl or repo id), --run-id NAME, or --algo and --env with -f LOG_FOLDER."
        )

    from deeprl.algos import get_algo
    from deeprl.envs import env_tag
    from deeprl.train import latest_run_dir

    algo = get_algo(args.algo).__name__.rsplit(".", 1)[-1]
    run_dir = latest_run_dir(Path(args.log_folder), algo, env_tag(args.env))
    if run_dir is None:
        raise UserError(f"No {algo} run of {args.env} under {args.log_folder}; train one with 'deeprl train'.")
    return load_agent(run_dir)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from deeprl.envs import get_spec, make_env
    from deeprl.evaluation import play_episode

    agent = find_model(args)
    spec = get_spec(agent.env_id)
    render = None if args.no_render else ("ansi" if agent.env_id in ("Taxi-v3", "FrozenLake-v1") else "human")
    try:
        env = make_env(agent.env_id, agent.env_kwargs, render_mode=render)
    except Exception:  # no display for a window: fall back to printing returns
        render, env = None, make_env(agent.env_id, agent.env_kwargs)
    left = [args.n_timesteps or float("inf")]
    fresh = [True]  # play_episode calls on_step after the reset too; that is not a step

    def on_step(e: gym.Env) -> None:
        if fresh[0]:
            fresh[0] = False
        else:
            left[0] -= 1
        if render == "ansi":
            sys.stdout.write("\x1b[2J\x1b[H" if sys.stdout.isatty() else "")
            sys.stdout.write(f"{e.render()}\n")
            sys.stdout.flush()
            time.sleep(1.0 / args.fps)
        if left[0] <= 0:
            raise StopIteration

    import itertools

    n_episodes = args.n_episodes or (None if args.n_timesteps else 1)
    for i in itertools.count() if n_episodes is None else range(n_episodes):
        fresh[0] = True
        try:
            ret, length, truncated = play_episode(
                agent,
                env,
                seed=args.seed + i,
                max_steps=spec.eval_max_steps,
                deterministic=spec.deterministic,
                on_step=on_step,
            )
        except StopIteration:
            print(f"stopped after {args.n_timesteps} steps")
            break
        print(f"episode {i + 1}: return {ret:.2f} in {length} steps{' (truncated)' if truncated else ''}")
    env.close()
    return 0
