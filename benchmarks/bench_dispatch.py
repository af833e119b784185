"""League throughput one by one, in the local pool and on a two-node Ray cluster (issue 18, item 4):

    python benchmarks/bench_dispatch.py [--agents 32] [--rounds 3] [--games 6] [--max-steps 500] [--every 512]
                                        [--modes sequential,pool,ray] [--workers N] [--cpus-per-node 1]

Trains one small self-play run, keeping the model every `--every` steps (the run is resumed to each next step
count), pushes the `--agents` snapshots to a fresh local hub, and plays the same league (`--rounds` rounds, the
same queue seed) three times, each into a database of its own: one match at a time (sequential), in the local
pool (`--workers`, default the cores), and as Ray tasks on a cluster of two nodes started on this machine
(`ray start --head` plus `ray start --address`, `--cpus-per-node` CPUs each; up for the whole run, torn down
after). The modes take turns round by round, so a change in the machine's load falls on all three alike.
Prints matches per minute side by side, Ray's overhead against the pool, and whether all three played the same
matches with the same results (they must). The cluster's start is not counted; connecting to it is (once, as
`deeprl league run --ray` does). Files go to benchmarks/out/dispatch/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deeprl.dispatch import DispatchOptions

OUT = Path(__file__).resolve().parent / "out" / "dispatch"
TESTS = Path(__file__).resolve().parent.parent / "tests"
CARD = "---\nlibrary_name: deeprl\ntags:\n- ML-Agents-SoccerTwos\n- reinforcement-learning\n---\n# {name}\n"
# small batches so that 32 snapshots train in minutes; the network is bench_soccer's size (what a match runs)
HYPERPARAMS = {
    "n_envs": 4,
    "n_steps": 32,
    "batch_size": 128,
    "hidden_units": 128,
    "save_steps": 256,
    "swap_steps": 128,
    "team_change": 512,
    "checkpoint_every": 512,
}


def snapshots(n: int, every: int, seed: int) -> list[str]:
    """Train, push each snapshot as bench/step-NNNNNNN; their names (bench_league's loop, this file's settings)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_league import push_snapshots, snapshot_steps

    return [name for _, name in push_snapshots(OUT, snapshot_steps(n, every, "even"), seed, HYPERPARAMS)]


class Mode:
    """One way of running the league: its own database, queue seed and dispatcher (held open for every round, as
    `deeprl league run --ray` holds one Ray connection); the seconds its rounds took, connecting included."""

    def __init__(self, name: str, options: DispatchOptions, args: argparse.Namespace):
        from deeprl.league.runner import Settings

        self.name, self.options = name, options
        self.url = f"sqlite:///{OUT / (name + '.db')}"
        self.settings = Settings(games=args.games, max_steps=args.max_steps, replays=False, dispatch=options)
        self.rng = random.Random(args.seed)
        self.played: list[dict] = []
        self.ran_on = ""
        self.seconds = 0.0

    def round(self) -> None:
        from deeprl.league.runner import run_round

        t0 = time.perf_counter()
        report = run_round(url=self.url, settings=self.settings, rng=self.rng)
        self.seconds += time.perf_counter() - t0
        self.played += report.played
        self.ran_on = report.ran_on or self.ran_on

    def summary(self) -> dict:
        return {
            "mode": self.name,
            "ran_on": self.ran_on,
            "matches": len(self.played),
            "seconds": round(self.seconds, 2),
            "matches_per_min": round(60 * len(self.played) / self.seconds, 2),
        }

    def results(self) -> list[tuple]:
        return [(m["model1"], m["model2"], m["won"], m["drawn"], m["lost"], m["elo1"], m["elo2"]) for m in self.played]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--games", type=int, default=6)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--every", type=int, default=512, help="training steps between snapshots")
    p.add_argument("--modes", default="sequential,pool,ray")
    p.add_argument("--workers", type=int, default=None, help="the local pool's size (default: the cores)")
    p.add_argument("--cpus-per-node", type=int, default=1, help="CPUs of each of the Ray cluster's two nodes")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    os.environ["DEEPRL_HOME"] = str(OUT / "home")
    os.environ.pop("RAY_ADDRESS", None)
    from deeprl.dispatch import DispatchOptions, cores, dispatching

    t0 = time.perf_counter()
    names = snapshots(args.agents, args.every, args.seed)
    print(f"{len(names)} snapshots trained and pushed ({time.perf_counter() - t0:.0f} s)", flush=True)
    address = None
    with contextlib.ExitStack() as stack:
        if "ray" in modes:
            sys.path.insert(0, str(TESTS))
            from test_ray import two_node_cluster

            t1 = time.perf_counter()
            address = stack.enter_context(two_node_cluster(args.cpus_per_node, connect=False))
            print(f"two-node Ray cluster up at {address} ({time.perf_counter() - t1:.0f} s, not counted)", flush=True)
        runs = []
        for name in modes:
            if name == "ray":
                options = DispatchOptions(ray=address)
            else:
                options = DispatchOptions(workers=1 if name == "sequential" else args.workers)
            mode = Mode(name, options, args)
            t1 = time.perf_counter()
            stack.enter_context(dispatching(options))  # the Ray connection: counted in the Ray figures
            mode.seconds += time.perf_counter() - t1
            runs.append(mode)
        # the modes take turns round by round, so a change in the machine's load falls on all of them alike
        for r in range(args.rounds):
            for mode in runs:
                mode.round()
                print(
                    f"round {r + 1}  {mode.name:<11} {len(mode.played):>4} matches so far, {mode.seconds:7.1f} s",
                    flush=True,
                )
    summaries = [m.summary() for m in runs]
    same = all(m.results() == runs[0].results() for m in runs)
    print()
    print(f"{'mode':<11} {'ran on':<16} {'matches':>7} {'seconds':>8} {'matches/min':>12}")
    for r in summaries:
        print(f"{r['mode']:<11} {r['ran_on']:<16} {r['matches']:>7} {r['seconds']:>8.1f} {r['matches_per_min']:>12.2f}")
    by_mode = {r["mode"]: r for r in summaries}
    overhead = None
    if "pool" in by_mode and "ray" in by_mode:
        overhead = by_mode["pool"]["matches_per_min"] / by_mode["ray"]["matches_per_min"] - 1
        print(f"Ray's overhead against the pool: {100 * overhead:+.1f} % (goal < 10 %)")
    print(f"same matches and results in every mode: {'yes' if same else 'NO'}")
    out = {
        "agents": len(names),
        "rounds": args.rounds,
        "games_per_match": args.games,
        "max_steps": args.max_steps,
        "cores": cores(),
        "load_average": os.getloadavg(),
        "runs": summaries,
        "ray_overhead_vs_pool": overhead,
        "same_results": same,
    }
    (OUT / "bench_dispatch.json").write_text(json.dumps(out, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
