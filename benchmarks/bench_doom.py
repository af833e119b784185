"""ViZDoom (issue 16): the raw rate of doom_health_gathering_supreme stepped with random actions, and APPO training
on it against the course's goal, side by side in one run.

    python benchmarks/bench_doom.py raw [--seconds S] [--processes N]
    python benchmarks/bench_doom.py train [--minutes 30] [--snapshot-minutes 3] [--seed 1] [--hyperparams k:v ...]

`train` first measures the raw rate of the training env on every core (random actions, 10 s), then trains
`deeprl train --algo appo` (in this process, through deeprl.train.train) for the given wall-clock minutes, saving a
snapshot of the policy every few minutes, and evaluates each snapshot afterwards by the course protocol (10
episodes, frameskip 1, the unshaped return, result = mean - std). It prints the curve, the first time the result
reached 5 (the course's minimum), the best result, training frames/s against the raw rate, whole-process time and
peak memory; it writes the curve as a PNG and the figures as JSON under benchmarks/out/doom/.

Frames are game tics, as Sample Factory counts them: a step at frameskip 4 is 4 frames. The game renders 160x120
(SF's resolution for Doom) and each step's frame is resized to the 128x72 observation. Two levels:

- engine: ViZDoom's DoomGame alone (make_action + get_state), the ceiling;
- env: deeprl's training env (make_env(..., training=True): DoomEnv, the resize, the episode statistics and the
  reward shaping), what a trainer's rollout workers step.

Each runs on 1 process and then on N processes at once (default: all cores), one game each, and prints frames/s
of wall time and per CPU-second, the engine process's CPU included (on a shared machine the wall rate
also measures the neighbours).
Target (this machine): about 9,500 frames/s on one core.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

ENV_ID = "doom_health_gathering_supreme"
FRAME_SKIP = 4


def _children_cpu() -> float:
    """CPU seconds of this process's live children: the game engine is one, and process_time() misses it."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for task in os.listdir("/proc/self/task"):
        for child in open(f"/proc/self/task/{task}/children").read().split():
            try:
                fields = open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _cpu() -> float:
    return time.process_time() + _children_cpu()


def _engine_loop(seconds: float, seed: int) -> tuple[int, float, float]:
    import numpy as np

    from deeprl.envs.doom import SCENARIOS, DoomEnv, cfg_path

    env = DoomEnv(cfg_path(SCENARIOS[ENV_ID]), frame_skip=FRAME_SKIP)
    env.reset(seed=seed)  # starts the engine; from here on the game is driven directly
    game, actions = env.game, env._actions
    picks = np.random.default_rng(seed).integers(len(actions), size=4096)
    frames, i = 0, 0
    t0, c0 = time.perf_counter(), _cpu()
    while time.perf_counter() - t0 < seconds:
        if game.is_episode_finished():
            game.new_episode()
        game.make_action(actions[picks[i % 4096]], FRAME_SKIP)
        state = game.get_state()
        if state is not None:
            _ = state.screen_buffer
        frames += FRAME_SKIP
        i += 1
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    env.close()
    return frames, wall, cpu


def _env_loop(seconds: float, seed: int) -> tuple[int, float, float]:
    from deeprl.envs import make_env

    env = make_env(ENV_ID, training=True)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    frames = 0
    t0, c0 = time.perf_counter(), _cpu()
    while time.perf_counter() - t0 < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frames += FRAME_SKIP
        if terminated or truncated:
            env.reset()
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    env.close()
    return frames, wall, cpu


LOOPS = {"engine": _engine_loop, "env": _env_loop}


def _worker(level: str, seconds: float, seed: int, barrier, results) -> None:
    barrier.wait()  # all games start stepping together, after all engines are up
    results.put(LOOPS[level](seconds, seed))


def measure(level: str, processes: int, seconds: float) -> tuple[float, float]:
    """(frames/s of wall time, summed over processes; frames per CPU-second, per process)."""
    if processes == 1:
        results = [LOOPS[level](seconds, 0)]
    else:
        ctx = mp.get_context("spawn")  # each worker starts its own engine, nothing inherited
        barrier, queue = ctx.Barrier(processes), ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(level, seconds, i, barrier, queue)) for i in range(processes)]
        for w in workers:
            w.start()
        results = [queue.get() for _ in workers]
        for w in workers:
            w.join()
    wall_rate = sum(frames / wall for frames, wall, _ in results)
    cpu_rate = sum(frames for frames, _, _ in results) / sum(cpu for _, _, cpu in results)
    return wall_rate, cpu_rate


def raw(seconds: float, processes: int) -> dict:
    figures = {}
    for level in ("engine", "env"):
        for n in sorted({1, processes}):
            wall_rate, cpu_rate = measure(level, n, seconds)
            figures[(level, n)] = (wall_rate, cpu_rate)
            print(
                f"{level:6s} {n:2d} process{'es' if n > 1 else '  '}: {wall_rate:9,.0f} frames/s wall, "
                f"{cpu_rate:9,.0f} per CPU-second a process  (160x120 -> 128x72, frameskip {FRAME_SKIP})",
                flush=True,
            )
    one = figures[("env", 1)][1]
    print(f"env on one core: {one:,.0f} frames per CPU-second (target about 9,500 on this machine)")
    return figures


