"""PPO: deeprl against Stable-Baselines3 with the same hyperparameters, side by side, seeds 0-2.

    python benchmarks/bench_ppo.py                       # CartPole-v1 (RL-Zoo settings) and LunarLander-v2 (Unit 1)
    python benchmarks/bench_ppo.py --env cartpole        # only CartPole (100k steps, ~2 min with SB3)
    nice python benchmarks/bench_ppo.py --env lunarlander  # 1M steps x 3 seeds x 2 libraries: long on 2 cores
    python benchmarks/bench_ppo.py --env lunarlander --n-timesteps 200000 --seeds 0   # a smaller budget
    python benchmarks/bench_ppo.py --skip-sb3            # ours only

Each training runs in its own process (no shared torch thread settings or imports), one after another. Wall-clock
is the training call: deeprl's `train()` (env creation, TensorBoard, checkpoint and model files included) against
SB3's `model.learn()` (its env and model are built before the clock starts). Both workers import their libraries
(torch, gymnasium, SB3 / deeprl's PPO module) before the clock starts: importing torch takes 1-2 s here, which
is start-up, not training. Both agents are scored by deeprl.evaluation.evaluate (the course protocol: 10 episodes,
deterministic, result = mean - std). Collection throughput: env steps per second of our training loop's
collection phase (policy inference + env stepping + storage), against the raw rate of the same vector env stepped
with random actions.

Needs the `bench` extra: pip install -e .[bench]  (stable-baselines3).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# RL-Zoo's hyperparams/ppo.yml for CartPole-v1 (the settings behind SB3's 25.7 s for 100k steps here)
CARTPOLE_ZOO = {
    "n_envs": 8,
    "n_timesteps": 100_000,
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
}
# The course's Unit 1 settings (everything else: SB3's defaults, which deeprl's PPO defaults equal)
LUNAR_UNIT1 = {
    "n_envs": 16,
    "n_timesteps": 1_000_000,
    "n_steps": 1024,
    "batch_size": 64,
    "n_epochs": 4,
    "gamma": 0.999,
    "gae_lambda": 0.98,
    "ent_coef": 0.01,
}
# SB3 on this machine, idle (the figures): CartPole 25.7 s for 100k steps, LunarLander ~790 s for 1M
# the hyperparameters SB3's PPO has (deeprl's PPO DEFAULTS holds SB3's default for each)
SB3_KEYS = (
    "n_steps",
    "batch_size",
    "n_epochs",
    "learning_rate",
    "gamma",
    "gae_lambda",
    "clip_range",
    "clip_range_vf",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "target_kl",
    "normalize_advantage",
    "policy_kwargs",
    "normalize",
)
CASES = {
    "cartpole": ("CartPole-v1", "CartPole-v1", CARTPOLE_ZOO, 500.0),
    "lunarlander": ("LunarLander-v2", "LunarLander-v3", LUNAR_UNIT1, 200.0),
}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (env worker processes), all threads."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _sb3_value(v):
    if isinstance(v, str) and v.startswith("lin_"):
        start = float(v[4:])
        return lambda progress: start * progress
    return v


def worker_ours(case: str, seed: int, n_timesteps: int, vectorization: str | None) -> dict:
    import gymnasium  # noqa: F401  (libraries load before the clock starts, as SB3's worker loads torch and SB3)
    import torch  # noqa: F401
    import torch.utils.tensorboard  # noqa: F401  (SB3's logger module imports it when SB3 is imported)

    import deeprl.algos.ppo  # noqa: F401
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.train import train

    env_id, _, hp, _ = CASES[case]
    # SB3's defaults under the case's settings, so that nothing from deeprl/hyperparams/ppo.yml's entry for the env
    # (CartPole-v1 holds CleanRL's settings there: value clipping, vf_coef 0.25) leaks into the comparison
    hp = {**{k: deeprl.algos.ppo.DEFAULTS[k] for k in SB3_KEYS}, **hp}
    hp = {k: v for k, v in hp.items() if k != "n_timesteps"}
    if vectorization:
        hp["vectorization"] = vectorization
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), _cpu()
        run = train(
            "ppo",
            env_id,
            overrides=hp,
            n_timesteps=n_timesteps,
            seed=seed,
            log_folder=tmp,
            show_progress=False,
            device="cpu",
        )
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        trained = json.loads((run.run_dir / "config.json").read_text())["trained"]
        result = evaluate(load_agent(run.run_dir))
    return {
        "wall": wall,
        "cpu": cpu,
        "steps": trained["timesteps"],
        "result": result["result"],
        "mean": result["mean_reward"],
        "std": result["std_reward"],
        "collect_rate": trained["timesteps"] / trained["collect_seconds"],
        "update_seconds": trained["update_seconds"],
        "collect_seconds": trained["collect_seconds"],
    }


class _SB3Agent:
    """An SB3 model seen through deeprl's agent interface, so both are scored by the same evaluate()."""

    def __init__(self, model, env_id):
        self.model, self.env_id, self.env_kwargs, self.config = model, env_id, {}, {}

    def act(self, obs, deterministic=True):
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return int(action) if action.shape == () else action


