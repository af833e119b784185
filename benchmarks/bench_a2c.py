"""A2C on PandaReachDense-v3 (Unit 6): deeprl's A2C vs Stable-Baselines3's A2C, side by side, plus deeprl's PPO.

Every contender trains with the course's settings (4 envs, observation + reward normalization with clip 10,
SB3 A2C defaults; SB3 through VecNormalize and MultiInputPolicy) and is evaluated every `--eval-every` env steps
by deeprl.evaluation.evaluate (10 episodes, deterministic, statistics frozen, raw rewards), the same function for
all. Reported per run: env steps and training wall-clock (evaluation time excluded) until the first evaluation
with result = mean - std >= --target (-3.5, the course minimum).

    nice python benchmarks/bench_a2c.py                        # seeds 0-2, all three, up to 300k steps each
    nice python benchmarks/bench_a2c.py --seeds 0 --max-steps 100000 --only ours sb3

Torch runs on one thread for every contender (the fastest setting for 64-unit networks on a small machine).
Needs stable-baselines3 (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deeprl.evaluation import evaluate

ENV_ID = "PandaReachDense-v3"


class Tracker:
    """Counts training time only: the clock stops while an evaluation runs."""

    def __init__(self, name: str, seed: int, target: float, eval_every: int, n_eval: int):
        self.name, self.seed, self.target, self.eval_every, self.n_eval = name, seed, target, eval_every, n_eval
        self.train_s, self.next_eval, self.hit, self.curve = 0.0, eval_every, None, []
        self._t = time.perf_counter()

    def due(self, steps: int) -> bool:
        return steps >= self.next_eval

    def evaluate(self, steps: int, agent) -> bool:
        """Evaluate `agent` at `steps`; True once the target is reached (the run may stop)."""
        self.train_s += time.perf_counter() - self._t
        res = evaluate(agent, n_eval_episodes=self.n_eval, seed=10_000)
        self.curve.append((steps, res["result"]))
        print(
            f"  {self.name:5s} seed {self.seed} steps {steps:>7d} train {self.train_s:7.1f}s "
            f"result {res['result']:7.2f} (mean {res['mean_reward']:.2f} +/- {res['std_reward']:.2f})",
            flush=True,
        )
        while self.next_eval <= steps:
            self.next_eval += self.eval_every
        if self.hit is None and res["result"] >= self.target:
            self.hit = (steps, self.train_s)
        self._t = time.perf_counter()
        return self.hit is not None


class _Reached(Exception):
    pass


def run_ours(algo: str, seed: int, args) -> Tracker:
    """deeprl's A2C or PPO through its own train(run). Evaluation hooks into run.checkpoint: the checkpoint holds
    the policy weights and the normalizer's statistics, which is all an agent needs (and what --resume uses)."""
    import tempfile

    from deeprl.algos import get_algo
    from deeprl.normalize import parse_normalize
    from deeprl.policies import load_policy_agent, parse_policy_kwargs
    from deeprl.train import Run, merge_hyperparams, seed_everything

    module = get_algo(algo)
    over = {"n_envs": 4, "normalize": {"norm_obs": True, "norm_reward": True, "clip_obs": 10.0}}
    if algo == "a2c":
        over["checkpoint_every"] = args.eval_every  # env steps
    else:
        over["checkpoint_every"] = 1  # updates (PPO's unit); evaluated when a multiple of eval_every is crossed
    if args.vectorization:
        over["vectorization"] = args.vectorization
    hp = merge_hyperparams(algo, module, ENV_ID, ENV_ID, None, over, args.max_steps)
    tracker = Tracker(algo if algo == "ppo" else "ours", seed, args.target, args.eval_every, args.n_eval)
    policy_config = {
        **parse_policy_kwargs(hp["policy_kwargs"]),
        "class": "ActorCritic",
        "normalize": {"gamma": hp["gamma"], **parse_normalize(hp["normalize"])},
    }

    class BenchRun(Run):
        def checkpoint(self, tensors, state, np_rng=None):
            steps = int(state["timesteps"])
            if not tracker.due(steps):
                return
            config = {"algo": algo, "env_id": ENV_ID, "env_kwargs": {}, "policy": policy_config}
            agent = load_policy_agent(
                config, {k: np.asarray(v.detach() if hasattr(v, "detach") else v) for k, v in tensors.items()}
            )
            if tracker.evaluate(steps, agent):
                raise _Reached

    with tempfile.TemporaryDirectory() as tmp:
        run = BenchRun(
            algo=algo,
            env_id=ENV_ID,
            env_kwargs={},
            env_tag=ENV_ID,
            hyperparams=hp,
            seed=seed,
            run_dir=Path(tmp),
            show_progress=False,
        )
        seed_everything(seed)
        tracker._t = time.perf_counter()
        try:
            module.train(run)
        except _Reached:
            pass
        finally:
            run.close()
    return tracker


