from __future__ import annotations

import argparse
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


def find_model(args: argparse.Namespace) -> Agent:
    """RL-Zoo style: --algo A --env E -f logs/ -> the newest run of A on E under logs/."""
    from deeprl.agent import load_agent
    from deeprl.errors import UserError

    if args.model:
        return load_agent(args.model, revision=getattr(args, "revision", None), hub=getattr(args, "hub", None))
    if not (args.algo and args.env):
        raise UserError("Give a model (folder, .pkl or repo id) or --algo and --env with -f LOG_FOLDER.")
    from pathlib import Path

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
