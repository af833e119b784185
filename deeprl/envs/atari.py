"""Atari 2600 games through ale-py, preprocessed as Stable-Baselines3's AtariWrapper (which the course's dqn.yml uses).

`Preprocessing` is Gymnasium's `AtariPreprocessing` as SB3's AtariWrapper configures it: no-op reset (up to 30),
max-and-skip 4 and 84x84 grayscale (ALE's own grayscale screen, resized by OpenCV's INTER_AREA arithmetic),
step for step the same observations, written here so that OpenCV is not loaded (15 MB of resident memory beside a
replay buffer, for one resize); `FrameStackObservation` stacks 4 frames channel-first, uint8 (4, 84, 84), the shape
NatureCNN takes. Also written here because Gymnasium lacks them:

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

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE (then action 2) after reset, and with `after_life_loss` also after a life is lost mid-game."""

    def __init__(self, env: gym.Env, after_life_loss: bool = False):
        super().__init__(env)
        self.after_life_loss = after_life_loss
        self.lives = 0

    def _fire(self, **kwargs):
        obs, info = None, {}
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, info = self._fire(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.after_life_loss and not (terminated or truncated):
            lives = self.env.unwrapped.ale.lives()
            if 0 < lives < self.lives:
                # the score of these presses belongs to the game: add it to this step's reward
                for a in (1, 2):
                    obs, r, terminated, truncated, info = self.env.step(a)
                    reward += r
                    if terminated or truncated:
                        break
            self.lives = self.env.unwrapped.ale.lives()
        return obs, reward, terminated, truncated, info


class AreaResize:
    """cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) for uint8 grayscale, bit for bit: OpenCV's
    area tables (computeResizeAreaTab) and its float32 accumulation in the same order (each destination column
    sums its source columns, each destination row its source rows, both left to right), rounded half to even."""

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]):
        self.x_idx, self.x_w = self._table(in_hw[1], out_hw[1])
        self.y_idx, self.y_w = self._table(in_hw[0], out_hw[0])
        self.y_w = self.y_w[:, :, None]

    @staticmethod
    def _table(ssize: int, dsize: int):
        import math

        scale = ssize / dsize
        taps: list[list] = [[] for _ in range(dsize)]
        for d in range(dsize):
            f1 = d * scale
            f2 = f1 + scale
            cell = min(scale, ssize - f1)
            s1, s2 = math.ceil(f1), math.floor(f2)
            s2 = min(s2, ssize - 1)
            s1 = min(s1, s2)
            if s1 - f1 > 1e-3:
                taps[d].append((s1 - 1, (s1 - f1) / cell))
            taps[d] += [(s, 1.0 / cell) for s in range(s1, s2)]
            if f2 - s2 > 1e-3:
                taps[d].append((s2, min(min(f2 - s2, 1.0), cell) / cell))
        # slot j holds every destination's j-th tap; missing taps add 0 * pixel, which leaves a float sum unchanged
        n = max(len(t) for t in taps)
        idx, w = np.zeros((n, dsize), np.intp), np.zeros((n, dsize), np.float32)
        for d, t in enumerate(taps):
            for j, (src, weight) in enumerate(t):
                idx[j, d], w[j, d] = src, np.float32(weight)
        return idx, w

    def __call__(self, img: np.ndarray) -> np.ndarray:
        src = img.astype(np.float32)
        cols = src[:, self.x_idx[0]] * self.x_w[0]
        for j in range(1, len(self.x_idx)):
            cols += src[:, self.x_idx[j]] * self.x_w[j]
        out = cols[self.y_idx[0]] * self.y_w[0]
        for j in range(1, len(self.y_idx)):
            out += cols[self.y_idx[j]] * self.y_w[j]
        return np.clip(np.rint(out, out=out), 0, 255, out=out).astype(np.uint8)


class Preprocessing(gym.Wrapper):
    """gym.wrappers.AtariPreprocessing(env, noop_max, frame_skip, screen_size, terminal_on_life_loss=False,
    grayscale_obs=True, scale_obs=False), the same steps in the same order, without OpenCV."""

    def __init__(self, env: gym.Env, noop_max: int = 30, frame_skip: int = 4, screen_size: int = SCREEN):
        super().__init__(env)
        if frame_skip <= 0 or screen_size <= 0 or noop_max < 0:
            raise ValueError("frame_skip and screen_size must be positive, noop_max not negative")
        if frame_skip > 1 and getattr(env.unwrapped, "_frameskip", None) != 1:
            raise ValueError("Disable frame-skipping in the original env (use a NoFrameskip game)")
        if noop_max > 0 and env.unwrapped.get_action_meanings()[0] != "NOOP":
            raise ValueError("When noop_max > 0, the first action meaning must be 'NOOP'")
        self.noop_max, self.frame_skip = noop_max, frame_skip
        hw = env.observation_space.shape[:2]
        self.obs_buffer = [np.empty(hw, dtype=np.uint8), np.empty(hw, dtype=np.uint8)]
        self.resize = AreaResize(hw, (screen_size, screen_size))
        self.game_over = False
        self.observation_space = gym.spaces.Box(0, 255, (screen_size, screen_size), np.uint8)

    @property
    def ale(self):
        return self.env.unwrapped.ale

    def step(self, action):
        total_reward, terminated, truncated, info = 0.0, False, False, {}
        for t in range(self.frame_skip):
            _, reward, terminated, truncated, info = self.env.step(action)
            total_reward += reward
            self.game_over = terminated
            if terminated or truncated:
                break
            if t == self.frame_skip - 2:
                self.ale.getScreenGrayscale(self.obs_buffer[1])
            elif t == self.frame_skip - 1:
                self.ale.getScreenGrayscale(self.obs_buffer[0])
        return self._get_obs(), total_reward, terminated, truncated, info

    def reset(self, *, seed=None, options=None):
        _, reset_info = self.env.reset(seed=seed, options=options)
        noops = self.env.unwrapped.np_random.integers(1, self.noop_max + 1) if self.noop_max > 0 else 0
        for _ in range(noops):
            _, _, terminated, truncated, step_info = self.env.step(0)
            reset_info.update(step_info)
            if terminated or truncated:
                _, reset_info = self.env.reset(seed=seed, options=options)
        self.ale.getScreenGrayscale(self.obs_buffer[0])
        self.obs_buffer[1].fill(0)
        return self._get_obs(), reset_info

    def _get_obs(self):
        if self.frame_skip > 1:
            np.maximum(self.obs_buffer[0], self.obs_buffer[1], out=self.obs_buffer[0])
        return self.resize(self.obs_buffer[0])


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
    env = Preprocessing(env, noop_max=noop_max, frame_skip=frame_skip, screen_size=screen_size)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    fire = "FIRE" in env.unwrapped.get_action_meanings()
    if training and terminal_on_life_loss:
        env = EpisodicLife(env)
    if fire:
        env = FireReset(env, after_life_loss=not (training and terminal_on_life_loss))
    if training and clip_reward:
        env = gym.wrappers.TransformReward(env, np.sign)
    return gym.wrappers.FrameStackObservation(env, frame_stack)


def make_for(game: str):
    """A registry `make(kwargs, render_mode, training)` for one game."""

    def make(kwargs, render_mode, training):
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
