"""Decision Transformer (Bonus 3) on datasets made from our own agents: the course's protocol on our data.

    nice python benchmarks/bench_dt.py                                    # LunarLander continuous, seed 0
    nice python benchmarks/bench_dt.py --dt-steps 2000 --json benchmarks/results/bench_dt.json
    nice python benchmarks/bench_dt.py --env HalfCheetah-v5 --env-kwargs '{}' --datasets medium --dt-steps 2000 \
        --json benchmarks/results/bench_dt_halfcheetah.json                # the course's env (ppo.yml's expert)

The course trains DecisionTransformerModel on D4RL halfcheetah (expert, medium); offline here, the datasets come
from a PPO agent trained in the bench (hyperparams/ppo.yml's LunarLander settings, 1M steps): `expert` is the
finished agent, `medium` the same run's snapshot (one every tenth of its steps) whose protocol return is nearest
halfway between a random policy's and the expert's (D4RL's medium is a policy stopped part-way, about 40 normalized).
Each dataset is `--episodes` episodes with sampled actions (as D4RL records its stochastic policies), seeds
1000+. A DT with dt.py's defaults (the course's settings) trains `--dt-steps` gradient steps on each, then
plays the protocol's 10 episodes (seeds 0-9) asking for the dataset's best return (dt.py's default), and the
medium DT also asking for the expert's. The table shows each dataset's mean and best return beside the DT's, and
the normalized score 100 * (R - random) / (expert - random) with R a mean return, `expert` the PPO expert's
protocol return and `random` a uniform random policy's. One torch thread (other work shares this machine).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from deeprl import datasets
from deeprl.agent import load_agent
from deeprl.envs import make_env, resolve_env
from deeprl.evaluation import evaluate
from deeprl.loop import Callback
from deeprl.modelio import save_model
from deeprl.train import train


class RandomAgent:
    def __init__(self, env_id: str, env_kwargs: dict, seed: int):
        self.env_id, self.env_kwargs = env_id, env_kwargs
        self.config: dict = {}
        self.space = make_env(env_id, env_kwargs).action_space
        self.space.seed(seed)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> Any:
        return self.space.sample()


class Snapshots(Callback):
    """Saves the model as it is each time the run passes one of `counts` steps (folder/<count>): the candidates
    for the medium policy (named by the step count the snapshot was taken at), taken from the expert's own run."""

    def __init__(self, counts: list[int], folder: Path):
        self.todo, self.folder = sorted(counts), folder

    def on_update(self, run: Any, count: int, snapshot: Any) -> bool:
        if self.todo and count >= self.todo[0] and snapshot is not None:
            self.todo = [c for c in self.todo if c > count]
            tensors, policy = snapshot()
            config: dict = {**run.base_config(), "policy": policy, "trained": {"timesteps": count}, "status": "stopped"}
            save_model(self.folder / str(count), tensors, config)
        return False


class FeedRewards(gym.Wrapper):
    """Hands each step's reward to the DT agent (`observe`), which lowers the return it asks for. Needed only until
    deeprl.evaluation.play_episode calls `agent.observe(reward)` itself; the agent counts a step's reward once
    either way."""

    def __init__(self, env: gym.Env, agent: Any):
        super().__init__(env)
        self.agent = agent

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.agent.observe(float(reward))
        return obs, reward, terminated, truncated, info


def evaluate_dt(agent: Any, target_return: float | None = None) -> dict:
    if target_return is not None:
        agent.reset(target_return)
    spec, kwargs = resolve_env(agent.env_id, agent.env_kwargs)
    env = FeedRewards(make_env(spec.course_id, kwargs, training=False), agent)
    try:
        return evaluate(agent, env=env)
    finally:
        env.close()