class Snapshots:
    """A deeprl.loop.Callback: a copy of the policy every `every_s` seconds, and the stop at `budget_s`."""

    def __init__(self, folder, every_s: float, budget_s: float):
        self.folder, self.every_s, self.budget_s = folder, every_s, budget_s
        self.t0 = time.perf_counter()
        self.next = every_s
        self.saved: list[dict] = []

    def on_update(self, run, count, snapshot) -> bool:
        from deeprl.modelio import save_model

        elapsed = time.perf_counter() - self.t0
        if elapsed >= self.next or elapsed >= self.budget_s:
            self.next += self.every_s
            tensors, policy_config = snapshot()
            folder = self.folder / f"snap_{len(self.saved):03d}"
            save_model(folder, tensors, {**run.base_config(), "policy": policy_config})
            self.saved.append({"folder": str(folder), "minutes": round(elapsed / 60, 2), "frames": int(count)})
        return elapsed >= self.budget_s

    def on_evaluation(self, run, count, result) -> bool:
        return False

    def should_stop(self, run) -> bool:
        return False


def train_bench(minutes: float, snapshot_minutes: float, seed: int, hyperparams: list[str], out) -> dict:
    import json
    import resource
    from pathlib import Path

    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.settings import parse_overrides
    from deeprl.train import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    processes = os.cpu_count() or 1
    raw_rate, _ = measure("env", processes, 10.0)
    print(f"raw: {raw_rate:,.0f} frames/s on {processes} processes (random actions, the training env)", flush=True)
    overrides = parse_overrides(hyperparams) if hyperparams else {}
    snaps = Snapshots(out / "snapshots", snapshot_minutes * 60, minutes * 60)
    t0 = time.perf_counter()
    run = train("appo", ENV_ID, seed=seed, log_folder=out / "logs", n_timesteps=10**10, overrides=overrides,
                show_progress=False, callbacks=[snaps])  # fmt: skip
    train_s = time.perf_counter() - t0
    config = json.loads((run.run_dir / "config.json").read_text())
    frames = config["trained"]["env_frames"]
    print(f"trained {frames:,} frames in {train_s / 60:.1f} min: {frames / train_s:,.0f} frames/s "
          f"= {frames / train_s / raw_rate:.0%} of the raw rate of all cores", flush=True)  # fmt: skip
    curve = []
    print(f"{'minutes':>8} {'frames':>10} {'mean':>7} {'std':>6} {'result':>7}")
    for snap in snaps.saved:
        r = evaluate(load_agent(snap["folder"]))
        point = {**snap, "mean": r["mean_reward"], "std": r["std_reward"], "result": r["result"]}
        curve.append(point)
        print(f"{snap['minutes']:8.1f} {snap['frames']:10,} {r['mean_reward']:7.2f} {r['std_reward']:6.2f} "
              f"{r['result']:7.2f}", flush=True)  # fmt: skip
    reached = next((p for p in curve if p["result"] >= 5.0), None)
    best = max(curve, key=lambda p: p["result"]) if curve else None
    peak_mb = (
        max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        / 1024
    )
    summary = {
        "raw_frames_per_s": raw_rate,
        "train_frames": frames,
        "train_seconds": train_s,
        "train_frames_per_s": frames / train_s,
        "ratio_to_raw": frames / train_s / raw_rate,
        "first_result_5": reached,
        "best": best,
        "curve": curve,
        "peak_rss_mb": peak_mb,
        "hyperparams": overrides,
        "seed": seed,
    }
    if reached:
        print(
            f"result >= 5 first at {reached['minutes']:.1f} min ({reached['frames']:,} frames): {reached['result']:.2f}"
        )
    else:
        print("result >= 5 not reached within the budget")
    if best:
        print(
            f"best: {best['mean']:.2f} +/- {best['std']:.2f} (result {best['result']:.2f}) at {best['minutes']:.1f} min"
        )
    print(f"whole process: {time.perf_counter() - START:.0f} s, peak RSS {peak_mb:,.0f} MB (largest process)")
    (out / "bench_doom.json").write_text(json.dumps(summary, indent=1))
    _plot(curve, out / "doom_curve.png")
    return summary


def _plot(curve: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    mins = [p["minutes"] for p in curve]
    ax.errorbar(mins, [p["mean"] for p in curve], yerr=[p["std"] for p in curve], label="mean +/- std", capsize=3)
    ax.plot(mins, [p["result"] for p in curve], "o-", label="result (mean - std)")
    ax.axhline(5.0, color="gray", ls="--", label="course minimum 5")
    ax.set_xlabel("minutes of training (this machine)")
    ax.set_ylabel("unshaped return")
    ax.set_title(f"APPO on {ENV_ID}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"curve: {path}")


START = time.perf_counter()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("raw", help="random-action stepping, 1 process and all cores")
    p.add_argument("--seconds", type=float, default=10.0, help="stepping time of each measurement")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="processes for the all-cores run")
    p = sub.add_parser("train", help="APPO against the course's goal, beside the raw rate")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget")
    p.add_argument("--snapshot-minutes", type=float, default=3.0, help="minutes between evaluated snapshots")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hyperparams", nargs="*", default=[], help="key:value overrides of hyperparams/appo.yml")
    p.add_argument("--out", default="benchmarks/out/doom")
    args = parser.parse_args(argv)
    if args.command == "raw":
        raw(args.seconds, max(1, args.processes))
    else:
        train_bench(args.minutes, args.snapshot_minutes, args.seed, args.hyperparams, args.out)


if __name__ == "__main__":
    main()
