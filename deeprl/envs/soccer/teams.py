"""SoccerTwos teams that are not learned (scripted, random, still), a learned agent as a team, and matches.

A team is anything with `act(obs, core, side) -> (n, 2, 3)` actions for its two players in each of n matches:
`obs` holds its players' observations (n, 2, 336), `side` which side it plays in each match (0 blue, 1 purple).
`play_matches` plays two teams against each other over a batch of matches (`deeprl match`, the benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from deeprl.envs.soccer.core import AGENT_RADIUS, BALL_RADIUS, FIELD_LENGTH, MAX_STEPS, N_AGENTS, OBS_SIZE, SoccerCore
from deeprl.envs.soccer.render import frame


def team_slots(side: np.ndarray) -> np.ndarray:
    """Agent indices (n, 2) of the team playing `side` (0 blue, 1 purple) in each match."""
    return np.where(np.asarray(side)[:, None] == 0, np.array([0, 1]), np.array([2, 3]))


def scripted_actions(core: SoccerCore, side: np.ndarray) -> np.ndarray:
    """The baseline team (n, 2, 3): each player runs to the spot behind the ball on the line from the opposing
    goal, turns to face the goal and runs through the ball, which kicks it goalwards. The player farther from
    the ball lines up a little deeper, so the two do not pile into each other."""
    side = np.asarray(side)
    n = core.n
    rows = np.arange(n)[:, None]
    slots = team_slots(side)
    pos, angle = core.pos[rows, slots], core.angle[rows, slots]  # (n, 2, 2), (n, 2)
    ball = core.ball[:, None, :]
    goal = np.stack([np.where(side == 0, FIELD_LENGTH / 2, -FIELD_LENGTH / 2), np.zeros(n)], -1)[:, None, :]
    u = goal - ball
    u /= np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-9)
    perp = np.stack([-u[..., 1], u[..., 0]], -1)
    rel = pos - ball
    along, across = (rel * u).sum(-1), (rel * perp).sum(-1)
    dist = np.linalg.norm(rel, axis=-1)
    support = dist > dist[:, ::-1]  # the farther player of the two
    depth = np.where(support, 2.0, AGENT_RADIUS + BALL_RADIUS + 0.2)[..., None]
    lined_up = (along < -0.3) & (np.abs(across) < 0.5) & ~support
    # on the wrong side of the ball: go round it rather than through it
    side_step = np.where(along > -0.3, np.sign(across + 1e-6) * 1.2, 0.0)[..., None]
    target = np.where(lined_up[..., None], ball + u, ball - u * depth + perp * side_step)
    d = target - pos
    err = (np.arctan2(d[..., 1], d[..., 0]) - angle + np.pi) % (2 * np.pi) - np.pi
    out = np.zeros((n, 2, 3), dtype=np.int64)
    out[..., 0] = np.where((np.abs(err) < 0.6) & (np.linalg.norm(d, axis=-1) > 0.15), 1, 0)
    out[..., 2] = np.where(err > 0.15, 1, np.where(err < -0.15, 2, 0))
    return out


class Team(Protocol):
    """What plays a side (see the module's doc)."""

    def act(self, obs: np.ndarray, core: SoccerCore, side: np.ndarray) -> np.ndarray: ...


class ScriptedTeam:
    name = "scripted"

    def act(self, obs: np.ndarray, core: SoccerCore, side: np.ndarray) -> np.ndarray:
        return scripted_actions(core, side)


class RandomTeam:
    name = "random"

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, core: SoccerCore, side: np.ndarray) -> np.ndarray:
        return self.rng.integers(0, 3, size=(obs.shape[0], 2, 3))


class StillTeam:
    name = "still"

    def act(self, obs: np.ndarray, core: SoccerCore, side: np.ndarray) -> np.ndarray:
        return np.zeros((obs.shape[0], 2, 3), dtype=np.int64)


class PolicyTeam:
    """A learned agent playing both members of its team with one shared policy (its act takes any batch)."""

    def __init__(self, agent: Any, name: str = "model", deterministic: bool = False):
        self.agent, self.name, self.deterministic = agent, name, deterministic

    def act(self, obs: np.ndarray, core: SoccerCore, side: np.ndarray) -> np.ndarray:
        n = obs.shape[0]
        return np.asarray(self.agent.act(obs.reshape(n * 2, OBS_SIZE), deterministic=self.deterministic)).reshape(
            n, 2, 3
        )


BUILTIN_TEAMS = {"scripted": ScriptedTeam, "random": RandomTeam, "still": StillTeam}


def builtin_team(name: str, seed: int | None = None) -> Team:
    return RandomTeam(seed) if name == "random" else BUILTIN_TEAMS[name]()


# ----------------------------------------------------------------------------------------------------------
# Matches


def play_matches(
    team_a: Team,
    team_b: Team,
    n_matches: int,
    *,
    seed: int = 0,
    max_steps: int = MAX_STEPS,
    on_frame: Callable[[np.ndarray], Any] | None = None,
) -> dict:
    """Play `n_matches` matches of A against B side by side (A is blue in even matches, purple in odd ones).

    A match ends on the first goal (a win for the scorer) or at `max_steps` (a draw). `on_frame(rgb)` sees
    every frame of the first match until it ends (replays). Returns counts and per-match results from A's side;
    `own_goals` counts A's losses where A made the ball's last touch (`opponent_own_goals` the same for B).
    """
    core = SoccerCore(n_matches, max_steps=max_steps, seed=seed)
    side_a = np.arange(n_matches) % 2
    side_b = 1 - side_a
    slots_a, slots_b = team_slots(side_a), team_slots(side_b)
    rows = np.arange(n_matches)[:, None]
    result = np.full(n_matches, -1, dtype=np.int64)  # 1 win, 0.5->2 draw, 0 loss (from A's side)
    length = np.zeros(n_matches, dtype=np.int64)
    last_touch = np.full(n_matches, -1)  # 0: A's team made the latest touch, 1: B's (A's wins first if both)
    if on_frame:
        on_frame(frame(core, 0))
    while not core.done.all():
        obs = core.observe()
        actions = np.zeros((n_matches, N_AGENTS, 3), dtype=np.int64)
        actions[rows, slots_a] = team_a.act(obs[rows, slots_a], core, side_a)
        actions[rows, slots_b] = team_b.act(obs[rows, slots_b], core, side_b)
        was_done = core.done.copy()
        _, term, trunc, scorer = core.step(actions)
        if on_frame and not was_done[0]:
            on_frame(frame(core, 0))
        touch_a, touch_b = (
            core.touched[rows, slots_a].any(1) & ~was_done,
            core.touched[rows, slots_b].any(1) & ~was_done,
        )
        last_touch[touch_b] = 1
        last_touch[touch_a] = 0
        result[term] = np.where(scorer[term] == side_a[term], 1, 0)
        result[trunc] = 2
        length[term | trunc] = core.t[term | trunc]
    names = {1: "win", 2: "draw", 0: "loss"}
    return {
        "n_matches": int(n_matches),
        "wins": int((result == 1).sum()),
        "draws": int((result == 2).sum()),
        "losses": int((result == 0).sum()),
        "results": [names[int(r)] for r in result],
        "own_goals": int(((result == 0) & (last_touch == 0)).sum()),
        "opponent_own_goals": int(((result == 1) & (last_touch == 1)).sum()),
        "mean_length": float(length.mean()),
        "seed": seed,
    }
