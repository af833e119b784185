"""Huggy (Bonus Unit 1, issue 21): env speed, PPO with the course's Huggy.yaml, and time to reach the stick.

    python benchmarks/bench_huggy.py                     # speed, then train 2,000,000 steps (Huggy.yaml's max_steps)
    python benchmarks/bench_huggy.py --steps 200000      # a shorter budget
    python benchmarks/bench_huggy.py --speed-only
    python benchmarks/bench_huggy.py --run RUN_DIR       # evaluate a run trained before, no training

Speed: random actions through one dog (steps per wall second and per CPU second: on a shared machine the wall rate
also measures the neighbours) and through the 20 dogs Huggy.yaml trains (buffer 20480 / time_horizon 1000): in a
SyncVectorEnv of single dogs, in the native HuggyVectorEnv, and in a share per core (what training uses, ppo.yml's
`vectorization: workers`). Training: `deeprl train --env Huggy -c tests/data/Huggy.yaml` (the course's file as
written) in a process of its own: the whole process's wall time and peak memory, and the training loop's seconds
(collection, the env's share of it, the update) and steps per second. Then the issue's figure: over the same seeds,
the trained policy (sampled actions, as ML-Agents plays) and a uniformly random policy each play `--episodes`
episodes of 50 s; per episode the simulated seconds until the first stick is reached (50 s when it never is), and,
over every stick reached, the mean seconds from its appearance to its fetch.
The issue's goal: 2M steps in under 10 minutes of this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TRAINER_FILE = HERE.parent / "tests" / "data" / "Huggy.yaml"


def speed(seconds: float = 5.0) -> dict:
    from deeprl.envs.huggy import HuggyEnv
    from deeprl.envs.vector import make_vec_env

    env = HuggyEnv()
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(256, 8))
    steps, w0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - w0 < seconds:
        _, _, _, trunc, _ = env.step(actions[steps % 256])
        if trunc:
            env.reset()
        steps += 1
    one = {"wall": steps / (time.perf_counter() - w0), "cpu": steps / (time.process_time() - c0)}
    env.close()
    out: dict[str, dict[str, float | None]] = {"one_dog_steps_per_s": dict(one)}
    batch = np.random.default_rng(1).uniform(-1, 1, size=(64, 20, 8))
    for vectorization in ("sync", "native", "workers"):
        venv = make_vec_env("Huggy", 20, seed=0, vectorization=vectorization)
        steps, w0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - w0 < seconds:
            venv.step(batch[steps % 64])
            steps += 1
        wall = steps * 20 / (time.perf_counter() - w0)
        # the workers' CPU time is not this process's: their rate per CPU second is not measured here
        cpu = None if vectorization == "workers" else steps * 20 / (time.process_time() - c0)
        out[f"twenty_dogs_{vectorization}_steps_per_s"] = {"wall": wall, "cpu": cpu}
        venv.close()
    return out


def fetch_times(policy: Any, seeds: list[int]) -> dict:
    """Play one episode per seed with `policy(obs) -> action` (None: uniformly random): the first stick's time
    (the episode's length when none is reached), every fetch's time, sticks per episode. Each episode seeds the
    env, the random policy and torch (the trained policy's sampling), so the figures do not depend on what ran
    before in this process."""
    import torch

    from deeprl.envs.huggy import DECISION_SECONDS, HuggyEnv

    env = HuggyEnv()
    first, every, sticks = [], [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        torch.manual_seed(seed)
        got, t = None, 0
        while True:
            action = env.action_space.sample() if policy is None else policy(obs)
            obs, _, term, trunc, info = env.step(action)
            t += 1
            if "fetch_time" in info:
                every.append(info["fetch_time"])
                got = got if got is not None else t * DECISION_SECONDS
            if term or trunc:
                break
        first.append(got if got is not None else t * DECISION_SECONDS)
        sticks.append(info["sticks"])
    env.close()
    return {
        "mean_first_fetch_s": float(np.mean(first)),
        "episodes_with_a_fetch": int(sum(s > 0 for s in sticks)),
        "mean_fetch_s": float(np.mean(every)) if every else None,
        "sticks_per_episode": float(np.mean(sticks)),
    }


def train_as_a_user(log_folder: str | None, seed: int, steps: int | None) -> dict:
    """`deeprl train --env Huggy -c Huggy.yaml` in a process of its own, as a learner runs it: the whole process's
    wall time (start-up, imports and saving included) and the peak memory of its largest process (the trainer or an
    env worker), beside the training loop's own figures from the run's config.json."""
    import resource
    import subprocess
    import sys

    logs = log_folder or tempfile.mkdtemp(prefix="bench-huggy-")
    cmd = [sys.executable, "-m", "deeprl", "train", "--env", "Huggy", "-c", str(TRAINER_FILE), "--seed", str(seed)]
    cmd += ["-f", logs, "--run-id", "huggy", "--quiet"] + ([] if steps is None else ["-n", str(steps)])
    w0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - w0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    run_dir = Path(logs) / "ppo" / "huggy"
    trained = json.loads((run_dir / "config.json").read_text())["trained"]
    return {"run": str(run_dir), "process_wall_s": round(wall, 1), "peak_rss_mb": round(peak_mb), **trained}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="training budget (default: Huggy.yaml's max_steps, 2M)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per policy (seeds 0..N-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speed-only", action="store_true")
    p.add_argument("--run", default=None, help="evaluate this run folder instead of training")
    p.add_argument("--log-folder", default=None, help="where the run goes (default: a new temporary folder)")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    report: dict[str, Any] = {"cpus": os.cpu_count()}
    run_dir = args.run
    if not args.speed_only and run_dir is None:  # first: the speed test's worker would count in the peak memory
        report["train"] = train_as_a_user(args.log_folder, args.seed, args.steps)
        run_dir = report["train"]["run"]
        print(json.dumps(report["train"]), flush=True)
    report["speed"] = speed()
    print(json.dumps(report["speed"]), flush=True)
    if not args.speed_only:
        from deeprl.agent import load_agent

        agent = load_agent(run_dir)
        seeds = list(range(1000, 1000 + args.episodes))
        report["trained"] = fetch_times(lambda o: agent.act(o, deterministic=False), seeds)
        report["random"] = fetch_times(None, seeds)
        print(json.dumps({"trained": report["trained"], "random": report["random"]}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
