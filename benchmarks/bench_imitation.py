"""Imitation learning (Bonus 5): behaviour cloning and GAIL from 20 demonstration episodes of a trained agent.

    nice python benchmarks/bench_imitation.py                              # CartPole-v1, seed 0 (about 3 min here)
    nice python benchmarks/bench_imitation.py --seeds 0 1 2 --json benchmarks/results/bench_imitation.json
    nice python benchmarks/bench_imitation.py --env LunarLander-v2         # the course's Unit 1 PPO (1M steps) first
    nice python benchmarks/bench_imitation.py --bc-pretrain-epochs 50      # and GAIL whose generator BC pretrained
    nice python benchmarks/bench_imitation.py --bc-pretrain-epochs 50 --gail-timesteps 20000   # both on a short budget

Per seed: the demonstrator is `deeprl train --algo ppo` with hyperparams/ppo.yml (CartPole: CleanRL's 50,000 steps;
LunarLander: Unit 1's 1M); `deeprl dataset make` records 20 of its episodes (deterministic actions, seeds 1000+);
`--algo bc` and `--algo gail` learn from them with hyperparams/bc.yml and gail.yml (`--bc-pretrain-epochs N`: one
more GAIL row, its generator first cloned from them for N epochs; `--gail-timesteps`: both GAIL rows' budget). Every
model is evaluated by the
course protocol (10 episodes, deterministic, seeds 0-9); the table shows mean +/- std and result = mean - std of
each beside the demonstrator's, with a random policy for scale. Target: BC and GAIL within 10 % of the
demonstrator's mean return. Runs on one torch thread (other work shares this machine).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deeprl import datasets
from deeprl.agent import load_agent
from deeprl.evaluation import evaluate
from deeprl.train import train


class RandomAgent:
    def __init__(self, env_id: str, seed: int):
        from deeprl.envs import make_env

        self.env_id, self.env_kwargs, self.config = env_id, {}, {}
        self.space = make_env(env_id).action_space
        self.space.seed(seed)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> int:
        return int(self.space.sample())


def fit(algo: str, env_id: str, seed: int, folder: Path, **overrides: object) -> tuple[dict, float]:
    """Train `algo` with its course hyperparameters (plus `overrides`), then the protocol's figures."""
    started = time.perf_counter()
    run = train(algo, env_id, overrides=overrides or None, seed=seed, log_folder=folder, show_progress=False)
    seconds = time.perf_counter() - started
    return evaluate(load_agent(run.run_dir)), seconds


def bench(
    env_id: str, seed: int, episodes: int, root: Path, bc_pretrain_epochs: int = 0, gail_timesteps: int | None = None
) -> dict:
    expert, expert_s = fit("ppo", env_id, seed, root / "logs")
    demonstrator = load_agent(next((root / "logs" / "ppo").iterdir()))
    trajectories, info = datasets.agent_episodes(demonstrator, episodes, seed=1000)
    demos = root / "demos"
    datasets.write(demos, trajectories, env_id=info["env_id"], spaces=info["spaces"], source="the PPO demonstrator")
    summary = datasets.read(demos).summary()
    bc, bc_s = fit("bc", env_id, seed, root / "logs", demos=str(demos))
    budget = {"n_timesteps": gail_timesteps} if gail_timesteps else {}
    gail, gail_s = fit("gail", env_id, seed, root / "logs", demos=str(demos), **budget)
    rows = {"demonstrator (ppo)": (expert, expert_s), "bc": (bc, bc_s), "gail": (gail, gail_s)}
    if bc_pretrain_epochs:
        rows[f"gail+bc ({bc_pretrain_epochs} epochs)"] = fit(
            "gail", env_id, seed, root / "logs", demos=str(demos), bc_pretrain_epochs=bc_pretrain_epochs, **budget
        )
    rows["random"] = (evaluate(RandomAgent(env_id, seed), env_id=env_id), 0.0)
    print(
        f"\n{env_id} seed {seed}: {summary['episodes']} demonstration episodes, {summary['steps']:,} steps, "
        f"return {summary['mean_return']:.2f} +/- {summary['std_return']:.2f}"
    )
    if gail_timesteps:
        print(f"GAIL's budget: {gail_timesteps:,} steps")
    print(f"{'model':<22} {'mean +/- std':>18} {'result':>9} {'train s':>8}")
    for name, (r, s) in rows.items():
        print(f"{name:<22} {r['mean_reward']:>9.2f} +/- {r['std_reward']:<6.2f} {r['result']:>9.2f} {s:>8.1f}")
    return {
        "env_id": env_id,
        "seed": seed,
        "demonstrations": summary,
        "gail_timesteps": gail_timesteps,
        **{
            name.split()[0]: {
                "mean_reward": r["mean_reward"],
                "std_reward": r["std_reward"],
                "result": r["result"],
                "seconds": s,
            }
            for name, (r, s) in rows.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1", choices=["CartPole-v1", "LunarLander-v2"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--episodes", type=int, default=20, help="demonstration episodes (default 20)")
    parser.add_argument(
        "--bc-pretrain-epochs", type=int, default=0, help="also GAIL after N epochs of BC (default: no)"
    )
    parser.add_argument("--gail-timesteps", type=int, default=None, help="GAIL's budget (default: gail.yml's)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="bench-imitation-") as tmp:
            results.append(
                bench(args.env, seed, args.episodes, Path(tmp), args.bc_pretrain_epochs, args.gail_timesteps)
            )
    if len(results) > 1:
        print(f"\nmean over seeds {args.seeds}:")
        for name in ("demonstrator", "bc", "gail", *(["gail+bc"] if args.bc_pretrain_epochs else []), "random"):
            means = [r[name]["mean_reward"] for r in results]
            res = [r[name]["result"] for r in results]
            print(f"{name:<14} mean_reward {np.mean(means):8.2f}   result {np.mean(res):8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
