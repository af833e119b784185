"""Unit 5 environment speed and training (issue 17).

    python benchmarks/bench_unit5.py speed
    python benchmarks/bench_unit5.py train --env SnowballTarget              # the course's SnowballTarget.yaml, 200k
    python benchmarks/bench_unit5.py train --env Pyramids -n 200000          # PyramidsRND.yaml (PPO + RND)
    python benchmarks/bench_unit5.py switch RUN_DIR                          # an existing Pyramids run's switch rate

`train` trains PPO with the course's ML-Agents file as written (tests/data/), then evaluates it by the course
protocol; for Pyramids it also counts the episodes in which the agent presses the switch, with the trained policy
(sampled actions) and with a uniformly random policy over the same seeds: RND's job is to make the switch, which
random play seldom reaches, worth visiting (issue 17's "reaches the switch more often than a random policy",
too slow for a test). `speed`:

Random actions through each core: step + observe + reset of finished arenas, as training does. Per CPU second,
because on a shared machine the wall-clock rate also measures the neighbours. Goal: >= 50,000 for each core.
Pyramids is measured twice: from its episodes' start (random agents seldom press the switch, so this is mostly
the arrays), and with every arena's pyramid built and the agent beside it, so PyBullet steps the bricks in every
arena all the time (the worst case, far from a real episode, where the bricks are near a small part of it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _rate(core, n_actions, n: int, seconds: float, prepare=None) -> float:
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n_actions, size=(64, n) + (() if np.isscalar(n_actions) else (len(n_actions),)))
    steps, c0 = 0, time.process_time()
    while time.process_time() - c0 < seconds:
        core.step(actions[steps % 64])
        core.observe()
        if core.done.any():
            mask = core.done.copy()
            core.reset(mask)
            if prepare:
                prepare(core, mask)
        steps += 1
    return steps * n / (time.process_time() - c0)


def _pyramid_beside_agent(core, mask=None) -> None:
    for i in np.flatnonzero(mask if mask is not None else np.ones(core.n, dtype=bool)):
        core.pyramid_at[i] = core.pos[i] + 3.0 * np.array([np.cos(core.angle[i]), np.sin(core.angle[i])])
        core.build_pyramid(int(i))


def speed(sizes=(64, 256, 1024), seconds: float = 3.0) -> dict:
    from deeprl.envs.pyramids import PyramidsCore
    from deeprl.envs.snowball import SnowballCore

    figures = {}
    for name, build, n_actions in (("SnowballTarget", SnowballCore, [3, 2]), ("Pyramids", PyramidsCore, 5)):
        best = 0.0
        for n in sizes:
            rate = _rate(build(n, seed=0), n_actions, n, seconds)
            best = max(best, rate)
            print(f"{name:15s} n_arenas={n:5d}: {rate:12,.0f} agent steps per CPU second")
        figures[name] = best
        print(f"{name}: best {best:,.0f} (goal >= 50,000): {'PASS' if best >= 50_000 else 'FAIL'}")
    core = PyramidsCore(64, seed=0)
    _pyramid_beside_agent(core)
    for _ in range(2):  # the 64 PyBullet worlds are built once, on first use; time the steps, not the building
        core.step(np.zeros(64, dtype=np.int64))
    rate = _rate(core, 5, 64, seconds, _pyramid_beside_agent)
    figures["Pyramids, bricks in every arena"] = rate
    print(
        f"Pyramids with every arena's pyramid beside its agent (PyBullet always on), n_arenas=64: {rate:,.0f} "
        "agent steps per CPU second"
    )
    return figures


SWITCH_INDEX = 168  # Pyramids' observation: 3 sensors x 7 rays x 8 values, then the switch state (1 on)


class RandomPyramidsAgent:
    """Uniform random actions: the baseline RND must beat at finding the switch."""

    env_id, env_kwargs = "Pyramids", {}

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, obs, deterministic: bool = False) -> int:
        return int(self.rng.integers(5))


def switch_rate(agent, episodes: int, seed: int = 1000) -> tuple[float, float]:
    """(fraction of episodes in which the switch was pressed, mean return), actions sampled."""
    from deeprl.envs import make_env

    env = make_env("Pyramids", {}, training=False)
    pressed, returns = 0, []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, on = 0.0, False
        while True:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=False))
            total += float(reward)
            on = on or obs[SWITCH_INDEX] > 0.5
            if terminated or truncated:
                break
        pressed += on
        returns.append(total)
    env.close()
    return pressed / episodes, float(np.mean(returns))


def train(env_id: str, n_timesteps: int | None, seed: int, log_folder: str, episodes: int) -> dict:
    from pathlib import Path

    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.train import train as train_run

    file = (
        Path(__file__).resolve().parent.parent
        / "tests"
        / "data"
        / ("PyramidsRND.yaml" if env_id == "Pyramids" else "SnowballTarget.yaml")
    )
    t0 = time.perf_counter()
    run = train_run(
        "ppo",
        env_id,
        hyperparams_file=str(file),
        seed=seed,
        log_folder=log_folder,
        n_timesteps=n_timesteps,
        overrides={"vectorization": "auto"},  # every arena in one native core (envs.arena.ArenaVectorEnv)
    )
    seconds = time.perf_counter() - t0
    agent = load_agent(run.run_dir)
    figures = {"run": str(run.run_dir), "train_seconds": round(seconds, 1), **evaluate(agent)}
    print(
        f"{env_id}: mean_reward={figures['mean_reward']:.2f} +/- {figures['std_reward']:.2f} after "
        f"{run.hyperparams['n_timesteps']:,} steps budget ({seconds:.0f} s)"
    )
    if env_id == "Pyramids":
        figures.update(switch(str(run.run_dir), episodes))
    return figures


def switch(run_dir: str, episodes: int) -> dict:
    from deeprl.agent import load_agent

    trained = switch_rate(load_agent(run_dir), episodes)
    random = switch_rate(RandomPyramidsAgent(), episodes)
    print(
        f"switch pressed in {trained[0]:.0%} of {episodes} episodes (mean return {trained[1]:.2f}); "
        f"random policy {random[0]:.0%} (mean return {random[1]:.2f})"
    )
    return {
        "switch_rate": trained[0],
        "random_switch_rate": random[0],
        "sampled_mean_return": trained[1],
        "random_mean_return": random[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed", "train", "switch"])
    parser.add_argument("run_dir", nargs="?", help="(switch) a trained Pyramids run folder")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--env", choices=["Pyramids", "SnowballTarget"], default="Pyramids")
    parser.add_argument("-n", "--n-timesteps", type=int, default=None, help="default: the course file's max_steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-f", "--log-folder", default="logs/bench_unit5")
    parser.add_argument("--episodes", type=int, default=20, help="(Pyramids) episodes for the switch rate")
    args = parser.parse_args()
    if args.what == "speed":
        speed(seconds=args.seconds)
    elif args.what == "train":
        train(args.env, args.n_timesteps, args.seed, args.log_folder, args.episodes)
    else:
        if not args.run_dir:
            parser.error("switch needs a Pyramids run folder")
        switch(args.run_dir, args.episodes)


if __name__ == "__main__":
    main()
