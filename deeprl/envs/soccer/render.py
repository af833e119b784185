"""SoccerTwos frames: a top-down RGB picture of one match, for replays and `render_mode="rgb_array"`."""

from __future__ import annotations

import functools
import math

import numpy as np

from deeprl.envs.arena import draw_disc
from deeprl.envs.soccer.core import (
    _CUT_SUM,
    AGENT_RADIUS,
    BALL_RADIUS,
    FIELD_LENGTH,
    FIELD_WIDTH,
    GOAL_DEPTH,
    GOAL_HALF_WIDTH,
    N_AGENTS,
    SoccerCore,
)


def frame(core: SoccerCore, i: int = 0, scale: int = 24) -> np.ndarray:
    """Top-down RGB frame (H, W, 3) uint8 of match i; width and height are multiples of 16 (H.264)."""
    return _draw(core.pos[i], core.angle[i], core.ball[i], scale)


@functools.lru_cache(maxsize=4)
def _canvas(scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    margin = GOAL_DEPTH + 0.5
    w = int(math.ceil((FIELD_LENGTH + 2 * margin) * scale / 16) * 16)
    h = int(math.ceil((FIELD_WIDTH + 1.0) * scale / 16) * 16)
    xs = (np.arange(w) + 0.5 - w / 2) / scale
    ys = (h / 2 - np.arange(h) - 0.5) / scale
    gx, gy = np.meshgrid(xs, ys)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = (40, 40, 48)  # outside the walls
    field = (np.abs(gx) <= FIELD_LENGTH / 2) & (np.abs(gy) <= FIELD_WIDTH / 2) & (np.abs(gx) + np.abs(gy) <= _CUT_SUM)
    img[field] = (52, 140, 60)
    stripes = field & ((np.floor(gx / 2).astype(int) % 2) == 0)
    img[stripes] = (58, 150, 66)
    line = field & ((np.abs(gx) < 0.04) | (np.abs(np.hypot(gx, gy) - 1.8) < 0.04))
    img[line] = (220, 235, 220)
    for side, color in ((-1, (40, 110, 230)), (1, (150, 70, 200))):  # blue's goal at -x, purple's at +x
        box = (
            (np.abs(gy) < GOAL_HALF_WIDTH)
            & (side * gx > FIELD_LENGTH / 2)
            & (side * gx < FIELD_LENGTH / 2 + GOAL_DEPTH)
        )
        img[box] = np.array(color) // 2 + 60
    return img, gx, gy


def _draw(pos: np.ndarray, angle: np.ndarray, ball: np.ndarray, scale: int) -> np.ndarray:
    base, gx, gy = _canvas(scale)
    img = base.copy()
    colors = [(40, 110, 230), (40, 110, 230), (150, 70, 200), (150, 70, 200)]
    for i in range(N_AGENTS):
        cx, cy = pos[i]
        draw_disc(img, gx, gy, cx, cy, AGENT_RADIUS, colors[i])
        fx, fy = cx + 0.6 * AGENT_RADIUS * math.cos(angle[i]), cy + 0.6 * AGENT_RADIUS * math.sin(angle[i])
        draw_disc(img, gx, gy, fx, fy, 0.18, (245, 245, 245))  # the "eye": which way the agent faces
    draw_disc(img, gx, gy, ball[0], ball[1], BALL_RADIUS, (250, 250, 250))
    draw_disc(img, gx, gy, ball[0], ball[1], BALL_RADIUS * 0.45, (30, 30, 30))
    return img
