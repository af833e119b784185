"""Atari 2600 games through ale-py, preprocessed as Stable-Baselines3's AtariWrapper (which the course's dqn.yml uses).

Gymnasium's `AtariPreprocessing` already does no-op reset (up to 30), max-and-skip 4 and 84x84 grayscale (ALE's
own grayscale screen, resized with cv2 INTER_AREA as SB3 does); `FrameStackObservation` stacks 4 frames
channel-first, uint8 (4, 84, 84), the shape NatureCNN takes. What Gymnasium lacks is written here:

- `EpisodicLife` (training only): losing a life ends the learner's episode, the game goes on underneath (SB3's
  EpisodicLifeEnv); the next reset is a no-op step, not a new game.
- `FireReset`: games that wait for FIRE get FIRE then action 2 after each reset (SB3's FireResetEnv). At
  evaluation there is no episodic life, so the same fire is pressed after a lost life inside the game instead:
  the agent sees the dynamics it was trained on while the episode is the whole game.
- reward clipping to its sign (training only).

`RecordEpisodeStatistics` sits under the training-only wrappers, so `info["episode"]` reports the real game
score (all lives, unclipped) when a game ends, which is what training logs show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

FRAME_STACK = 4
SCREEN = 84
COURSE_GAMES = ("SpaceInvaders", "BeamRider", "Breakout", "Enduro", "Pong")


def _register_ale() -> None:
    import ale_py

    gym.register_envs(ale_py)


class EpisodicLife(gym.Wrapper):
    """A lost life is a terminal state for the learner; reset() continues the same game unless it is over."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = _lives(self.env)
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = _lives(self.env)
        return obs, info


def _lives(env: gym.Env) -> int:
    ale: Any = env.unwrapped  # ALE's AtariEnv, which Gymnasium types as a plain Env
    return ale.ale.lives()


class FireReset(gym.Wrapper):
    """Press FIRE (then action 2) after reset, and with `after_life_loss` also after a life is lost mid-game."""

    def __init__(self, env: gym.Env, after_life_loss: bool = False):
        super().__init__(env)
        self.after_life_loss = after_life_loss
        self.lives = 0

    def _fire(self, **kwargs: Any) -> tuple[Any, dict]:
        obs: Any = None
        info: dict = {}
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.env.reset(**kwargs)
        obs, info = self._fire(**kwargs)
        self.lives = _lives(self.env)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.after_life_loss and not (terminated or truncated):
            lives = _lives(self.env)
            if 0 < lives < self.lives:
                # the score of these presses belongs to the game: add it to this step's reward
                for a in (1, 2):
                    obs, r, terminated, truncated, info = self.env.step(a)
                    reward = float(reward) + float(r)
                    if terminated or truncated:
                        break
            self.lives = _lives(self.env)
        return obs, reward, terminated, truncated, info


def gym_id(game: str) -> str:
    return f"{game}NoFrameskip-v4"


def make_game(game_id: str, kwargs: dict, render_mode: str | None, training: bool) -> gym.Env:
    """`game_id` like SpaceInvadersNoFrameskip-v4 (no sticky actions, minimal action set, ALE v4 rules)."""
    _register_ale()
    kwargs = dict(kwargs)
    noop_max = int(kwargs.pop("noop_max", 30))
    frame_skip = int(kwargs.pop("frame_skip", 4))
    screen_size = int(kwargs.pop("screen_size", SCREEN))
    frame_stack = int(kwargs.pop("frame_stack", FRAME_STACK))
    clip_reward = bool(kwargs.pop("clip_reward", True))
    terminal_on_life_loss = bool(kwargs.pop("terminal_on_life_loss", True))
    env = gym.make(game_id, render_mode=render_mode, **kwargs)
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=noop_max,
        frame_skip=frame_skip,
        screen_size=screen_size,
        terminal_on_life_loss=False,
        grayscale_obs=True,
        scale_obs=False,
    )
    env = gym.wrappers.RecordEpisodeStatistics(env)
    ale: Any = env.unwrapped  # ALE's AtariEnv, which Gymnasium types as a plain Env
    fire = "FIRE" in ale.get_action_meanings()
    if training and terminal_on_life_loss:
        env = EpisodicLife(env)
    if fire:
        env = FireReset(env, after_life_loss=not (training and terminal_on_life_loss))
    if training and clip_reward:
        env = gym.wrappers.TransformReward(env, np.sign)  # type: ignore[arg-type]  # a ufunc, callable on a float
    return gym.wrappers.FrameStackObservation(env, frame_stack)


def make_for(game: str) -> Callable[[dict, str | None, bool], gym.Env]:
    """A registry `make(kwargs, render_mode, training)` for one game."""

    def make(kwargs: dict, render_mode: str | None, training: bool) -> gym.Env:
        return make_game(gym_id(game), kwargs, render_mode, training)

    return make


def make(kwargs: dict, render_mode: str | None, training: bool) -> gym.Env:
    """Registry entry point: the game comes from kwargs['game_id'] (default Space Invaders, the course's)."""
    kwargs = dict(kwargs)
    game_id = kwargs.pop("game_id", gym_id("SpaceInvaders"))
    return make_game(game_id, kwargs, render_mode, training)


make_spaceinvaders = make_for("SpaceInvaders")
make_beamrider = make_for("BeamRider")
make_breakout = make_for("Breakout")
make_enduro = make_for("Enduro")
make_pong = make_for("Pong")


def is_atari(env: gym.Env) -> bool:
    try:
        import ale_py

        return isinstance(env.unwrapped, ale_py.AtariEnv)
    except ImportError:
        return False
