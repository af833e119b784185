"""SnowballTarget (Unit 5): shoot snowballs at targets that pop up, natively over numpy arrays.

The course fixes the task (`units/en/unit5/snowball-target.mdx`): 1,000-step episodes, +1 each time a snowball hits
a target and no other reward, a 0.5 s cool-down between shots, ray observations plus a "can I shoot" flag, and
discrete actions; a trained agent hits about 30 targets an episode (the course's pass mark is a mean of 15).
Its Unity scene is not public (only a binary build), so the arena, the target spawning and the rays are chosen
here, at the course's scale:

- Arena: a circle of radius `ARENA_RADIUS` = 20 m with the agent on a platform at its centre. The agent does not
  walk; it turns (90 degrees/s) and shoots.
- Decisions: one step = one decision of 0.1 s (ML-Agents' 5 physics steps of 0.02 s); an episode is truncated
  after 1,000 decisions. The cool-down of 0.5 s is `COOLDOWN` = 5 decisions after a shot.
- Actions: MultiDiscrete([3, 2]), two ML-Agents branches: turn (0 none, 1 left, 2 right) and shoot (0 no, 1 yes).
  A shot while cooling down does nothing.
- Snowballs: radius 0.25 m, fired from 0.6 m in front of the agent at 20 m/s straight along its heading; a
  snowball vanishes when it hits a target or leaves the arena (at most 3 fly at once).
- Targets: one at a time, a disc of radius 1 m popping up at a random bearing, 6 to 16 m from the agent; when hit it
  pops and the next one appears 1 s (10 decisions) later elsewhere. Each hit is +1. An ideal agent needs about
  2.5 s a target (turn, fly, reappear), some 40 an episode; a good one wastes some time and hits about 30.
- Observation (137 float32): two ray sensors, then the can-shoot flag. A wide sensor of 23 rays (11 per side,
  +-165 degrees, 15 degrees apart, sphere-cast radius 1 m, so a target anywhere in range shows in a ray) to
  find the target, then a narrow one of 11 rays (5 per side, +-10 degrees, cast radius 0.25 m, a snowball's
  width) to aim. Rays are 25 m long and run left to right; each gives 4 values as ML-Agents writes them: a
  one-hot over the tags (target, wall), a miss flag and the hit distance as a fraction of the ray.

The numpy core steps many arenas at once (as ML-Agents trains several areas in one scene); `SnowballTargetEnv`
is one arena as a Gymnasium env, with top-down `rgb_array` frames for replays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from deeprl.envs.arena import ArenaEnv, draw_disc, pixel_grid

ARENA_RADIUS = 20.0
DT = 0.1  # one decision
MAX_DECISIONS = 1000
TURN_SPEED = math.radians(90.0)  # 9 degrees a decision: a turn can always end within a far target's width
COOLDOWN = 5  # decisions (0.5 s)
BALL_SPEED, BALL_RADIUS, MUZZLE = 20.0, 0.25, 0.6
N_BALLS = 3
TARGET_RADIUS = 1.0
TARGET_MIN, TARGET_MAX = 6.0, 16.0
RESPAWN = 10  # decisions before the next target
AGENT_RADIUS = 0.5

TAGS = ("target", "wall")
TARGET, WALL = range(len(TAGS))
RAY_VALUES = len(TAGS) + 2
RAY_LENGTH = 25.0


def _left_to_right(per_side: int, max_degrees: float) -> list[float]:
    return [max_degrees * k / per_side for k in range(per_side, -per_side - 1, -1)]


RAY_ANGLES = np.radians(np.array(_left_to_right(11, 165.0) + _left_to_right(5, 10.0)))
N_WIDE = 23
CAST = np.array([1.0] * N_WIDE + [BALL_RADIUS] * (len(RAY_ANGLES) - N_WIDE), dtype=np.float32)
N_RAYS = len(RAY_ANGLES)  # 34
OBS_SIZE = N_RAYS * RAY_VALUES + 1  # 137


class SnowballCore:
    """N SnowballTarget arenas stepped together; the agent sits at (0, 0) of each, `angle` its heading."""

    def __init__(self, n: int = 1, *, max_decisions: int = MAX_DECISIONS, seed: int | None = None):
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n, self.max_decisions = int(n), int(max_decisions)
        self.rng = np.random.default_rng(seed)
        self.angle = np.zeros(n)
        self.cooldown = np.zeros(n, dtype=np.int64)
        self.ball = np.zeros((n, N_BALLS, 2))
        self.ball_dir = np.zeros((n, N_BALLS, 2))
        self.ball_alive = np.zeros((n, N_BALLS), dtype=bool)
        self.target = np.zeros((n, 2))
        self.target_alive = np.zeros(n, dtype=bool)
        self.respawn = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        self.hits = np.zeros(n, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)
        self.reset()

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, mask: np.ndarray | None = None) -> None:
        idx = np.arange(self.n) if mask is None else np.flatnonzero(mask)
        if idx.size == 0:
            return
        self.angle[idx] = self.rng.uniform(-np.pi, np.pi, size=idx.size)
        self.cooldown[idx] = 0
        self.ball_alive[idx] = False
        self.respawn[idx] = 0
        self.t[idx] = 0
        self.hits[idx] = 0
        self.done[idx] = False
        self._spawn(idx)

    def _spawn(self, idx: np.ndarray) -> None:
        bearing = self.rng.uniform(-np.pi, np.pi, size=idx.size)
        dist = self.rng.uniform(TARGET_MIN, TARGET_MAX, size=idx.size)
        self.target[idx] = np.stack([dist * np.cos(bearing), dist * np.sin(bearing)], axis=-1)
        self.target_alive[idx] = True

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decision: actions (n, 2) [turn, shoot]. Returns (rewards (n,) float32, terminated, truncated)."""
        a = np.asarray(actions).reshape(self.n, 2)
        if not ((a[:, 0] >= 0) & (a[:, 0] < 3) & (a[:, 1] >= 0) & (a[:, 1] < 2)).all():
            raise ValueError("actions are [turn 0/1/2, shoot 0/1] per arena")
        live = ~self.done
        turn = np.where(a[:, 0] == 1, 1.0, np.where(a[:, 0] == 2, -1.0, 0.0)) * live
        self.angle = (self.angle + turn * TURN_SPEED * DT + np.pi) % (2 * np.pi) - np.pi
        heading = np.stack([np.cos(self.angle), np.sin(self.angle)], axis=-1)
        shoot = live & (a[:, 1] == 1) & (self.cooldown == 0)
        free = ~self.ball_alive
        slot = free.argmax(axis=1)
        shoot &= free.any(axis=1)
        k = np.flatnonzero(shoot)
        self.ball[k, slot[k]] = MUZZLE * heading[k]
        self.ball_dir[k, slot[k]] = heading[k]
        self.ball_alive[k, slot[k]] = True
        # shots COOLDOWN decisions apart: the flag is back on after the fifth decision, and the sixth may fire
        self.cooldown = np.where(shoot, COOLDOWN - 1, np.maximum(self.cooldown - live, 0))
        # the snowballs fly a decision's path; a hit is the path passing within the target's radius (swept, so a
        # fast snowball cannot skip through a target between two decisions)
        start = self.ball
        path = self.ball_dir * (BALL_SPEED * DT)
        w = self.target[:, None] - start
        s = np.clip((w * path).sum(-1) / (BALL_SPEED * DT) ** 2, 0.0, 1.0)
        gap = start + s[..., None] * path - self.target[:, None]
        hit = (
            self.ball_alive
            & self.target_alive[:, None]
            & live[:, None]
            & ((gap * gap).sum(-1) <= (TARGET_RADIUS + BALL_RADIUS) ** 2)
        )
        # one target takes one snowball: the first along the way, the others fly on
        first = hit & (np.cumsum(hit, axis=1) == 1)
        scored = first.any(axis=1)
        self.ball = np.where(live[:, None, None], start + path, start)
        self.ball_alive &= ~first
        self.ball_alive &= (self.ball * self.ball).sum(-1) < ARENA_RADIUS**2
        self.target_alive &= ~scored
        self.respawn = np.where(scored, RESPAWN, np.maximum(self.respawn - live, 0))
        due = live & ~self.target_alive & (self.respawn == 0)
        if due.any():
            self._spawn(np.flatnonzero(due))
        rewards = scored.astype(np.float32)
        self.hits += scored
        self.t += live
        truncated = live & (self.t >= self.max_decisions)
        terminated = np.zeros(self.n, dtype=bool)  # the task never ends early
        self.done |= truncated
        return rewards, terminated, truncated

    def rays(self) -> np.ndarray:
        """(n, 34, 4) float32: wide sensor (23 rays) then narrow (11), left to right."""
        theta = (self.angle[:, None] + RAY_ANGLES).astype(np.float32)
        dx, dy = np.cos(theta), np.sin(theta)
        tx, ty = self.target[:, 0:1].astype(np.float32), self.target[:, 1:2].astype(np.float32)
        b = tx * dx + ty * dy
        disc = b * b - (tx * tx + ty * ty - (TARGET_RADIUS + CAST) ** 2)
        t_target = np.where(
            (disc >= 0) & (b > 0) & self.target_alive[:, None],
            np.maximum(b - np.sqrt(np.maximum(disc, 0.0)), 0.0),
            np.inf,
        )
        t_wall = np.float32(ARENA_RADIUS - CAST)  # from the centre, the wall is as far every way
        t = np.minimum(t_target, t_wall)
        hit = t <= RAY_LENGTH
        out = np.zeros((self.n, N_RAYS, RAY_VALUES), dtype=np.float32)
        out[..., TARGET] = hit & (t_target < t_wall)
        out[..., WALL] = hit & (t_target >= t_wall)
        out[..., 2] = ~hit
        out[..., 3] = np.where(hit, t / RAY_LENGTH, 1.0)
        return out

    def observe(self) -> np.ndarray:
        """(n, 137) float32: the rays, then 1 when the agent can shoot."""
        out = np.empty((self.n, OBS_SIZE), dtype=np.float32)
        out[:, :-1] = self.rays().reshape(self.n, -1)
        out[:, -1] = self.cooldown == 0
        return out


