"""DQN figures for issue #6, each side by side with Stable-Baselines3 where the issue asks for a ratio.

    python benchmarks/bench_dqn.py throughput [--window 50000 --learning-starts 10000]
        (a) env steps/s of training SpaceInvadersNoFrameskip-v4 with the course's dqn.yml (tests/data/dqn.yml),
            deeprl vs SB3 DQN with the same settings over the same window of steps 0..window, learning_starts
            lowered (default 10k) so that training happens inside the window; both in fresh processes, one after
            the other; ratio printed.
    python benchmarks/bench_dqn.py cartpole [--seeds 0 1]
        (b) DQN CartPole-v1 with RL-Zoo's settings (hyperparams/dqn.yml, 5e4 steps): training time and the course
            protocol's result (10 deterministic episodes, mean - std; 500 is the maximum) for deeprl and SB3.
    python benchmarks/bench_dqn.py lockstep [--script-seeds 0 1]
        (b') the same CartPole run (RL-Zoo settings, 50k steps) for SB3 and deeprl fed the same random numbers
            (tests/test_dqn_parity.py's lockstep): both results, and the first step where their actions differ
            (float rounding, fused against for-loop Adam, then chaos): what a seed's 500 or 100 is worth.
    python benchmarks/bench_dqn.py memory [--buffer 100000]
        (c) peak RSS of a deeprl SpaceInvaders run that fills a 100k replay buffer, trains, and saves the buffer
            with its checkpoint (--save-replay-buffer). SB3's figure is its buffer's size by arithmetic.
    python benchmarks/bench_dqn.py long [--steps 2000000] [--resume] [-f logs/bench]
        (d) the course's SpaceInvaders training (dqn.yml, 2M steps), then the course evaluation and a learning
            curve PNG from the run's episodes.csv (and evaluations.csv: the course protocol every --eval-freq
            steps). Many hours on 2 CPU cores: checkpoints with the replay buffer every --checkpoint-seconds
            (900) and on SIGTERM; --resume continues it, and `plot RUN_DIR` draws the curve of any run so far.

Run with `nice`; other work on the machine changes wall-clock figures, which is why each ratio is taken within one
invocation with both libraries measured back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COURSE_YML = ROOT / "tests" / "data" / "dqn.yml"
GAME = "SpaceInvadersNoFrameskip-v4"


def course_hp() -> dict:
    import yaml

    return dict(yaml.safe_load(COURSE_YML.read_text())[GAME])


def zoo_cartpole_hp() -> dict:
    import yaml

    return dict(yaml.safe_load((ROOT / "deeprl" / "hyperparams" / "dqn.yml").read_text())["CartPole-v1"])


def cpu_s() -> float:
    """This process's CPU seconds (user + system): what the work cost, much less skewed than wall-clock time
    by other jobs sharing the cores (both libraries run one torch thread for this figure with --threads 1)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, **kw) -> dict:
    """Run one measurement in a fresh Python process (its own RSS, no shared caches); it prints one JSON line."""
    cmd = [sys.executable, __file__, "_child", kind, json.dumps(kw)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------
# Children


def _deeprl_train(env_id: str, overrides: dict, conf: str | None, seed: int, folder: str) -> tuple[object, float]:
    from deeprl.train import train

    t = time.perf_counter()
    run = train(
        "dqn",
        env_id,
        hyperparams_file=conf,
        overrides=overrides,
        seed=seed,
        log_folder=folder,
        device="cpu",
        show_progress=False,
    )
    return run, time.perf_counter() - t


def _sb3_model(env_id: str, hp: dict, seed: int, threads: int | None):
    import torch
    from stable_baselines3 import DQN

    if threads:
        torch.set_num_threads(threads)
    hp = dict(hp)
    for k in ("env_wrapper", "frame_stack", "n_timesteps", "policy", "net_arch"):
        hp.pop(k, None)
    policy_kwargs = {"net_arch": zoo_cartpole_hp()["net_arch"]} if env_id == "CartPole-v1" else None
    if env_id == GAME:
        import ale_py
        import gymnasium as gym
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import VecFrameStack

        gym.register_envs(ale_py)
        env = VecFrameStack(make_atari_env(env_id, n_envs=1, seed=seed), n_stack=4)
        policy = "CnnPolicy"
    else:
        from stable_baselines3.common.env_util import make_vec_env

        env = make_vec_env(env_id, n_envs=1, seed=seed)
        policy = "MlpPolicy"
    return DQN(policy, env, seed=seed, device="cpu", policy_kwargs=policy_kwargs, verbose=0, **hp)


def child_throughput(lib: str, window: int, learning_starts: int, seed: int, threads: int | None, folder: str):
    load = os.getloadavg()[0]  # other work on the cores: deeprl overlaps its gradient thread only on a free core
    if lib == "deeprl":
        overrides = {"n_timesteps": window, "learning_starts": learning_starts, "checkpoint_freq": 10**9}
        if threads:
            overrides["torch_threads"] = threads
        c0 = cpu_s()
        run, seconds = _deeprl_train(GAME, overrides, str(COURSE_YML), seed, folder)
        cpu = cpu_s() - c0
        # config.json's own timing starts after imports, as SB3's learn() below
        seconds = json.loads((run.run_dir / "config.json").read_text())["trained"]["seconds"]
        import torch

        threads_used = torch.get_num_threads()
    else:
        import torch

        hp = {**course_hp(), "learning_starts": learning_starts}
        c0 = cpu_s()
        model = _sb3_model(GAME, hp, seed, threads)
        t = time.perf_counter()
        model.learn(total_timesteps=window)
        seconds = time.perf_counter() - t
        cpu = cpu_s() - c0
        threads_used = torch.get_num_threads()
    return {
        "lib": lib,
        "steps": window,
        "seconds": seconds,
        "steps_per_s": window / seconds,
        "cpu_s": cpu,
        "steps_per_cpu_s": window / cpu,
        "torch_threads": threads_used,
        "peak_rss_mb": peak_rss_mb(),
        "load": load,
    }


class _SB3Agent:
    def __init__(self, model, env_id):
        self.model, self.env_id, self.env_kwargs, self.config = model, env_id, {}, {}

    def act(self, obs, deterministic=True):
        return int(self.model.predict(obs, deterministic=deterministic)[0])


def child_cartpole(lib: str, seed: int, threads: int | None, folder: str):
    from deeprl.evaluation import evaluate

    hp = zoo_cartpole_hp()
    if lib == "deeprl":
        from deeprl.agent import load_agent

        overrides = {"checkpoint_freq": 10**9}
        if threads:
            overrides["torch_threads"] = threads
        c0 = cpu_s()
        run, _ = _deeprl_train("CartPole-v1", overrides, None, seed, folder)
        cpu = cpu_s() - c0
        seconds = json.loads((run.run_dir / "config.json").read_text())["trained"]["seconds"]
        agent = load_agent(run.run_dir)
    else:
        c0 = cpu_s()
        model = _sb3_model("CartPole-v1", hp, seed, threads)
        t = time.perf_counter()
        model.learn(total_timesteps=int(hp["n_timesteps"]))
        seconds = time.perf_counter() - t
        cpu = cpu_s() - c0
        agent = _SB3Agent(model, "CartPole-v1")
    ev = evaluate(agent, seed=seed)
    return {
        "lib": lib,
        "seed": seed,
        "steps": int(hp["n_timesteps"]),
        "seconds": seconds,
        "cpu_s": cpu,
        "mean_reward": ev["mean_reward"],
        "std_reward": ev["std_reward"],
        "result": ev["result"],
    }


def child_memory(buffer: int, seed: int, folder: str):
    import numpy as np  # noqa: F401  (imports count in the figure, as in any run)

    overrides = {
        "n_timesteps": buffer + 2000,
        "learning_starts": buffer,
        "buffer_size": buffer,
        "save_replay_buffer": True,
        "checkpoint_freq": 10**9,
    }
    run, seconds = _deeprl_train(GAME, overrides, str(COURSE_YML), seed, folder)
    size = (run.run_dir / "replay_buffer.safetensors").stat().st_size
    return {"buffer": buffer, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "replay_file_mb": size / 2**20}


def child_main(kind: str, kw: dict) -> None:
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    fn = {"throughput": child_throughput, "cartpole": child_cartpole, "memory": child_memory}[kind]
    print(json.dumps(fn(**kw)), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Reports


def bench_throughput(args) -> None:
    rows = []
    for lib in args.order:
        r = child(
            "throughput",
            lib=lib,
            window=args.window,
            learning_starts=args.learning_starts,
            seed=args.seed,
            threads=args.threads,
            folder=str(Path(args.folder) / "throughput"),
        )
        rows.append(r)
        print(
            f"{lib:7s} {r['steps']} steps in {r['seconds']:.1f} s = {r['steps_per_s']:.1f} env steps/s; "
            f"{r['cpu_s']:.1f} CPU s = {r['steps_per_cpu_s']:.1f} steps per CPU s "
            f"(torch threads {r['torch_threads']}, peak RSS {r['peak_rss_mb']:.0f} MB, load average at start "
            f"{r['load']:.1f} on {os.cpu_count()} cores)",
            flush=True,
        )
    by = {r["lib"]: r for r in rows}
    if len(by) == 2:
        print(
            f"throughput ratio deeprl/SB3: {by['deeprl']['steps_per_s'] / by['sb3']['steps_per_s']:.2f}x wall-clock, "
            f"{by['deeprl']['steps_per_cpu_s'] / by['sb3']['steps_per_cpu_s']:.2f}x per CPU second "
            f"(course dqn.yml, steps 0..{args.window}, learning_starts {args.learning_starts}, "
            f"{max(args.window - args.learning_starts, 0) // 4} gradient steps of batch 32)"
        )


def bench_cartpole(args) -> None:
    rows = []
    for seed in args.seeds:
        for lib in args.order:
            r = child("cartpole", lib=lib, seed=seed, threads=args.threads, folder=str(Path(args.folder) / "cartpole"))
            rows.append(r)
            print(
                f"{lib:7s} seed {seed}: {r['steps']} steps in {r['seconds']:.1f} s ({r['cpu_s']:.1f} CPU s), "
                f"result {r['result']:.1f} "
                f"(mean {r['mean_reward']:.1f} +/- {r['std_reward']:.1f})",
                flush=True,
            )
    t = {lib: sum(r["seconds"] for r in rows if r["lib"] == lib) for lib in args.order}
    c = {lib: sum(r["cpu_s"] for r in rows if r["lib"] == lib) for lib in args.order}
    hit = {lib: sum(r["result"] >= 500 for r in rows if r["lib"] == lib) for lib in args.order}
    if len(t) == 2:
        print(
            f"CartPole-v1 RL-Zoo DQN, {len(args.seeds)} seeds: deeprl {t['deeprl']:.1f} s "
            f"({hit['deeprl']} reached 500), SB3 {t['sb3']:.1f} s ({hit['sb3']} reached 500); "
            f"time ratio SB3/deeprl: {t['sb3'] / t['deeprl']:.2f}x wall-clock, "
            f"{c['sb3'] / c['deeprl']:.2f}x CPU seconds"
        )


def bench_lockstep(args) -> None:
    import numpy as np
    import pytest

    sys.path.insert(0, str(ROOT / "tests"))
    import test_dqn_parity as parity
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate

    for k in args.script_seeds:

        def script(self, n, k=k):
            self.U = np.random.default_rng(1000 + k).random(n)
            self.A = np.random.default_rng(2000 + k).integers(0, 2, n)
            self.batches = []

        parity.Script.__init__ = script
        hp = {**parity.CONFIGS["zoo"], "n_timesteps": int(zoo_cartpole_hp()["n_timesteps"])}
        mp = pytest.MonkeyPatch()
        folder = Path(args.folder) / "lockstep" / str(k)
        folder.mkdir(parents=True, exist_ok=True)
        model, run, first = parity.lockstep(hp, mp, folder, max_steps=500, check_weights=False)
        sb3 = evaluate(_SB3Agent(model, "CartPole-v1"), seed=0)["result"]
        ours = evaluate(load_agent(run.run_dir), env_kwargs={}, seed=0)["result"]
        print(
            f"script {k}: SB3 result {sb3:.1f}, deeprl result {ours:.1f}; first differing action at step {first}",
            flush=True,
        )


def bench_memory(args) -> None:
    r = child("memory", buffer=args.buffer, seed=args.seed, folder=str(Path(args.folder) / "memory"))
    sb3 = args.buffer * 2 * 4 * 84 * 84 / 2**20
    print(
        f"deeprl peak RSS with a {args.buffer} buffer (filled, trained, saved with the checkpoint): "
        f"{r['peak_rss_mb']:.0f} MB (replay file {r['replay_file_mb']:.0f} MB; {r['seconds']:.0f} s); "
        f"SB3's buffer alone, optimize_memory_usage False as in the course file: {sb3:.0f} MB"
    )


def plot(run_dir: Path, out: Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import csv

    import matplotlib.pyplot as plt
    import numpy as np

    with open(run_dir / "episodes.csv") as fh:
        rows = list(csv.DictReader(fh))
    steps = np.array([float(r["timesteps"]) for r in rows])
    scores = np.array([float(r["return"]) for r in rows])
    out = out or run_dir / "learning_curve.png"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, scores, ".", ms=3, alpha=0.4, label="game score (all lives)")
    if scores.size >= 10:
        k = min(100, scores.size)
        avg = np.convolve(scores, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], avg, lw=2, label=f"mean of last {k} games")
    evals = run_dir / "evaluations.csv"
    if evals.exists():
        with open(evals) as fh:
            ev = list(csv.DictReader(fh))
        if ev:
            ax.plot(
                [float(r["timesteps"]) for r in ev],
                [float(r["result"]) for r in ev],
                "s-",
                color="black",
                label="course evaluation (result = mean - std)",
            )
    ax.axhline(200, color="grey", ls="--", lw=1, label="course minimum (result 200)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("score")
    ax.set_title(f"deeprl DQN, {GAME}, course dqn.yml")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    return out


def bench_long(args) -> None:
    cmd = [
        sys.executable,
        "-m",
        "deeprl",
        "train",
        "--algo",
        "dqn",
        "--env",
        GAME,
        "-f",
        args.folder,
        "-c",
        str(COURSE_YML),
        "-n",
        str(args.steps),
        "--seed",
        str(args.seed),
    ]
    if args.resume:
        cmd.append("--resume")
    if args.save_replay_buffer:
        cmd.append("--save-replay-buffer")
    # checkpoints (with the buffer) by wall-clock, so that a kill loses little; evaluations by the course protocol
    # along the way (evaluations.csv beside episodes.csv); on --resume these replace the run's earlier settings
    cmd += [
        "--hyperparams",
        f"checkpoint_seconds:{args.checkpoint_seconds}",
        f"eval_freq:{args.eval_freq}",
        f"torch_threads:{args.threads or 'auto'}",
    ]
    t = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT)
    wall = time.perf_counter() - t
    from deeprl.envs import env_tag
    from deeprl.train import latest_run_dir

    run_dir = latest_run_dir(Path(args.folder), "dqn", env_tag(GAME))
    if run_dir is None:
        sys.exit(f"no run under {args.folder}")
    png = plot(run_dir)
    print(f"learning curve: {png}")
    if rc != 0:
        print(f"training stopped (exit {rc}) after {wall:.0f} s; continue with --resume")
        return
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate

    config = json.loads((run_dir / "config.json").read_text())
    ev = evaluate(load_agent(run_dir))
    print(
        f"{GAME}: {config['trained']['timesteps']} steps in {config['trained']['seconds']:.0f} s; course "
        f"evaluation mean {ev['mean_reward']:.1f} +/- {ev['std_reward']:.1f}, result {ev['result']:.1f} "
        f"(target 200)"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child_main(sys.argv[2], json.loads(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("-f", "--folder", default=str(ROOT / "logs" / "bench"))
    common.add_argument(
        "--threads", type=int, default=None, help="torch threads for both (default: each library's own default)"
    )
    common.add_argument("--order", nargs="+", default=["deeprl", "sb3"], choices=["deeprl", "sb3"])
    a = sub.add_parser("throughput", parents=[common])
    a.add_argument("--window", type=int, default=50_000)
    a.add_argument("--learning-starts", type=int, default=10_000)
    b = sub.add_parser("cartpole", parents=[common])
    b.add_argument("--seeds", type=int, nargs="+", default=[0])
    b2 = sub.add_parser("lockstep", parents=[common])
    b2.add_argument("--script-seeds", type=int, nargs="+", default=[0])
    c = sub.add_parser("memory", parents=[common])
    c.add_argument("--buffer", type=int, default=100_000)
    d = sub.add_parser("long", parents=[common])
    d.add_argument("--steps", type=int, default=2_000_000)
    d.add_argument("--resume", action="store_true")
    d.add_argument("--save-replay-buffer", action=argparse.BooleanOptionalAction, default=True)
    d.add_argument("--checkpoint-seconds", type=int, default=900)
    d.add_argument("--eval-freq", type=int, default=100_000)
    e = sub.add_parser("plot")
    e.add_argument("run_dir", type=Path)
    args = p.parse_args()
    if args.what == "plot":
        print(plot(args.run_dir))
        return
    {
        "throughput": bench_throughput,
        "cartpole": bench_cartpole,
        "memory": bench_memory,
        "long": bench_long,
        "lockstep": bench_lockstep,
    }[args.what](args)


if __name__ == "__main__":
    main()
