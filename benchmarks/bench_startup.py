"""Whole-process time and memory of tabular training against the course notebook's own loop (issue 20, item 6).

    python benchmarks/bench_startup.py                  # median of 5 runs each
    python benchmarks/bench_startup.py --before HEAD    # also the same command from a commit (git archive, no stash)

Each figure is a separate process, started the way a learner starts it:
- ours: `deeprl train --algo qlearning --env Taxi-v3 --seed 0` (the course's Taxi settings, 25,000 episodes);
- the notebook: Unit 2's loop as a script (NOTEBOOK below: gymnasium's Taxi, a numpy Q-table, `random`, tqdm,
  the course's hyperparameters, the same 25,000 episodes).
Wall-clock and peak RSS come from the child itself (os.wait4's rusage), the median of `--runs` runs, interleaved, after
one warm-up run of each (bytecode cached and files in the page cache, as after `pip install`). Then the heaviest
top-level entries of `python -X importtime` for our command. Goal: under 0.9 s and 100 MB, and >= 6x the notebook.

The notebook's `gym.make("Taxi-v3")` raises DeprecatedEnv in today's Gymnasium, so its script makes Taxi-v4, the
same task (what deeprl runs for the course's id too).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Unit 2's notebook (deep-rl-course.md, "Create the training loop method", solution), with the Taxi settings.
NOTEBOOK = """
import random

import gymnasium as gym
import numpy as np
from tqdm import tqdm

env = gym.make("Taxi-v4", render_mode="rgb_array")
state_space = env.observation_space.n
action_space = env.action_space.n


def initialize_q_table(state_space, action_space):
    Qtable = np.zeros((state_space, action_space))
    return Qtable


def greedy_policy(Qtable, state):
    action = np.argmax(Qtable[state][:])
    return action


def epsilon_greedy_policy(Qtable, state, epsilon):
    random_num = random.uniform(0, 1)
    if random_num > epsilon:
        action = greedy_policy(Qtable, state)
    else:
        action = env.action_space.sample()
    return action


n_training_episodes = 25000
learning_rate = 0.7
max_steps = 99
gamma = 0.95
max_epsilon = 1.0
min_epsilon = 0.05
decay_rate = 0.005


def train(n_training_episodes, min_epsilon, max_epsilon, decay_rate, env, max_steps, Qtable):
    for episode in tqdm(range(n_training_episodes)):
        epsilon = min_epsilon + (max_epsilon - min_epsilon) * np.exp(-decay_rate * episode)
        state, info = env.reset()
        step = 0
        terminated = False
        truncated = False
        for step in range(max_steps):
            action = epsilon_greedy_policy(Qtable, state, epsilon)
            new_state, reward, terminated, truncated, info = env.step(action)
            Qtable[state][action] = Qtable[state][action] + learning_rate * (
                reward + gamma * np.max(Qtable[new_state]) - Qtable[state][action]
            )
            if terminated or truncated:
                break
            state = new_state
    return Qtable


Qtable_taxi = initialize_q_table(state_space, action_space)
Qtable_taxi = train(n_training_episodes, min_epsilon, max_epsilon, decay_rate, env, max_steps, Qtable_taxi)
"""


def child_env(pythonpath: Path | None) -> dict[str, str]:
    """Bytecode cached as an installed package has it (this sandbox may set PYTHONDONTWRITEBYTECODE), one BLAS/OpenMP
    thread (the machine is shared), and `pythonpath` first on the path to run an older copy of deeprl."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["OMP_NUM_THREADS"] = "1"
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [env.get("PYTHONPATH")])])
    return env


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one child process, from its own rusage. CPU time is what the
    wall-clock would be on an idle machine, less waiting on the disk (fsync): on a shared one it is the steadier."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed; run it by hand to see why.")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports KiB


def train_args(folder: Path) -> list[str]:
    return ["train", "--algo", "qlearning", "--env", "Taxi-v3", "--seed", "0", "-f", str(folder)]


