"""SoccerTwos as a PettingZoo environment: one match, four agents (blue_0, blue_1, purple_0, purple_1).

`parallel_env()` is the ParallelEnv (every agent acts each step, as ML-Agents' SoccerTwos), `env()` its AEC form.
Both wrap a `SoccerCore` of one match (core.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from deeprl.envs.soccer.core import AGENT_IDS, DT, MAX_STEPS, N_AGENTS, OBS_SIZE, SoccerCore
from deeprl.envs.soccer.render import frame


def _spaces() -> tuple[spaces.Box, spaces.MultiDiscrete]:
    return (spaces.Box(0.0, 1.0, shape=(OBS_SIZE,), dtype=np.float32), spaces.MultiDiscrete([3, 3, 3]))


class SoccerTwosParallelEnv(ParallelEnv):
    """One SoccerTwos match; agents blue_0, blue_1, purple_0, purple_1 (see the module doc)."""

    metadata = {
        "render_modes": ["rgb_array"],
        "name": "soccer_twos_v0",
        "is_parallelizable": True,
        "render_fps": int(round(1 / DT)),
    }

    def __init__(self, max_steps: int = MAX_STEPS, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        self.render_mode = render_mode
        self.possible_agents = list(AGENT_IDS)
        self.agents: list[str] = []
        obs_space, act_space = _spaces()
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: act_space for a in self.possible_agents}
        self.core = SoccerCore(1, max_steps=max_steps)

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self.core.seed(seed)
            for i, a in enumerate(self.possible_agents):
                self.action_spaces[a].seed(seed + i)
        self.core.reset()
        self.agents = list(self.possible_agents)
        obs = self.core.observe()[0]
        return {a: obs[i] for i, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("the match is over; call reset() first")
        arr = np.zeros((1, N_AGENTS, 3), dtype=np.int64)
        for i, a in enumerate(self.possible_agents):
            if a in actions and actions[a] is not None:
                arr[0, i] = np.asarray(actions[a], dtype=np.int64).reshape(3)
        rewards, term, trunc, scorer = self.core.step(arr)
        obs = self.core.observe()[0]
        agents = self.agents
        info = {"scorer": ("blue", "purple")[scorer[0]]} if scorer[0] >= 0 else {}
        out = (
            {a: obs[i] for i, a in enumerate(agents)},
            {a: float(rewards[0, i]) for i, a in enumerate(agents)},
            {a: bool(term[0]) for a in agents},
            {a: bool(trunc[0]) for a in agents},
            {a: dict(info) for a in agents},
        )
        if term[0] or trunc[0]:
            self.agents = []
        return out

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return frame(self.core, 0)
        return None

    def state(self) -> np.ndarray:
        c = self.core
        return np.concatenate(
            [c.pos[0].ravel(), c.vel[0].ravel(), np.cos(c.angle[0]), np.sin(c.angle[0]), c.ball[0], c.ball_vel[0]]
        ).astype(np.float32)

    def close(self) -> None:
        pass


def parallel_env(**kwargs: Any) -> SoccerTwosParallelEnv:
    """The PettingZoo ParallelEnv of one SoccerTwos match (kwargs: max_steps, render_mode)."""
    return SoccerTwosParallelEnv(**kwargs)


def env(**kwargs: Any) -> Any:  # PettingZoo's AEC wrapper of the parallel env
    """The AEC form, as PettingZoo envs offer both."""
    return parallel_to_aec(parallel_env(**kwargs))
