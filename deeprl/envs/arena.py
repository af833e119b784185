"""Pieces shared by the native arena envs (SoccerTwos, Pyramids, SnowballTarget): top-down drawing for replays,
and one arena of a vectorized core seen as a Gymnasium env."""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np


@functools.lru_cache(maxsize=8)
def pixel_grid(width_m: float, height_m: float, scale: int) -> tuple[np.ndarray, ...]:
    """(H, W) world x and y of each pixel centre for a picture centred on 0; sides are multiples of 16 (H.264)."""
    w = int(math.ceil(width_m * scale / 16) * 16)
    h = int(math.ceil(height_m * scale / 16) * 16)
    xs = (np.arange(w) + 0.5 - w / 2) / scale
    ys = (h / 2 - np.arange(h) - 0.5) / scale
    return np.meshgrid(xs, ys)


def draw_disc(
    img: np.ndarray, gx: np.ndarray, gy: np.ndarray, cx: float, cy: float, r: float, color: tuple[int, int, int]
) -> None:
    """Fill a disc of radius r (metres) at (cx, cy) on `img` drawn over the grid (gx, gy), testing its box only."""
    h, w = gx.shape
    scale = 1.0 / (gx[0, 1] - gx[0, 0])
    c0, c1 = int(max(0, (cx - r) * scale + w / 2 - 1)), int(min(w, (cx + r) * scale + w / 2 + 2))
    r0, r1 = int(max(0, h / 2 - (cy + r) * scale - 1)), int(min(h, h / 2 - (cy - r) * scale + 2))
    if c0 >= c1 or r0 >= r1:
        return
    sx, sy = gx[r0:r1, c0:c1], gy[r0:r1, c0:c1]
    img[r0:r1, c0:c1][(sx - cx) ** 2 + (sy - cy) ** 2 <= r * r] = color


class ArenaEnv(gym.Env):
    """One arena of a vectorized core (`core.step`, `observe`, `reset`, `seed`; built with n=1) as a Gymnasium env.

    Subclasses set the spaces, build the core and say how an action becomes the core's action array."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, core: Any, render_mode: str | None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        self.render_mode = render_mode
        self.core = core

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self.core.seed(seed)
        self.core.reset()
        return self.core.observe()[0], {}

    def _step_core(self, actions: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """(observation, reward, terminated, truncated) of the one arena after `actions` (shaped for the core)."""
        rewards, term, trunc = self.core.step(actions)
        return self.core.observe()[0], float(rewards[0]), bool(term[0]), bool(trunc[0])


class ArenaVectorEnv(gym.vector.VectorEnv):
    """`n` arenas of one vectorized core as a Gymnasium VectorEnv: one array step for all of them, finished arenas
    reset in the same step (their last observation in info["final_obs"], as our other vector envs do), so PPO
    collects from the core at its own speed instead of through n single-arena envs.

    `single_env` gives the spaces; `core_factory(n)` builds the core."""

    def __init__(self, single_env: ArenaEnv, core_factory: Any, n: int):
        self.num_envs = n
        self.single_observation_space = single_env.observation_space
        self.single_action_space = single_env.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n)
        self.metadata = {**single_env.metadata, "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        single_env.close()
        self.core = core_factory(n)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.core.seed(seed)
        self.core.reset()
        return self.core.observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        branches: tuple[int, ...] = tuple(self.single_action_space.shape or ())  # () for Discrete, (2,) Snowball's
        actions = np.asarray(actions, dtype=np.int64).reshape((self.num_envs, *branches))
        rewards, terminated, truncated = self.core.step(actions)
        obs = self.core.observe()
        done = terminated | truncated
        info: dict = {}
        if done.any():
            info = {"final_obs": obs.copy(), "_final_obs": done.copy()}
            self.core.reset(done)
            obs = self.core.observe()
        return obs, rewards.astype(np.float64), terminated.copy(), truncated.copy(), info

    def close_extras(self, **kwargs: Any) -> None:
        close = getattr(self.core, "close", None)
        if close is not None:
            close()