def deeprl_argv(folder: Path) -> list[str]:
    """The `deeprl` console script, as a learner types it (python -m deeprl where it is not installed)."""
    script = Path(sys.executable).with_name("deeprl")
    prefix = [str(script)] if script.is_file() else [sys.executable, "-m", "deeprl"]
    return [*prefix, *train_args(folder)]


def importtime(env: dict[str, str], folder: Path, top: int) -> list[str]:
    """The heaviest top-level imports of our command (cumulative), and their sum. Modules loaded by
    importlib.import_module (the subcommands, the algorithm) are not listed themselves; their imports are."""
    argv = [sys.executable, "-X", "importtime", "-m", "deeprl", *train_args(folder)]
    err = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\S.*)$", line)  # one space before the name: top level
        if m:
            rows.append((int(m.group(2)), m.group(3)))
    rows.sort(reverse=True)
    total = sum(us for us, _ in rows)
    lines = [f"    {us / 1000:8.1f} ms  {name}" for us, name in rows[:top]]
    torch_ms = sum(us for us, name in rows if name == "torch" or name.startswith("torch.")) / 1000
    lines.append(f"    {total / 1000:8.1f} ms  all top-level imports ({torch_ms:.1f} ms of it torch)")
    return lines


def export_tree(rev: str, into: Path) -> Path:
    """deeprl/ as it was at `rev`, read with git archive (the working tree is not touched)."""
    data = subprocess.run(["git", "archive", rev, "deeprl"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def model_digest(folder: Path) -> str:
    (model,) = folder.glob("qlearning/*/model.safetensors")
    return hashlib.sha256(model.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=8, help="importtime entries to show")
    parser.add_argument("--before", metavar="REV", help="also measure deeprl as of this git revision")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)  # `python -m deeprl` puts the working directory first on sys.path: not this checkout's
        notebook = work / "unit2_notebook.py"
        notebook.write_text(NOTEBOOK)
        variants = {"deeprl": child_env(None)}
        if args.before:
            variants[f"deeprl@{args.before}"] = child_env(export_tree(args.before, work / "before"))
        envs = {**variants, "notebook": child_env(None)}

        def argv(name: str, i: int) -> list[str]:
            return [sys.executable, str(notebook)] if name == "notebook" else deeprl_argv(work / f"{name}-{i}")

        figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in envs}
        for i in range(args.runs + 1):  # run 0 is the warm-up, not counted
            for name, env in envs.items():
                found = measure(argv(name, i), env)
                if i:
                    figures[name].append(found)

        print(f"whole process, median of {args.runs} (Taxi-v3, 25,000 episodes, seed 0):")
        medians = {}
        for name, runs in figures.items():
            wall, cpu, rss = (statistics.median(column) for column in zip(*runs))
            medians[name] = (wall, cpu)
            spread = f"{min(r[0] for r in runs):.2f}-{max(r[0] for r in runs):.2f}"
            print(f"  {name:<18} wall {wall:6.2f} s ({spread})  CPU {cpu:6.2f} s  peak RSS {rss:4.0f} MB")
        (nb_wall, nb_cpu), (wall, cpu) = medians["notebook"], medians["deeprl"]
        print(
            f"  notebook / deeprl: {nb_wall / wall:.1f}x wall, {nb_cpu / cpu:.1f}x CPU (goal: >= 6x, < 0.9 s, < 100 MB)"
        )
        if args.before:
            same = model_digest(work / "deeprl-1") == model_digest(work / f"deeprl@{args.before}-1")
            print(f"  model.safetensors identical to {args.before}'s (sha256): {'yes' if same else 'NO'}")

        for name, env in variants.items():
            print(f"python -X importtime, {name} train (heaviest top-level entries, cumulative):")
            print("\n".join(importtime(env, work / f"{name}-importtime", args.top)))


if __name__ == "__main__":
    main()
