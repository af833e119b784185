"""ViZDoom throughput (issue 16): the raw rate of doom_health_gathering_supreme stepped with random actions.

    python benchmarks/bench_doom.py raw [--seconds S] [--processes N]

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("raw", help="random-action stepping, 1 process and all cores")
    p.add_argument("--seconds", type=float, default=10.0, help="stepping time of each measurement")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="processes for the all-cores run")
    args = parser.parse_args(argv)
    if args.command == "raw":
        raw(args.seconds, max(1, args.processes))


if __name__ == "__main__":
    main()
