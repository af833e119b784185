"""panda-gym on PyBullet (Unit 6): PandaReachDense-v3 and PandaPickAndPlace-v3, headless.

panda-gym always opens PyBullet itself; with `renderer="Tiny"` it connects in DIRECT mode (no window, no
OpenGL context), and `getCameraImage` then draws with Bullet's software TinyRenderer, so `rgb_array` replays
work with no display and no EGL. The physics is panda-gym's own, untouched (20 Bullet substeps per step).

PyBullet's C code prints its build time and the background-colour arguments straight to file descriptor 1
when it loads and connects; that would corrupt `--json` output, so both happen with fd 1 pointed at stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym

# Camera of the replays: panda-gym's defaults, at a size that keeps TinyRenderer quick (about 0.1 s a frame).
RENDER_DEFAULTS = {"render_width": 480, "render_height": 320}


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send C-level writes to fd 1 to stderr for the duration (PyBullet prints from C, past sys.stdout)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no real fd 1 (an embedding host): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 1)
        os.close(saved)


def _import() -> None:
    with stdout_to_stderr():
        import panda_gym  # noqa: F401  registers the Panda*-v3 ids with Gymnasium
        import pybullet  # noqa: F401


def _make(gym_id: str, kwargs: dict, render_mode: str | None) -> gym.Env:
    _import()
    kw = {**RENDER_DEFAULTS, **kwargs}
    kw.setdefault("renderer", "Tiny")
    if kw["renderer"] != "Tiny":
        raise ValueError("only renderer='Tiny' is supported: replays are drawn off-screen, without a display")
    # panda-gym has no "no rendering" mode: DIRECT + rgb_array costs nothing until render() is called.
    with stdout_to_stderr():
        env = gym.make(gym_id, render_mode="rgb_array", **kw)
    if render_mode not in (None, "rgb_array"):
        env.close()
        raise ValueError(f"render_mode {render_mode!r} is not available headless; use rgb_array")
    return SeededResets(env)


class SeededResets(gym.Wrapper):
    """panda-gym's reset() gives its task a new generator, `seeding.np_random(seed)`: on an unseeded reset (every
    autoreset while training) that is fresh OS entropy, so goals after the first episode, and so whole training runs,
    could not be repeated with the same seed. Once a reset has been seeded, an unseeded one gets a seed drawn from
    the env's own generator: the same uniform goals, in a sequence the first seed fixes."""

    _seeded = False

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._seeded = True
        elif self._seeded:
            seed = int(self.env.unwrapped.np_random.integers(2**31 - 1))
        return self.env.reset(seed=seed, options=options)


def make_reach_dense(kwargs: dict, render_mode: str | None, training: bool) -> gym.Env:
    return _make("PandaReachDense-v3", kwargs, render_mode)


def make_pick_and_place(kwargs: dict, render_mode: str | None, training: bool) -> gym.Env:
    return _make("PandaPickAndPlace-v3", kwargs, render_mode)
