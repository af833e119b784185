"""One league match, played in a limited child: `python -m deeprl.league.game MODEL1 MODEL2 [options]`.

The parent (runner.py) stages read-only copies of both models and runs this under the leaderboard's limits
(deeprl.leaderboard.sandbox.run_child). It prints one JSON line:

    {"match": {"won": .., "drawn": .., "lost": .., "result": 1 | 0.5 | 0, "mean_length": .., "replay": path|null}}
    {"forfeit": [1] | [2] | [1, 2], "error": "why"}

A match is a best-of-N set: N games side by side from one seed, model1 blue in the even games and purple in the
odd ones, actions sampled (as ML-Agents plays its models) from seeded generators, so the same match gives the
same result. The set's result is model1's: more games won than lost is 1, as many is 0.5, fewer is 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from deeprl.envs.soccer import SoccerCore, Team


class Blamed(Exception):
    """A team failed while playing: `side` is 1 or 2, the model to blame."""

    def __init__(self, side: int, why: str):
        super().__init__(why)
        self.side = side


class Guarded:
    """A team whose failure names its model rather than ending the match without a culprit."""

    def __init__(self, team: Team, side: int):
        self.team, self.side = team, side

    def act(self, obs: np.ndarray, core: SoccerCore, side: np.ndarray) -> np.ndarray:
        import numpy as np

        try:
            actions = np.asarray(self.team.act(obs, core, side))
        except Exception as exc:
            raise Blamed(self.side, f"it failed while playing ({type(exc).__name__}: {str(exc)[:200]})") from None
        if actions.shape != (obs.shape[0], 2, 3):
            raise Blamed(self.side, f"it returned actions of shape {actions.shape}, not {(obs.shape[0], 2, 3)}")
        return actions


def load(folder: str, side: int) -> Guarded:
    """A SoccerTwos team from a model folder; Blamed when it cannot play."""
    from deeprl.agent import load_agent
    from deeprl.envs import soccer

    try:
        agent = load_agent(folder)
    except Exception as exc:  # a broken upload is that model's forfeit, whatever the reason
        raise Blamed(side, f"its model could not be loaded ({str(exc)[:300]})") from None
    if agent.env_id != "SoccerTwos":
        raise Blamed(side, f"it was trained on {str(agent.env_id)[:100]}, not SoccerTwos")
    return Guarded(soccer.PolicyTeam(agent, name=f"model{side}", deterministic=False), side)


def set_result(won: int, lost: int) -> float:
    return 1.0 if won > lost else 0.0 if won < lost else 0.5


def play(folder1: str, folder2: str, *, games: int, seed: int, max_steps: int, replay: str | None) -> dict:
    import numpy as np
    import torch

    from deeprl.envs import soccer

    torch.manual_seed(seed)
    np.random.seed(seed)
    teams, failed = [], {}
    for side, folder in ((1, folder1), (2, folder2)):
        try:
            teams.append(load(folder, side))
        except Blamed as exc:
            failed[exc.side] = str(exc)
    if failed:
        return {"forfeit": sorted(failed), "error": "; ".join(f"model{k}: {v}" for k, v in sorted(failed.items()))}
    frames: list[np.ndarray] | None = [] if replay else None
    try:
        r = soccer.play_matches(
            teams[0],
            teams[1],
            games,
            seed=seed,
            max_steps=max_steps,
            on_frame=frames.append if frames is not None else None,
        )
    except Blamed as exc:
        return {"forfeit": [exc.side], "error": f"model{exc.side}: {exc}"}
    if replay and frames:
        from deeprl.video import write_video

        write_video(frames, replay, 1 / soccer.DT)
    return {
        "match": {
            "won": r["wins"],
            "drawn": r["draws"],
            "lost": r["losses"],
            "result": set_result(r["wins"], r["losses"]),
            "mean_length": r["mean_length"],
            "replay": replay if replay and frames else None,
        }
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deeprl.league.game")
    p.add_argument("model1")
    p.add_argument("model2")
    p.add_argument("--games", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--replay", default=None, help="write the first game's replay here (MP4)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = play(args.model1, args.model2, games=args.games, seed=args.seed, max_steps=args.max_steps, replay=args.replay)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
