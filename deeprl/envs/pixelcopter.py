"""Pixelcopter-PLE-v0: our own re-implementation of PLE's Pixelcopter, the Unit 4 environment.

The course builds it with gym-games (`gym_pygame/envs/base.py` wraps `PLE(Pixelcopter(), fps=30)`), which needs
PyGame-Learning-Environment, an old gym and a display; none of that installs today. This module re-creates the
game from PLE's source (`ple/games/pixelcopter.py`, `ple/ple.py`, `ple/games/base/pygamewrapper.py` in
ntasfi/PyGame-Learning-Environment, the git master the course's requirements-unit4.txt installs) in plain Python
arithmetic, with the same constants, the same order of updates inside a frame, pygame's integer-rectangle
collisions, and the same observation and rewards:

- world `width` x `height` = 48 x 48 (Pixelcopter.__init__ defaults), one `step` = one frame of 1000/30 ms
  (PLE(fps=30, force_fps=True) passes dt = 1000.0 / fps to game.step: PLE._tick);
- actions, as PLE's action set with its noop appended (PLE.getActionSet): 0 = "up" (press the accelerator),
  1 = nothing;
- observation, in the order of Pixelcopter.getGameState's dict (what gym_pygame returns): player y, player
  velocity, distance to the ceiling, distance to the floor, x distance to the next block, next block top,
  next block bottom (PLE's "bottom" is top + block height, measured from the block's centre: kept as is);
- rewards from PyGameWrapper.rewards: +1 ("positive") each time a block passes the player AND each time a terrain
  column scrolls off the left edge (Pixelcopter.step does both), "tick" 0 per frame, "loss" -5 on the frame the
  copter dies. (The course text says -1 on death; PLE's code, which the course ran, gives -5.) Override them
  with `reward_values={"loss": -1.0, ...}` as PLE's `reward_values` argument does.

Seeding: `reset(seed=...)` seeds the generator that draws block positions and the terrain's sine wave, as
gym_pygame's `seed()` re-seeds PLE's RandomState; the exact random streams differ from PLE's, the game does not.
Rendering (`rgb_array`) draws the same rectangles and colours PLE blits, with numpy, no pygame and no display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

FPS = 30
DT = 1000.0 / FPS  # ms per frame: PLE._tick with force_fps=True (ple/ple.py)

# PyGameWrapper.__init__ (ple/games/base/pygamewrapper.py): the rewards every PLE game starts from.
PLE_REWARDS = {"positive": 1.0, "negative": -1.0, "tick": 0.0, "loss": -5.0, "win": 5.0}

GREEN = (120, 240, 80)  # Block and Terrain fill colour (ple/games/pixelcopter.py)
WHITE = (255, 255, 255)  # HelicopterPlayer fill colour

ACTION_UP, ACTION_NOOP = 0, 1


def _rect(cx: float, cy: float, w: int, h: int) -> tuple[int, int, int, int]:
    """pygame's `rect.center = (cx, cy)` on a w x h rect: floats truncate toward zero, then x = cx - w // 2."""
    return int(cx) - w // 2, int(cy) - h // 2, w, h


def _collide(a: Sequence[float], b: Sequence[float]) -> bool:
    """pygame.Rect.colliderect: strict overlap on both axes (touching edges do not collide)."""
    return a[0] < b[0] + b[2] and a[1] < b[1] + b[3] and a[0] + a[2] > b[0] and a[1] + a[3] > b[1]


class PixelcopterEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(
        self,
        width: int = 48,
        height: int = 48,
        reward_values: dict | None = None,
        render_mode: str | None = None,
        render_scale: int = 1,
    ):
        if not (isinstance(width, int) and isinstance(height, int)) or not (20 <= width <= 512 and 20 <= height <= 512):
            # below 20 the copter's 5 % sprite has no pixels (PLE would never collide it); past about 860 a new block
            # can spawn beyond getGameState's 999-pixel search radius and PLE itself crashes
            raise ValueError("width and height must be whole numbers from 20 to 512")
        unknown = sorted(set(reward_values or {}) - set(PLE_REWARDS))
        if unknown:
            raise ValueError(f"unknown reward names {unknown}; PLE's are {sorted(PLE_REWARDS)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        if not isinstance(render_scale, int) or render_scale < 1:
            raise ValueError("render_scale must be a positive whole number")
        self.width, self.height = width, height
        self.render_mode, self.render_scale = render_mode, render_scale
        self.rewards = {**PLE_REWARDS, **{k: float(v) for k, v in (reward_values or {}).items()}}

        # Pixelcopter.__init__: scroll speed in pixels per millisecond.
        self.speed = 0.0004 * width
        self.scroll = self.speed * DT  # pixels every block and terrain column moves left per frame
        # HelicopterPlayer.__init__: fixed x at 35 % of the width, starts mid-height; thrust and gravity are
        # accelerations per ms (climb_speed = speed * -0.875, fall_speed = speed * 0.09); its sprite is 5 % of
        # the screen (the float height is what the ceiling test uses, the int size what the rect uses).
        self.player_x = int(width * 0.35)
        self.climb_accel = self.speed * -0.875
        self.fall_accel = self.speed * 0.09
        self.damping = 0.99  # HelicopterPlayer.update: momentum *= 0.99 every frame; PLE has no velocity cap
        self.player_h = height * 0.05
        self.player_size = (int(width * 0.05), int(height * 0.05))
        # Block.__init__: 10 % wide, 20 % tall.
        self.block_w, self.block_h = int(width * 0.1), int(height * 0.2)
        # Terrain.__init__: columns 10 % wide whose sprite is 1.5 screens tall; the walls are its top half-screen
        # and the part below 1.05 screens. Collisions use the whole sprite rect plus the +-25 % gap test in step.
        self.terrain_w = int(width * 0.1)
        self.terrain_h = int(height * 1.5)
        self.gap_half = height * 0.25

        high = np.full(7, np.inf, dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)  # gym_pygame declares the same Box
        self.action_space = spaces.Discrete(2)
        self._started = False

    # ------------------------------------------------------------------ game state (Pixelcopter.init)
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._rng = self.np_random
        self.lives = 1.0
        self.y = self.height / 2
        self.momentum = 0.0
        self.frames = 0
        self.blocks: list[list[float]] = []  # [x, y] centres, in the order PLE's sprite group holds them
        self._add_block()
        # terrain column centres in the order PLE's sprite group holds them (insertion order)
        self.tx: list[float] = []
        self.ty: list[float] = []
        self._ordered = True
        self._add_terrain(0, self.width * 4)
        self._started = True
        return self._obs(), {}

    def _add_block(self) -> None:
        # Pixelcopter._add_blocks: enters between 1 and 1.5 screens to the right, centre between 25 % and 75 %
        # of the height (randint's upper bound is exclusive, as numpy's integers).
        x = int(self._rng.integers(self.width, int(self.width * 1.5)))
        y = int(self._rng.integers(int(self.height * 0.25), int(self.height * 0.75)))
        self.blocks.append([float(x), float(y)])

    def _add_terrain(self, start: int, end: int) -> None:
        # Pixelcopter._add_terrain: one column every terrain_w pixels; centre y follows a sine of random frequency
        # around 4.5 / width with amplitude 12.5 % of the height and a random phase jitter per column.
        w = self.terrain_w
        xs = range(start + w // 2, end + w // 2, w)
        freq = 4.5 / self.width + self._rng.uniform(-0.01, 0.01)
        phase = self._rng.uniform(0.0, 0.5, size=len(xs)).tolist()
        amp, mid = self.height * 0.125, self.height / 2.0
        self.tx.extend(float(x) for x in xs)
        self.ty.extend(float(int(mid + amp * math.sin(freq * x + p))) for x, p in zip(xs, phase))
        # At 48 x 48 a refill always lands right of the columns still alive, so the group is also ordered by x and
        # step() can stop scanning early. Some other sizes make PLE overlap old and new columns; then scan all.
        self._ordered = all(a < b for a, b in zip(self.tx, self.tx[1:]))

    # ------------------------------------------------------------------ one frame (Pixelcopter.step)
    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._started:
            raise gym.error.ResetNeeded("Call reset() before step().")
        if self.lives <= 0:
            # PLE._oneStepAct returns 0 and leaves the game as it is once it is over
            return self._obs(), 0.0, True, False, {}
        climbing = int(action) == ACTION_UP
        rw = self.rewards
        reward = rw["tick"]

        self.momentum += (self.climb_accel if climbing else self.fall_accel) * DT
        self.momentum *= self.damping
        self.y += self.momentum
        for b in self.blocks:
            b[0] -= self.scroll
        scroll = self.scroll
        self.tx = [x - scroll for x in self.tx]  # each sprite subtracts on its own, as PLE's floats do

        px, py = self.player_x, self.y
        player = _rect(px, py, *self.player_size)
        for bx, by in self.blocks:
            if _collide(player, _rect(bx, by, self.block_w, self.block_h)):
                self.lives -= 1
        hits = self._terrain_hits(player)
        for t_y in hits:
            if py - self.player_h <= t_y - self.gap_half:  # touches the ceiling
                self.lives -= 1
            if py >= t_y + self.gap_half:  # touches the floor
                self.lives -= 1

        # A block that reaches the player's x scores once and spawns the next (only while it is alone);
        # it disappears one block-width past the left edge. PLE iterates over a copy of its sprite group.
        for b in list(self.blocks):
            if b[0] <= px and len(self.blocks) == 1:
                reward += rw["positive"]
                self._add_block()
            if b[0] <= -self.block_w:
                self.blocks.remove(b)
        # Every terrain column that scrolls a column-width past the left edge scores too (Pixelcopter.step).
        if self._ordered:
            gone = 0
            while gone < len(self.tx) and self.tx[gone] <= -self.terrain_w:
                gone += 1
            if gone:
                reward += rw["positive"] * gone
                del self.tx[:gone], self.ty[:gone]
        elif any(x <= -self.terrain_w for x in self.tx):
            keep = [i for i, x in enumerate(self.tx) if x > -self.terrain_w]
            reward += rw["positive"] * (len(self.tx) - len(keep))
            self.tx, self.ty = [self.tx[i] for i in keep], [self.ty[i] for i in keep]

        if py < self.height * 0.125 or py > self.height * 0.875:  # out of the band any terrain can leave open
            self.lives -= 1
        if len(self.tx) <= 10 + 3:  # Pixelcopter.step refills one screen ahead when 13 columns are left
            self._add_terrain(self.width, self.width * 5)
        terminated = self.lives <= 0
        if terminated:
            reward += rw["loss"]
        self.frames += 1
        return self._obs(hits), float(reward), bool(terminated), False, {}

    def _terrain_hits(self, player: Sequence[float]) -> list[float]:
        """Centre y of every terrain column whose rect collides with the player's, left to right."""
        pl, pt, pw, ph = player
        tw, th = self.terrain_w, self.terrain_h
        out = []
        for x, y in zip(self.tx, self.ty):
            left = int(x) - tw // 2
            if left >= pl + pw:
                if self._ordered:  # none further on can touch the player
                    break
                continue
            top = int(y) - th // 2
            if pl < left + tw and pt < top + th and pt + ph > top:
                out.append(y)
        return out

    # ------------------------------------------------------------------ observation (Pixelcopter.getGameState)
    def _obs(self, hits: list[float] | None = None) -> np.ndarray:
        px, py = self.player_x, self.y
        best, best_dist = None, 999.0
        for b in self.blocks:  # the nearest block still ahead of the player, within PLE's 999 search radius
            d = b[0] - px
            if 0 < d < best_dist:
                best, best_dist = b, d
        if best is None:  # PLE would crash here; it cannot happen in a 20..512 world, but stay finite
            best = self.blocks[-1]
        if hits is None:
            hits = self._terrain_hits(_rect(px, py, *self.player_size))
        # PLE takes the first colliding column in its group's order (left to right); the columns tile the width,
        # so one always collides; the nearest one stands in should rounding ever leave a gap
        t_y = hits[0] if hits else self.ty[min(range(len(self.tx)), key=lambda i: abs(self.tx[i] - px))]
        return np.array(
            [
                py,
                self.momentum,
                py - (t_y - self.gap_half),
                (t_y + self.gap_half) - py,
                best_dist,
                best[1],
                best[1] + self.block_h,
            ],
            dtype=np.float32,
        )

    # ------------------------------------------------------------------ drawing (the sprites PLE blits)
    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        h, w = self.height, self.width
        img = np.zeros((h, w, 3), dtype=np.uint8)

        def fill(x0: int, y0: int, rw: int, rh: int, colour: tuple[int, int, int]) -> None:
            x1, y1 = max(x0, 0), max(y0, 0)
            x2, y2 = min(x0 + rw, w), min(y0 + rh, h)
            if x2 > x1 and y2 > y1:
                img[y1:y2, x1:x2] = colour

        if self._started:
            # PLE draws the player, then blocks, then terrain, each over the last
            fill(*_rect(self.player_x, self.y, *self.player_size), WHITE)
            for bx, by in self.blocks:
                fill(*_rect(bx, by, self.block_w, self.block_h), GREEN)
            top_h = int(h * 0.5)  # Terrain's top wall: (0, 0, width, SCREEN_HEIGHT * 0.5) in its own sprite
            bottom_y = int(h * 1.05)  # bottom wall starts 1.05 screens down the sprite, clipped to the sprite
            for x, y in zip(self.tx, self.ty):
                left, top, tw, th = _rect(x, y, self.terrain_w, self.terrain_h)
                if left >= w or left + tw <= 0:
                    continue
                fill(left, top, tw, top_h, GREEN)
                fill(left, top + bottom_y, tw, max(0, min(int(h * 0.5), th - bottom_y)), GREEN)
        if self.render_scale > 1:
            img = np.repeat(np.repeat(img, self.render_scale, axis=0), self.render_scale, axis=1)
        return img


def make(kwargs: dict, render_mode: str | None, training: bool) -> gym.Env:
    """The registry's builder. The course trains and evaluates with max_t = 10,000 steps (the gym-games env has no
    time limit of its own), so episodes truncate there unless `max_episode_steps` says otherwise (0 or None: none)."""
    kw = dict(kwargs)
    max_steps = kw.pop("max_episode_steps", 10_000)
    env: gym.Env = PixelcopterEnv(render_mode=render_mode, **kw)
    if max_steps:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=int(max_steps))
    return env
