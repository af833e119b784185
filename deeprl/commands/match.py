"""`deeprl match A B`: AI vs AI SoccerTwos matches between two models (or the built-in scripted/random teams)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from deeprl.commands import seed

if TYPE_CHECKING:
    import numpy as np

    from deeprl.envs.soccer import Team


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("match", help="play SoccerTwos matches between two models and rate them by Elo")
    p.add_argument(
        "model_a",
        metavar="MODEL_A",
        help="run folder, model folder, NAMESPACE/NAME repo id, or a built-in team: scripted, random, still",
    )
    p.add_argument("model_b", metavar="MODEL_B", help="the opponent, in the same forms")
    p.add_argument("--n-matches", type=int, default=20, help="matches to play (A is blue in every other one)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="decisions before a match is a draw (default 500)")
    p.add_argument(
        "--deterministic", action="store_true", help="argmax actions (default: sampled, as ML-Agents plays its models)"
    )
    p.add_argument("--record", metavar="OUT.mp4", default=None, help="write a replay of the first match (H.264)")
    p.add_argument("--elo-a", type=float, default=None, help="A's rating before the matches (default 1200)")
    p.add_argument("--elo-b", type=float, default=None, help="B's rating before the matches (default 1200)")
    p.add_argument("--k", type=float, default=None, help="Elo K-factor (default 16, the course's example)")
    p.add_argument("--revision", default=None, help="hub revision for repo ids")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def load_team(target: str, *, seed: int, deterministic: bool, revision: str | None = None) -> Team:
    """A built-in team by name, or a learned SoccerTwos agent wrapped to play both players of its team."""
    from deeprl.envs import soccer
    from deeprl.errors import UserError

    if target in soccer.BUILTIN_TEAMS:
        return soccer.builtin_team(target, seed)
    from deeprl.agent import load_agent

    agent = load_agent(target, revision=revision)
    if agent.env_id != "SoccerTwos":
        raise UserError(f"{target} was trained on {agent.env_id}, not SoccerTwos; only SoccerTwos models play matches.")
    return soccer.PolicyTeam(agent, name=str(target), deterministic=deterministic)


def write_replay(frames: list[np.ndarray], out: str | Path, fps: float) -> None:
    from deeprl.video import write_video

    write_video(frames, out, fps)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deeprl import elo
    from deeprl.commands import print_json
    from deeprl.envs import soccer
    from deeprl.errors import UserError

    if args.n_matches < 1:
        raise UserError("--n-matches must be at least 1.")
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError("--max-steps must be at least 1.")
    if args.record and Path(args.record).suffix.lower() != ".mp4":
        raise UserError(f"{args.record} should end in .mp4 (replays are H.264 MP4 files).")
    k = elo.K_FACTOR if args.k is None else args.k
    if k <= 0:
        raise UserError("--k must be positive.")
    team_a = load_team(args.model_a, seed=args.seed, deterministic=args.deterministic, revision=args.revision)
    team_b = load_team(args.model_b, seed=args.seed + 1, deterministic=args.deterministic, revision=args.revision)
    frames: list[np.ndarray] | None = [] if args.record else None
    result = soccer.play_matches(
        team_a,
        team_b,
        args.n_matches,
        seed=args.seed,
        max_steps=args.max_steps or soccer.MAX_STEPS,
        on_frame=frames.append if frames is not None else None,
    )
    ra0 = elo.INITIAL_ELO if args.elo_a is None else args.elo_a
    rb0 = elo.INITIAL_ELO if args.elo_b is None else args.elo_b
    ra, rb = elo.update_many(ra0, rb0, result["results"], k=k)
    out = {
        "model_a": args.model_a,
        "model_b": args.model_b,
        **result,
        "elo": {
            "k": k,
            "a_before": ra0,
            "b_before": rb0,
            "a_after": ra,
            "b_after": rb,
            "a_change": ra - ra0,
            "b_change": rb - rb0,
        },
    }
    if frames is not None:  # (--record)
        Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        write_replay(frames, args.record, fps=1 / soccer.DT)
        out["replay"] = str(args.record)
    if args.json:
        print_json(out)
        return 0
    n = result["n_matches"]
    print(
        f"{args.model_a} vs {args.model_b}: {result['wins']} wins, {result['draws']} draws, {result['losses']} losses "
        f"for {args.model_a} in {n} match{'es' if n != 1 else ''} (mean length {result['mean_length']:.0f} steps)"
    )
    print(
        f"Elo (K={k:g}): {args.model_a} {ra0:.0f} -> {ra:.1f} ({ra - ra0:+.1f}), "
        f"{args.model_b} {rb0:.0f} -> {rb:.1f} ({rb - rb0:+.1f})"
    )
    if args.record:
        print(f"replay of the first match: {args.record}")
    return 0