class SB3Agent:
    """An SB3 model behind deeprl's agent interface: frozen VecNormalize statistics, then model.predict."""

    def __init__(self, model, venv):
        self.model, self.venv = model, venv
        self.env_id, self.env_kwargs, self.config = ENV_ID, {}, {}

    def act(self, obs, deterministic=True):
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        norm = self.venv.normalize_obs(batch)  # uses the statistics without updating them
        action, _ = self.model.predict(norm, deterministic=deterministic)
        return action[0]


def run_sb3(seed: int, args) -> Tracker:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from deeprl.envs import make_env

    # The course: make_vec_env(env_id, n_envs=4); VecNormalize(norm_obs, norm_reward, clip_obs=10);
    # A2C("MultiInputPolicy", env) with SB3's defaults. Built on deeprl's make_env: the same panda-gym env.
    venv = make_vec_env(lambda: make_env(ENV_ID, training=True), n_envs=4, seed=seed)
    venv = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0)
    model = A2C("MultiInputPolicy", venv, verbose=0, seed=seed, device="cpu")
    tracker = Tracker("sb3", seed, args.target, args.eval_every, args.n_eval)
    tracker._t = time.perf_counter()
    while model.num_timesteps < args.max_steps:
        model.learn(args.eval_every, reset_num_timesteps=False)
        if tracker.evaluate(model.num_timesteps, SB3Agent(model, venv)):
            break
    venv.close()
    return tracker


def summary(results: dict[str, list[Tracker]], args) -> None:
    print(
        f"\n{ENV_ID}: env steps and training wall-clock to reach result >= {args.target} "
        f"(evaluated every {args.eval_every} steps, {args.n_eval} episodes)"
    )
    print(f"{'':6s}" + "".join(f"  seed {t.seed:<18d}" for t in next(iter(results.values()))) + "  median time")
    med = {}
    for name, trackers in results.items():
        cells, times = [], []
        for t in trackers:
            if t.hit:
                cells.append(f"{t.hit[0]:>8d} st {t.hit[1]:7.1f}s")
                times.append(t.hit[1])
            else:
                cells.append(f"{'not reached':>19s}")
        med[name] = statistics.median(times) if len(times) == len(trackers) else None
        print(f"{name:6s}" + "".join(f"  {c:22s}" for c in cells) + (f"  {med[name]:.1f}s" if med[name] else "  -"))
    for name, trackers in results.items():
        print(f"{name:6s} reached the target on {sum(t.hit is not None for t in trackers)}/{len(trackers)} seeds")
    if med.get("ours") and med.get("sb3"):
        print(f"wall-clock ratio SB3 / ours (median): {med['sb3'] / med['ours']:.2f}x (goal >= 3x)")
    if med.get("ours") and med.get("ppo"):
        print(f"wall-clock ratio PPO / A2C (median): {med['ppo'] / med['ours']:.2f}x")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=300_000, help="budget per run (env steps)")
    p.add_argument("--eval-every", type=int, default=20_000)
    p.add_argument("--n-eval", type=int, default=10)
    p.add_argument("--target", type=float, default=-3.5)
    p.add_argument("--only", nargs="+", choices=["ours", "sb3", "ppo"], default=["ours", "sb3", "ppo"])
    p.add_argument(
        "--vectorization",
        choices=["sync", "async"],
        default=None,
        help="deeprl's vector env kind (default: the hyperparameter file's)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    results: dict[str, list[Tracker]] = {name: [] for name in args.only}
    for seed in args.seeds:  # contenders interleaved per seed, so machine load hits them alike
        for name in args.only:
            print(f"{name} seed {seed}", flush=True)
            if name == "sb3":
                results[name].append(run_sb3(seed, args))
            else:
                results[name].append(run_ours("a2c" if name == "ours" else "ppo", seed, args))
    summary(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
