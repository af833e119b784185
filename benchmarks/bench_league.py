"""League benchmark (issue 18): do the league's ratings mean something?

    python benchmarks/bench_league.py [--snapshots 8] [--every 20480] [--spacing geometric|even] [--rounds 16]

Trains one self-play run (bench_soccer's settings), keeping the model at `--every` * 1, 2, 4, 8, ... steps
(`--spacing geometric`, the default) or at `--every` * 1, 2, 3, ... (`even`); the run is resumed to each next step
count, pushes each snapshot to a fresh local hub as bench/step-NNNNNNN, plays `--rounds`
league rounds (the real league: matchmaking, limited child, stored matches, K = 20), and prints the league's
ranking against training step with Spearman's rho. Target: rho >= 0.8. Files go to benchmarks/out/league/.
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

OUT = Path(__file__).resolve().parent / "out" / "league"
CARD = "---\nlibrary_name: deeprl\ntags:\n- ML-Agents-SoccerTwos\n- reinforcement-learning\n---\n# {name}\n"


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def snapshot_steps(n: int, every: int, spacing: str) -> list[int]:
    """The step counts to keep: every * 2**i (geometric: a run improves fastest early, so even spacing late in a run
    compares snapshots that are about equally strong) or every * (i + 1)."""
    return [every * (2**i if spacing == "geometric" else i + 1) for i in range(n)]


def push_snapshots(out: Path, steps: list[int], seed: int, hyperparams: dict):
    """Train one self-play run to each step count in turn (resumed each time), pushing each model to the local hub
    as bench/step-NNNNNNN; yields (steps trained, repo id) as each is pushed. Shared with bench_dispatch.py."""
    from deeprl.hub import get_hub
    from deeprl.train import train

    hub = get_hub("local")
    for i, n_timesteps in enumerate(steps):
        run = train(
            "selfplay",
            "SoccerTwos",
            seed=seed,
            log_folder=out / "logs",
            n_timesteps=n_timesteps,
            overrides=hyperparams,
            device="cpu",
            resume=i > 0,
            show_progress=False,
        )
        trained = json.loads((run.run_dir / "config.json").read_text())["trained"]["timesteps"]
        snap = out / "snapshots" / f"step-{trained:07d}"
        snap.mkdir(parents=True)
        for name in ("config.json", "model.safetensors"):
            shutil.copy2(run.run_dir / name, snap / name)
        (snap / "README.md").write_text(CARD.format(name=snap.name))
        hub.push(snap, f"bench/{snap.name}", f"snapshot at {trained} steps")
        yield trained, f"bench/{snap.name}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--snapshots", type=int, default=8)
    p.add_argument("--every", type=int, default=20480, help="steps of the first snapshot (one update is 20,480)")
    p.add_argument("--spacing", choices=("geometric", "even"), default="geometric")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--games", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_soccer import BENCH_HYPERPARAMS

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    os.environ["DEEPRL_HOME"] = str(OUT / "home")
    from deeprl.league import table
    from deeprl.league.runner import Settings, run_round

    t0 = time.perf_counter()
    steps = []
    for trained, _ in push_snapshots(
        OUT, snapshot_steps(args.snapshots, args.every, args.spacing), args.seed, BENCH_HYPERPARAMS
    ):
        steps.append(trained)
        print(f"snapshot at {trained} steps ({time.perf_counter() - t0:.0f} s)", flush=True)
    train_s = time.perf_counter() - t0
    rng = random.Random(args.seed)
    t1 = time.perf_counter()
    matches = 0
    for _ in range(args.rounds):
        report = run_round(settings=Settings(games=args.games, replays=False), rng=rng)
        matches += len(report.played)
    league_s = time.perf_counter() - t1
    rows = [r for r in table() if r["rank"]]
    by_model = {r["model"]: r for r in rows}
    pairs = [(int(m.split("-")[-1]), by_model[m]["elo"]) for m in by_model]
    rho = spearman([s for s, _ in pairs], [e for _, e in pairs])
    for r in rows:
        print(
            f"{r['rank']:>2}  {r['model']:<22} elo {r['elo']:7.1f}  games {r['games_played']:>3}  "
            f"{r['wins']}-{r['draws']}-{r['losses']}"
        )
    out = {
        "snapshots": steps,
        "spacing": args.spacing,
        "rounds": args.rounds,
        "matches": matches,
        "games_per_match": args.games,
        "spearman_rank_vs_step": rho,
        "train_seconds": round(train_s, 1),
        "league_seconds": round(league_s, 1),
        "table": [{k: r[k] for k in ("rank", "model", "elo", "games_played", "wins", "draws", "losses")} for r in rows],
    }
    for folder in (OUT, OUT.parent.parent / "results"):
        (folder / "bench_league.json").write_text(json.dumps(out, indent=1))
    print(
        f"Spearman rho (league rating vs training step) = {rho:.3f} over {len(pairs)} snapshots, "
        f"{matches} matches in {league_s:.0f} s (target >= 0.8)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