def frame(core: SnowballCore, i: int = 0, scale: int = 12) -> np.ndarray:
    """Top-down RGB picture (H, W, 3) uint8 of arena i: the arena, the target, snowballs in flight, the agent."""
    gx, gy = pixel_grid(2 * ARENA_RADIUS + 2, 2 * ARENA_RADIUS + 2, scale)
    img = np.empty(gx.shape + (3,), dtype=np.uint8)
    img[:] = (60, 70, 90)
    img[gx * gx + gy * gy <= ARENA_RADIUS**2] = (225, 235, 245)
    if core.target_alive[i]:
        x, y = core.target[i]
        draw_disc(img, gx, gy, x, y, TARGET_RADIUS, (220, 40, 40))
        draw_disc(img, gx, gy, x, y, TARGET_RADIUS * 0.6, (250, 250, 250))
        draw_disc(img, gx, gy, x, y, TARGET_RADIUS * 0.3, (220, 40, 40))
    for k in np.flatnonzero(core.ball_alive[i]):
        bx, by = core.ball[i, k]
        draw_disc(img, gx, gy, bx, by, BALL_RADIUS * 1.5, (90, 160, 230))
    draw_disc(img, gx, gy, 0.0, 0.0, AGENT_RADIUS * 1.6, (40, 90, 220) if core.cooldown[i] == 0 else (90, 110, 160))
    draw_disc(img, gx, gy, 0.8 * math.cos(core.angle[i]), 0.8 * math.sin(core.angle[i]), 0.3, (250, 250, 250))
    return img


class SnowballTargetEnv(ArenaEnv):
    """One SnowballTarget arena: observation (137,) float32, MultiDiscrete([3, 2]); one step = one decision."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / DT))}

    def __init__(self, max_decisions: int = MAX_DECISIONS, render_mode: str | None = None):
        super().__init__(SnowballCore(1, max_decisions=int(max_decisions)), render_mode)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(OBS_SIZE,), dtype=np.float32)
        self.action_space = spaces.MultiDiscrete([3, 2])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return *self._step_core(np.asarray(action, dtype=np.int64).reshape(1, 2)), {"hits": int(self.core.hits[0])}

    def render(self) -> np.ndarray | None:
        return frame(self.core, 0) if self.render_mode == "rgb_array" else None


def make(kwargs: dict, render_mode: str | None = None, training: bool = False) -> SnowballTargetEnv:
    """Registry builder (env kwargs: max_decisions)."""
    return SnowballTargetEnv(render_mode=render_mode, **kwargs)
