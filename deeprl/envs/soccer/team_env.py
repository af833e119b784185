"""SoccerTwos as a single-agent Gymnasium env: one team against a fixed one, for the env registry.

`make_env("SoccerTwos")` builds it (registry.py calls `make`), so `deeprl evaluate` and replays treat a soccer
team like any other agent.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from deeprl.envs.soccer.core import DT, MAX_STEPS, N_AGENTS, OBS_SIZE, SoccerCore
from deeprl.envs.soccer.render import frame
from deeprl.envs.soccer.teams import BUILTIN_TEAMS, builtin_team


class SoccerTeamEnv(gym.Env):
    """One team (blue) against a fixed opponent: observation (2, 336) for both players, action (2, 3).

    This is what `make_env("SoccerTwos")` builds, so the one evaluation protocol applies: an episode is a
    match, its return is +1 minus the time penalty for a win, -1 for a loss and 0 for a draw. A learned
    soccer agent's `act` takes one player's observation or a batch of them, so it plays both players.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / DT))}

    def __init__(self, opponent: str = "scripted", max_steps: int = MAX_STEPS, render_mode: str | None = None):
        if opponent not in BUILTIN_TEAMS:
            raise ValueError(f"opponent must be one of {', '.join(BUILTIN_TEAMS)}, not {opponent!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        self.opponent_name, self.render_mode = opponent, render_mode
        self.opponent = builtin_team(opponent)
        self.core = SoccerCore(1, max_steps=int(max_steps))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(2, OBS_SIZE), dtype=np.float32)
        self.action_space = spaces.MultiDiscrete(np.full((2, 3), 3))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.core.seed(seed)
            self.opponent = builtin_team(self.opponent_name, seed)
        self.core.reset()
        return self.core.observe()[0, :2].copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs = self.core.observe()
        arr = np.zeros((1, N_AGENTS, 3), dtype=np.int64)
        arr[0, :2] = np.asarray(action, dtype=np.int64).reshape(2, 3)
        arr[0, 2:] = self.opponent.act(obs[:, 2:], self.core, np.array([1]))[0]
        rewards, term, trunc, scorer = self.core.step(arr)
        info = {}
        if term[0] or trunc[0]:
            info["result"] = "draw" if trunc[0] else ("win" if scorer[0] == 0 else "loss")
        return self.core.observe()[0, :2].copy(), float(rewards[0, 0]), bool(term[0]), bool(trunc[0]), info

    def render(self) -> np.ndarray | None:
        return frame(self.core, 0) if self.render_mode == "rgb_array" else None


def make(kwargs: dict, render_mode: str | None = None, training: bool = False) -> SoccerTeamEnv:
    """Registry builder: the team env against the scripted team (env kwargs: opponent, max_steps)."""
    return SoccerTeamEnv(render_mode=render_mode, **kwargs)