def worker_sb3(case: str, seed: int, n_timesteps: int, threads: int | None) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from deeprl.evaluation import evaluate

    env_id, gym_id, hp, _ = CASES[case]
    kwargs = {k: _sb3_value(v) for k, v in hp.items() if k not in ("n_envs", "n_timesteps")}
    if threads:
        torch.set_num_threads(threads)
    env = make_vec_env(gym_id, n_envs=hp["n_envs"], seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    t0, c0 = time.perf_counter(), _cpu()
    model.learn(total_timesteps=n_timesteps)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    result = evaluate(_SB3Agent(model, env_id))
    return {
        "wall": wall,
        "cpu": cpu,
        "steps": int(model.num_timesteps),
        "result": result["result"],
        "mean": result["mean_reward"],
        "std": result["std_reward"],
    }


def worker_raw(case: str, vectorization: str | None, seconds: float = 3.0) -> dict:
    """Raw vector-env rate: random actions, no policy, no storage."""
    import numpy as np

    from deeprl.algos import ppo
    from deeprl.envs.vector import make_vec_env
    from deeprl.train import default_hyperparams

    env_id, _, hp, _ = CASES[case]
    vectorization = vectorization or default_hyperparams("ppo", ppo, env_id, env_id)["vectorization"]
    venv = make_vec_env(env_id, hp["n_envs"], seed=0, vectorization=vectorization)
    rng = np.random.default_rng(0)
    n = venv.single_action_space.n
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            venv.step(rng.integers(0, n, hp["n_envs"]))
        steps += 50 * hp["n_envs"]
    rate = steps / (time.perf_counter() - t0)
    venv.close()
    return {"raw_rate": rate, "vectorization": f"{type(venv).__name__} ({vectorization})"}


def spawn(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"worker {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", choices=["cartpole", "lunarlander", "both"], default="both")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-timesteps", type=int, default=None, help="smaller budget than the settings' own")
    p.add_argument("--vectorization", default=None, help="ours: auto (default), sync or async")
    p.add_argument("--skip-sb3", action="store_true")
    p.add_argument(
        "--sb3-threads",
        type=int,
        default=None,
        help="torch threads for SB3 (default: torch's own choice, as SB3 users run it)",
    )
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        kind, case, *rest = args.worker
        vec = None
        if kind == "ours":
            seed, n, vec = int(rest[0]), int(rest[1]), (rest[2] if len(rest) > 2 and rest[2] != "-" else None)
            res = worker_ours(case, seed, n, vec)
        elif kind == "sb3":
            res = worker_sb3(case, int(rest[0]), int(rest[1]), int(rest[2]) if len(rest) > 2 else None)
        else:
            res = worker_raw(case, rest[0] if rest and rest[0] != "-" else None)
        print(json.dumps(res))
        return

    import platform

    import torch

    print(
        f"# PPO benchmark on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}",
        flush=True,
    )
    cases = ["cartpole", "lunarlander"] if args.env == "both" else [args.env]
    for case in cases:
        env_id, _, hp, target = CASES[case]
        n = args.n_timesteps or hp["n_timesteps"]
        print(f"\n## {env_id}: {n:,} steps, settings {json.dumps(hp)}; target result >= {target:g}", flush=True)
        raw = spawn(["raw", case, args.vectorization or "-"])
        print(
            f"{'seed':>4} {'lib':>8} {'wall s':>8} {'cpu s':>8} {'steps':>9} {'steps/s':>8} {'result':>8} "
            f"{'mean+-std':>16}",
            flush=True,
        )
        rows = {"deeprl": [], "sb3": []}
        for seed in args.seeds:
            libs = [("deeprl", ["ours", case, str(seed), str(n), args.vectorization or "-"])]
            if not args.skip_sb3:
                libs.append(
                    ("sb3", ["sb3", case, str(seed), str(n)] + ([str(args.sb3_threads)] if args.sb3_threads else []))
                )
            for lib, wargs in libs:
                r = spawn(wargs)
                rows[lib].append(r)
                print(
                    f"{seed:>4} {lib:>8} {r['wall']:>8.1f} {r['cpu']:>8.1f} {r['steps']:>9,} "
                    f"{r['steps'] / r['wall']:>8,.0f} {r['result']:>8.1f} "
                    f"{r['mean']:>8.1f}+-{r['std']:<6.1f}",
                    flush=True,
                )
        ours = rows["deeprl"]
        mean_wall = sum(r["wall"] for r in ours) / len(ours)
        passed = sum(r["result"] >= target for r in ours)
        print(f"deeprl: mean wall {mean_wall:.1f} s, result >= {target:g} on {passed}/{len(ours)} seeds")
        if rows["sb3"]:
            sb3 = rows["sb3"]
            sb3_wall = sum(r["wall"] for r in sb3) / len(sb3)
            sb3_passed = sum(r["result"] >= target for r in sb3)
            print(f"sb3:    mean wall {sb3_wall:.1f} s, result >= {target:g} on {sb3_passed}/{len(sb3)} seeds")
            sb3_cpu = sum(r["cpu"] for r in sb3) / len(sb3)
            ours_cpu = sum(r["cpu"] for r in ours) / len(ours)
            print(
                f"speed-up (SB3 wall / deeprl wall): {sb3_wall / mean_wall:.2f}x; "
                f"CPU seconds: {sb3_cpu / ours_cpu:.2f}x"
            )
        collect = sum(r["collect_rate"] for r in ours) / len(ours)
        print(
            f"collection: {collect:,.0f} env steps/s in our training loop (policy + env + storage) vs raw "
            f"{raw['raw_rate']:,.0f} steps/s of the {raw['vectorization']} with random actions "
            f"({collect / raw['raw_rate']:.0%}); "
            f"update phase {sum(r['update_seconds'] for r in ours) / len(ours):.1f} s, "
            f"collection {sum(r['collect_seconds'] for r in ours) / len(ours):.1f} s per run",
            flush=True,
        )


if __name__ == "__main__":
    main()