def bench(env_id: str, env_kwargs: dict, seed: int, args: argparse.Namespace, root: Path) -> dict:
    started = time.perf_counter()
    snapshots = root / "snapshots"
    counts = [args.expert_steps * i // 10 for i in range(1, 10)]
    ppo = train(
        "ppo",
        env_id,
        env_kwargs=env_kwargs,
        seed=seed,
        log_folder=root / "logs",
        n_timesteps=args.expert_steps,
        show_progress=False,
        callbacks=[Snapshots(counts, snapshots)],
    )
    ppo_seconds = time.perf_counter() - started
    expert = load_agent(ppo.run_dir)
    expert_r = evaluate(expert)["mean_reward"]
    random_r = evaluate(RandomAgent(env_id, env_kwargs, seed))["mean_reward"]
    # medium: the snapshot whose protocol return is nearest halfway between random and expert (D4RL's medium
    # halfcheetah policy scores about 40 on the normalized scale)
    candidates = {p.name: evaluate(load_agent(p))["mean_reward"] for p in snapshots.iterdir()}
    medium_at = min(candidates, key=lambda c: abs(candidates[c] - (random_r + expert_r) / 2))
    policies = {"expert": expert, "medium": load_agent(snapshots / medium_at)}
    protocol = {"expert": expert_r, "medium": candidates[medium_at]}

    def normalized(r: float) -> float:
        return 100.0 * (r - random_r) / (expert_r - random_r)

    curve = ", ".join(f"{int(c):,}: {r:.1f}" for c, r in sorted(candidates.items(), key=lambda x: int(x[0])))
    print(
        f"\n{env_id} {env_kwargs} seed {seed}: PPO {args.expert_steps:,} steps in {ppo_seconds:.0f} s; protocol "
        f"returns: expert {expert_r:.2f}, medium (at {int(medium_at):,} steps) {protocol['medium']:.2f}, random "
        f"{random_r:.2f}; snapshots {curve}",
        flush=True,
    )
    out: dict = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "seed": seed,
        "ppo_steps": args.expert_steps,
        "ppo_seconds": round(ppo_seconds, 1),
        "protocol": protocol | {"random": random_r},
        "medium_at_steps": int(medium_at),
        "snapshots": {int(c): r for c, r in candidates.items()},
        "datasets": {},
    }
    for name in args.datasets:
        folder = root / f"{name}-data"
        trajectories, info = datasets.agent_episodes(policies[name], args.episodes, seed=1000, deterministic=False)
        datasets.write(
            folder,
            trajectories,
            env_id=info["env_id"],
            env_kwargs=info["env_kwargs"],
            spaces=info["spaces"],
            source=f"the {name} PPO (sampled actions)",
        )
        summary = datasets.read(folder).summary()
        returns = np.array([t.episode_return for t in trajectories])
        t0 = time.perf_counter()
        run = train(
            "dt",
            env_id,
            env_kwargs=env_kwargs,
            seed=seed,
            log_folder=root / "logs",
            n_timesteps=args.dt_steps,
            overrides={"dataset": str(folder)},
            show_progress=False,
        )
        dt_seconds = time.perf_counter() - t0
        agent: Any = load_agent(run.run_dir)
        trained = json.loads((run.run_dir / "config.json").read_text())["trained"]
        rows = {"dataset best": (agent.target_return, evaluate_dt(agent))}
        if name != "expert":
            rows["expert return"] = (expert_r, evaluate_dt(agent, expert_r))
        print(
            f"{name}: {summary['episodes']} episodes, {summary['steps']:,} steps, return {returns.mean():.2f} "
            f"+/- {returns.std():.2f} (best {returns.max():.2f}; normalized mean {normalized(returns.mean()):.1f}); "
            f"DT {args.dt_steps:,} steps in {dt_seconds:.0f} s, final loss {trained['loss']:.4f}",
            flush=True,
        )
        entry = {
            "episodes": summary["episodes"],
            "steps": summary["steps"],
            "mean_return": float(returns.mean()),
            "best_return": float(returns.max()),
            "normalized_mean": normalized(float(returns.mean())),
            "dt_steps": args.dt_steps,
            "dt_seconds": round(dt_seconds, 1),
            "dt_final_loss": trained["loss"],
            "dt": {},
        }
        for asked, (target, r) in rows.items():
            print(
                f"  DT asking for the {asked} ({target:.1f}): {r['mean_reward']:.2f} +/- {r['std_reward']:.2f}, "
                f"normalized {normalized(r['mean_reward']):.1f}",
                flush=True,
            )
            entry["dt"][asked] = {
                "target_return": target,
                "mean_reward": r["mean_reward"],
                "std_reward": r["std_reward"],
                "normalized": normalized(r["mean_reward"]),
            }
        out["datasets"][name] = entry
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="LunarLander-v2", help="an env with Box actions (default: LunarLander-v2)")
    p.add_argument("--env-kwargs", default='{"continuous": true}', help="JSON env kwargs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--expert-steps", type=int, default=1_000_000, help="PPO steps of the expert")
    p.add_argument("--episodes", type=int, default=100, help="episodes per dataset")
    p.add_argument("--dt-steps", type=int, default=2000, help="DT gradient steps per dataset")
    p.add_argument("--datasets", nargs="+", default=["medium", "expert"], choices=["medium", "expert"])
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-dt-") as tmp:
        result = bench(args.env, json.loads(args.env_kwargs), args.seed, args, Path(tmp))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
