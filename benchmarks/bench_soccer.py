"""SoccerTwos benchmarks (issue 9).

    python benchmarks/bench_soccer.py speed                 # array-core agent-steps per second on one core
    python benchmarks/bench_soccer.py train [--n-timesteps N] [--minutes M] [--seed S]
                                                            # self-play training (BENCH_HYPERPARAMS), then 200
                                                            # matches vs random and vs scripted, and the Elo PNG
    python benchmarks/bench_soccer.py eval RUN_DIR [--deterministic] [--match-seed K]
                                                            # only the matches and the curve for a finished run

Targets: >= 50,000 agent-steps/s; the trained team wins >= 95 % of 200 matches against the random team and
>= 60 % against the scripted team. Figures print on stdout; files go to benchmarks/out/ (gitignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
# The benchmark run's settings on top of ML-Agents' SoccerTwos ones (deeprl/hyperparams/selfplay.yml), all of
# them opt-in options of the trainer: a smaller network (a CPU budget), the two potential-based shaping terms,
# the own-goal penalty (most lost matches were own goals: at 1.0 it halved the losses to the random team in 3M
# steps; 2.0 did better still from there, 93.5 % against 89.5 % after 6M more),
# the critic over both teammates, and a share of matches against the fixed teams (a curriculum beside the
# snapshot pool, whose schedule stays ML-Agents').
BENCH_HYPERPARAMS = {
    "hidden_units": 128,
    "ball_progress": 1.0,
    "ball_approach": 0.5,
    "own_goal": 2.0,
    "centralized_critic": True,
    "scripted_opponent_ratio": 0.3,
    "random_opponent_ratio": 0.2,
}


def speed(n_matches=(16, 64, 256, 1024), seconds: float = 3.0) -> dict:
    """Random actions through the array core: step + observe + reset of finished matches, as training does."""
    from deeprl.envs.soccer import N_AGENTS, SoccerCore

    figures = {}
    for n in n_matches:
        core = SoccerCore(n, seed=0)
        rng = np.random.default_rng(0)
        actions = rng.integers(0, 3, size=(64, n, N_AGENTS, 3))
        steps, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            core.step(actions[steps % 64])
            core.observe()
            core.reset(core.done)
            steps += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rate, cpu_rate = steps * n * N_AGENTS / wall, steps * n * N_AGENTS / cpu
        figures[n] = (rate, cpu_rate)
        # per CPU-second too: on a shared machine the wall-clock rate also measures the neighbours
        print(f"SoccerCore n_matches={n:5d}: {rate:12,.0f} agent-steps/s wall, {cpu_rate:12,.0f} per CPU-second")
    best, best_cpu = max(r for r, _ in figures.values()), max(c for _, c in figures.values())
    # one process on one core: per CPU-second is the figure the goal means when neighbours share the cores
    print(
        f"best: {best:,.0f} agent-steps/s wall, {best_cpu:,.0f} per CPU-second (goal >= 50,000 on one core): "
        f"{'PASS' if best_cpu >= 50_000 else 'FAIL'}"
    )
    return figures


def evaluate_run(run_dir: Path, n_matches: int = 200, seed: int = 12345, deterministic: bool = False) -> dict:
    from deeprl.agent import load_agent
    from deeprl.envs.soccer import PolicyTeam, RandomTeam, ScriptedTeam, play_matches

    agent = load_agent(run_dir)
    team = PolicyTeam(agent, "trained", deterministic=deterministic)
    print(f"matches with {'argmax' if deterministic else 'sampled'} actions for the trained team")
    ref = play_matches(ScriptedTeam(), RandomTeam(seed), n_matches, seed=seed)
    print(f"reference, scripted vs random: {ref['wins']} wins, {ref['draws']} draws, {ref['losses']} losses")
    out = {"scripted_vs_random": {k: ref[k] for k in ("wins", "draws", "losses")}, "deterministic": deterministic}
    for name, opp in (("random", RandomTeam(seed)), ("scripted", ScriptedTeam())):
        r = play_matches(team, opp, n_matches, seed=seed)
        rate = r["wins"] / n_matches
        goal = 0.95 if name == "random" else 0.60
        out[name] = {k: r[k] for k in ("wins", "draws", "losses", "own_goals", "opponent_own_goals", "mean_length")} | {
            "win_rate": rate
        }
        print(
            f"trained vs {name:8s}: {r['wins']} wins, {r['draws']} draws, {r['losses']} losses of {n_matches} "
            f"-> win rate {rate:.1%} (goal >= {goal:.0%}): {'PASS' if rate >= goal else 'FAIL'}; "
            f"losses after our own last touch: {r['own_goals']}"
        )
    return out


def elo_curve(run_dir: Path, png: Path) -> list:
    """Self-play Elo over training, read back from the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    if "self_play/elo" not in acc.Tags().get("scalars", []):
        print("no self_play/elo scalars in the run's TensorBoard logs")
        return []
    points = [(e.step, e.value) for e in acc.Scalars("self_play/elo")]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # below the Elo (relative to the run's own snapshots, so it drifts): the rolling win rates against the fixed
    # teams, which are on one scale over the whole run
    rates = {
        name: acc.Scalars(f"self_play/win_rate_vs_{name}")
        for name in ("random", "scripted")
        if f"self_play/win_rate_vs_{name}" in acc.Tags()["scalars"]
    }
    fig, axes = plt.subplots(2 if rates else 1, 1, figsize=(7, 6.5 if rates else 4), sharex=True, squeeze=False)
    ax = axes[0, 0]
    ax.plot([p[0] for p in points], [p[1] for p in points], color="tab:blue")
    ax.axhline(1200, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("Elo (vs own snapshots)")
    ax.set_title("SoccerTwos self-play PPO")
    if rates:
        low = axes[1, 0]
        for name, events in rates.items():
            low.plot([e.step for e in events], [e.value for e in events], lw=0.8, label=f"vs {name} (last 100 matches)")
        low.set_ylim(0, 1)
        low.set_ylabel("win rate in training")
        low.legend(loc="lower right")
    axes[-1, 0].set_xlabel("learning-team agent steps")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    print(f"Elo curve: {png} (from {points[0][1]:.0f} to {points[-1][1]:.0f}, max {max(p[1] for p in points):.0f})")
    return points


def train(minutes: float, seed: int, n_timesteps: int, extra: list[str]) -> Path:
    import torch

    from deeprl.train import parse_overrides, train as run_training

    torch.set_num_threads(1)
    overrides = BENCH_HYPERPARAMS | parse_overrides(extra) | {"max_minutes": minutes}
    print("hyperparams over selfplay.yml:", " ".join(f"{k}:{v}" for k, v in overrides.items()))
    t0, c0 = time.perf_counter(), time.process_time()
    run = run_training(
        "selfplay",
        "SoccerTwos",
        seed=seed,
        log_folder=OUT / "logs",
        n_timesteps=n_timesteps,
        overrides=overrides,
        device="cpu",
    )
    cfg = json.loads((run.run_dir / "config.json").read_text())
    print(
        f"trained {cfg['trained'].get('timesteps')} learning-team agent steps in {time.perf_counter() - t0:,.0f} s "
        f"wall, {time.process_time() - c0:,.0f} CPU-seconds -> {run.run_dir}"
    )
    return run.run_dir


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("speed")
    t = sub.add_parser("train")
    t.add_argument("--minutes", type=float, default=None, help="wall-clock cap on training (default: none)")
    # 44M steps: about an hour of one core (the fresh run of the note: 98 % vs random, 91 % vs scripted)
    t.add_argument("--n-timesteps", type=int, default=44_000_000, help="training budget in learning-team agent steps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--hyperparams", nargs="*", default=[], help="key:value overrides")
    e = sub.add_parser("eval")
    e.add_argument("run_dir")
    for q in (t, e):
        q.add_argument("--deterministic", action="store_true", help="argmax actions in the matches (default sampled)")
        q.add_argument("--match-seed", type=int, default=12345, help="seed of the 200 matches and the random team")
    args = p.parse_args(argv)
    if args.what == "speed":
        speed()
        return 0
    run_dir = (
        train(args.minutes, args.seed, args.n_timesteps, args.hyperparams)
        if args.what == "train"
        else Path(args.run_dir)
    )
    figures = evaluate_run(run_dir, seed=args.match_seed, deterministic=args.deterministic)
    elo_curve(run_dir, OUT / "soccer_elo.png")
    (OUT / "soccer_results.json").write_text(json.dumps({"run_dir": str(run_dir), **figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
