"""League throughput one by one, in the local pool and on a two-node Ray cluster (issue 18, item 4):

    python benchmarks/bench_dispatch.py [--agents 32] [--rounds 3] [--games 6] [--max-steps 500] [--every 512]
                                        [--modes sequential,pool,ray] [--workers N] [--cpus-per-node 1]

Trains one small self-play run, keeping the model every `--every` steps (the run is resumed to each next step
count), pushes the `--agents` snapshots to a fresh local hub, and plays the same league (`--rounds` rounds, the
same queue seed) three times, each into a database of its own: one match at a time (sequential), in the local
pool (`--workers`, default the cores), and as Ray tasks on a cluster of two nodes started on this machine
(`ray start --head` plus `ray start --address`, `--cpus-per-node` CPUs each; torn down after). Prints matches
per minute side by side, Ray's overhead against the pool, and whether all three played the same matches with
the same results (they must). The cluster's start is not counted; connecting to it is (once, as
`deeprl league run --ray` does). Files go to benchmarks/out/dispatch/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

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
    """Train, push each snapshot as bench/step-NNNNNNN; their names."""
    from deeprl.hub import get_hub
    from deeprl.train import train

    hub = get_hub("local")
    names = []
    for i in range(1, n + 1):
        run = train(
            "selfplay",
            "SoccerTwos",
            seed=seed,
            log_folder=OUT / "logs",
            n_timesteps=i * every,
            overrides=HYPERPARAMS,
            device="cpu",
            resume=i > 1,
            show_progress=False,
        )
        trained = json.loads((run.run_dir / "config.json").read_text())["trained"]["timesteps"]
        snap = OUT / "snapshots" / f"step-{trained:07d}"
        snap.mkdir(parents=True)
        for name in ("config.json", "model.safetensors"):
            shutil.copy2(run.run_dir / name, snap / name)
        (snap / "README.md").write_text(CARD.format(name=snap.name))
        hub.push(snap, f"bench/{snap.name}", f"snapshot at {trained} steps")
        names.append(f"bench/{snap.name}")
    return names


def league(mode: str, options: object, args: argparse.Namespace) -> dict:
    """`args.rounds` rounds into a fresh database; matches, seconds, and every match's result."""
    from deeprl.dispatch import DispatchOptions, dispatching
    from deeprl.league.runner import Settings, run_round

    assert isinstance(options, DispatchOptions)
    url = f"sqlite:///{OUT / (mode + '.db')}"
    settings = Settings(games=args.games, max_steps=args.max_steps, replays=False, dispatch=options)
    rng = random.Random(args.seed)
    played, ran_on = [], ""
    t0 = time.perf_counter()
    with dispatching(options):  # one connection for all rounds, as `deeprl league run --ray` holds it
        for _ in range(args.rounds):
            report = run_round(url=url, settings=settings, rng=rng)
            played += report.played
            ran_on = report.ran_on or ran_on
    seconds = time.perf_counter() - t0
    return {
        "mode": mode,
        "ran_on": ran_on,
        "matches": len(played),
        "seconds": round(seconds, 2),
        "matches_per_min": round(60 * len(played) / seconds, 2),
        "results": [(m["model1"], m["model2"], m["won"], m["drawn"], m["lost"], m["elo1"], m["elo2"]) for m in played],
    }


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
    from deeprl.dispatch import DispatchOptions, cores

    t0 = time.perf_counter()
    names = snapshots(args.agents, args.every, args.seed)
    print(f"{len(names)} snapshots trained and pushed ({time.perf_counter() - t0:.0f} s)", flush=True)
    runs = []
    for mode in modes:
        if mode == "ray":
            sys.path.insert(0, str(TESTS))
            from test_ray import two_node_cluster

            t1 = time.perf_counter()
            with two_node_cluster(args.cpus_per_node, connect=False) as address:
                started = time.perf_counter() - t1
                print(f"two-node Ray cluster up at {address} ({started:.0f} s, not counted)", flush=True)
                runs.append(league(mode, DispatchOptions(ray=address), args))
        else:
            workers = 1 if mode == "sequential" else args.workers
            runs.append(league(mode, DispatchOptions(workers=workers), args))
        r = runs[-1]
        print(f"{r['mode']:<11} {r['ran_on']:<16} {r['matches']:>4} matches in {r['seconds']:7.1f} s", flush=True)
    same = all(r["results"] == runs[0]["results"] for r in runs)
    print()
    print(f"{'mode':<11} {'ran on':<16} {'matches':>7} {'seconds':>8} {'matches/min':>12}")
    for r in runs:
        print(f"{r['mode']:<11} {r['ran_on']:<16} {r['matches']:>7} {r['seconds']:>8.1f} {r['matches_per_min']:>12.2f}")
    by_mode = {r["mode"]: r for r in runs}
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
        "runs": [{k: v for k, v in r.items() if k != "results"} for r in runs],
        "ray_overhead_vs_pool": overhead,
        "same_results": same,
    }
    (OUT / "bench_dispatch.json").write_text(json.dumps(out, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
