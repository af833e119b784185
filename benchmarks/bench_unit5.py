"""Unit 5 environment speed (issue 17): agent steps (decisions) per CPU second of each env's array core.

    python benchmarks/bench_unit5.py speed

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed"])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.what == "speed":
        speed(seconds=args.seconds)


if __name__ == "__main__":
    main()
