"""Q-Learning (Unit 2) against the course notebook's own loop, side by side in one run.

    python benchmarks/bench_qlearning.py            # Taxi seeds 0-9 (ours), course loop on 3 seeds, FrozenLake
    python benchmarks/bench_qlearning.py --peer-seeds 10

Taxi-v3 is scored by the course protocol (100 fixed seeds, 99 steps). Times are training only (no imports,
no evaluation), for both. Goal: our result >= 4.5 on every seed, and at least 10x less training time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

import numpy as np

from deeprl.agent import load_agent
from deeprl.envs import make_env
from deeprl.evaluation import evaluate
from deeprl.train import train


def course_loop(
    seed: int,
    n_training_episodes=25000,
    learning_rate=0.7,
    gamma=0.95,
    max_steps=99,
    max_epsilon=1.0,
    min_epsilon=0.05,
    decay_rate=0.005,
):
    """The Unit 2 notebook's solution, as written there (one env, one episode at a time, Python loops)."""
    env = make_env("Taxi-v3")
    random.seed(seed)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    qtable = np.zeros((env.observation_space.n, env.action_space.n))

    def greedy_policy(qtable, state):
        return np.argmax(qtable[state][:])

    def epsilon_greedy_policy(qtable, state, epsilon):
        if random.uniform(0, 1) > epsilon:
            return greedy_policy(qtable, state)
        return env.action_space.sample()

    t0 = time.perf_counter()
    for episode in range(n_training_episodes):
        epsilon = min_epsilon + (max_epsilon - min_epsilon) * np.exp(-decay_rate * episode)
        state, info = env.reset()
        for step in range(max_steps):  # noqa: B007  (the course's code as it is written)
            action = epsilon_greedy_policy(qtable, state, epsilon)
            new_state, reward, terminated, truncated, info = env.step(action)
            qtable[state][action] = qtable[state][action] + learning_rate * (
                reward + gamma * np.max(qtable[new_state]) - qtable[state][action]
            )
            if terminated or truncated:
                break
            state = new_state
    seconds = time.perf_counter() - t0

    class Agent:
        env_id, env_kwargs, config = "Taxi-v3", {}, {}

        def act(self, obs, deterministic=True):
            return int(np.argmax(qtable[int(obs)]))

    return seconds, evaluate(Agent())["result"]


def ours(env_id: str, seed: int, env_kwargs=None, folder=None):
    t0 = time.perf_counter()
    run = train("qlearning", env_id, env_kwargs=env_kwargs, seed=seed, log_folder=folder, show_progress=False)
    seconds = time.perf_counter() - t0
    return seconds, evaluate(load_agent(run.run_dir))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--peer-seeds", type=int, default=3)
    args = ap.parse_args()
    import torch  # noqa: F401  (imported once here so neither side pays for it)

    folder = tempfile.mkdtemp()
    ours("FrozenLake-v1", 0, {"is_slippery": False}, folder)  # warm-up
    print("== Taxi-v3 (course protocol: 100 fixed seeds, max 99 steps) ==")
    our_times, our_results = [], []
    for seed in range(args.seeds):
        s, r = ours("Taxi-v3", seed, folder=folder)
        our_times.append(s)
        our_results.append(r["result"])
        print(
            f"deeprl  seed {seed}: train {s:6.3f} s  result {r['result']:.2f} "
            f"(mean {r['mean_reward']:.2f} +/- {r['std_reward']:.2f})"
        )
    peer_times, peer_results = [], []
    for seed in range(args.peer_seeds):
        s, res = course_loop(seed)
        peer_times.append(s)
        peer_results.append(res)
        print(f"course  seed {seed}: train {s:6.3f} s  result {res:.2f}")
    t_ours, t_peer = statistics.median(our_times), statistics.median(peer_times)
    print(
        f"deeprl: result min {min(our_results):.2f} median {statistics.median(our_results):.2f} "
        f"(>= 4.5 on {sum(r >= 4.5 for r in our_results)}/{len(our_results)} seeds); median train {t_ours:.3f} s"
    )
    print(
        f"course: result min {min(peer_results):.2f} median {statistics.median(peer_results):.2f}; "
        f"median train {t_peer:.3f} s"
    )
    print(f"time ratio deeprl/course = {t_ours / t_peer:.3f}  (speed-up {t_peer / t_ours:.1f}x)")

    print("== FrozenLake-v1 ==")
    for kwargs in (
        {"map_name": "4x4", "is_slippery": False},
        {"map_name": "4x4", "is_slippery": True},
        {"map_name": "8x8", "is_slippery": True},
        {"map_name": "8x8", "is_slippery": False},
    ):
        s, r = ours("FrozenLake-v1", 0, kwargs, folder)
        print(
            f"{r['env_tag']:<32} train {s:6.3f} s  mean {r['mean_reward']:.2f} +/- {r['std_reward']:.2f} "
            f"result {r['result']:.2f}"
        )


if __name__ == "__main__":
    main()
