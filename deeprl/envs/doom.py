"""ViZDoom scenarios (Unit 8.2) as Sample Factory trains them, headless.

The course trains `doom_health_gathering_supreme` with Sample Factory (SF) and scores it with SF's `enjoy`, so
the task here is SF's (sf_examples/vizdoom/doom/doom_utils.py, doom_gym.py, gathering_reward_shaping.py), not
the one the course's text describes from ViZDoom's own cfg:

- the scenario is SF's cfg (beside this file: 0.01 per tic alive, no death penalty, 2100-tic timeout, four
  buttons, HEALTH) on the map the `vizdoom` package ships;
- actions are Discrete(1 + buttons): 0 is a no-op, k presses button k alone (SF's `Discrete(1 + 4)`);
- the game renders 160x120 (SF's default, `wide_aspect_ratio=False`) and observations are that frame resized
  to 128x72 RGB with nearest-neighbour (SF's ResizeWrapper), uint8 72x128x3; `render()` gives the 160x120 frame;
- one step repeats the action for `frame_skip` tics inside the engine (`make_action(action, tics)`) and sums
  their rewards: 4 when training, 1 at evaluation (SF's env_frameskip / eval_env_frameskip);
- training only: +1 on a step where HEALTH rises (a medkit; SF's DoomGatheringRewardShaping), and doom_basic's
  rewards x 0.01 (SF's reward_scaling). RecordEpisodeStatistics sits under them, so `info["episode"]` and
  `info["true_objective"]` carry the unshaped return, which is also all evaluation (training=False) ever sees.

Where this differs from SF, on purpose: a timeout is `truncated` (time is not in the observation; ViZDoom's own
Gymnasium wrapper does the same), where SF reports every end as terminated; and an ended episode returns its last
real frame, where SF returns a black one. doom_defend_the_center uses SF's flat `Discrete(1 + 3)` actions (its
`_flat_actions` variant) rather than a Tuple, which our algorithms do not take.

Seeding: each reset seeds the engine (`set_seed` takes effect at `new_episode`): with the seed given, or else
with one drawn from the env's generator, so `reset(seed=s)` then any actions replay exactly.

Headless: the engine is a child process (`vizdoom` binary) that ViZDoom starts with its window hidden and no X
server; `close()` ends it. It writes `_vizdoom.ini` and a `_vizdoom/` folder into its working directory, so it
starts from a scratch folder under the temp dir rather than the user's.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

OBS_W, OBS_H = 128, 72  # SF's --res_w / --res_h for Doom
FPS = 35  # Doom's tic rate: one tic a frame
TRAIN_FRAME_SKIP, EVAL_FRAME_SKIP = 4, 1
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scenario:
    cfg: str  # a cfg beside this file, or else vizdoom's own
    gathering_shaping: bool = False  # +1 when health rises (training only)
    train_reward_scale: float = 1.0  # SF's reward_scaling (training only)


SCENARIOS = {
    "doom_health_gathering_supreme": Scenario("doom_health_gathering_supreme.cfg", gathering_shaping=True),
    "doom_health_gathering": Scenario("doom_health_gathering.cfg", gathering_shaping=True),
    # SF uses ViZDoom's cfgs for these two as they are
    "doom_basic": Scenario("basic.cfg", train_reward_scale=0.01),
    "doom_defend_the_center": Scenario("defend_the_center.cfg"),
}

_init_lock = threading.Lock()  # init() changes the process's working directory for a moment


def _engine_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"deeprl-vizdoom-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class DoomEnv(gym.Env):
    """One ViZDoom game as a Gymnasium env (see the module doc). The engine starts on the first reset."""

    def __init__(self, cfg_path: str, *, frame_skip: int = TRAIN_FRAME_SKIP, render_mode: str | None = None):
        import vizdoom as vzd

        if render_mode not in (None, "rgb_array", "human"):
            raise ValueError(f"render_mode {render_mode!r} is not one of None, 'rgb_array', 'human'")
        if int(frame_skip) < 1:
            raise ValueError(f"frame_skip must be 1 or more, not {frame_skip}")
        self.frame_skip = int(frame_skip)
        self.render_mode = render_mode
        # a replay of frameskip-4 steps plays at real speed at 35/4 fps
        self.metadata = {"render_modes": ["rgb_array", "human"], "render_fps": FPS / self.frame_skip}
        self.game = vzd.DoomGame()
        self.game.load_config(str(cfg_path))
        # the cfg names its .wad alone; the maps are vizdoom's (deeprl ships none)
        wad = Path(self.game.get_doom_scenario_path()).name
        self.game.set_doom_scenario_path(os.path.join(vzd.scenarios_path, wad))
        self.game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        self.game.set_screen_format(vzd.ScreenFormat.RGB24)  # HxWx3 as it comes, no transpose
        self.game.set_window_visible(render_mode == "human")
        self.game.set_mode(vzd.Mode.PLAYER)  # the engine waits for each action: stepping is as fast as it runs
        engine_dir = _engine_dir()
        self.game.set_doom_config_path(str(engine_dir / "_vizdoom.ini"))
        self._engine_dir = engine_dir
        self.buttons = [b.name for b in self.game.get_available_buttons()]
        self.variables = [v.name for v in self.game.get_available_game_variables()]
        self.action_space = gym.spaces.Discrete(1 + len(self.buttons))
        self.observation_space = gym.spaces.Box(0, 255, (OBS_H, OBS_W, 3), dtype=np.uint8)
        # one-hot button lists, built once: make_action takes a list per call
        self._actions = [[0.0] * len(self.buttons)]
        for k in range(len(self.buttons)):
            self._actions.append([1.0 if i == k else 0.0 for i in range(len(self.buttons))])
        self._started = False
        self._screen = np.zeros((120, 160, 3), dtype=np.uint8)
        self._info: dict = {}
        self._last_step_time = 0.0

    def _start(self) -> None:
        with _init_lock:
            cwd = os.getcwd()
            os.chdir(self._engine_dir)  # the engine inherits it and writes its files there
            try:
                self.game.init()
            except Exception as exc:  # ViZDoom raises its own types (ViZDoomErrorException, ...)
                if self.render_mode == "human":
                    raise RuntimeError(
                        f"ViZDoom could not open its window ({exc}); a window needs a display, "
                        "use --no-render or 'deeprl record' instead"
                    ) from None
                raise
            finally:
                os.chdir(cwd)
        self._started = True

    def _observe(self) -> np.ndarray:
        import cv2

        state = self.game.get_state()
        if state is not None:  # None once the episode has ended: keep the last frame and variables
            self._screen = state.screen_buffer
            values = state.game_variables if state.game_variables is not None else ()
            self._info = dict(zip(self.variables, (float(v) for v in values)))
        return cv2.resize(self._screen, (OBS_W, OBS_H), interpolation=cv2.INTER_NEAREST)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if not self._started:
            self._start()
        # a seed for every episode: from the caller, else from the env's generator (itself seeded by the first
        # reset(seed=...)), so a seeded run replays whatever reset() calls follow
        episode_seed = seed if seed is not None else int(self.np_random.integers(2**31))
        self.game.set_seed(int(episode_seed) % 2**32)
        self.game.new_episode()
        obs = self._observe()
        return obs, dict(self._info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        reward = self.game.make_action(self._actions[int(action)], self.frame_skip)
        obs = self._observe()
        terminated = truncated = False
        if self.game.is_episode_finished():
            truncated = self.game.is_episode_timeout_reached() and not self.game.is_player_dead()
            terminated = not truncated
        if self.render_mode == "human":
            self._pace()
        return obs, float(reward), terminated, truncated, dict(self._info)

    def _pace(self) -> None:
        """Watching: hold each step to real time (the engine itself runs as fast as it can)."""
        wait = self.frame_skip / FPS - (time.perf_counter() - self._last_step_time)
        if wait > 0:
            time.sleep(wait)
        self._last_step_time = time.perf_counter()

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self._screen.copy()
        return None  # "human": the engine's own window shows the game

    def close(self) -> None:
        if self._started:
            self.game.close()
            self._started = False


class GatheringRewardShaping(gym.Wrapper):
    """SF's DoomGatheringRewardShaping: +1 on a step where HEALTH rises (a medkit), none on the last step.

    As in SF the first step after a reset only records the health, and the unshaped return goes into
    `info["true_objective"]` when the episode ends.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._prev_health = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._prev_health = None
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not (terminated or truncated):
            health = info.get("HEALTH", 0.0)
            if self._prev_health is not None and health > self._prev_health:
                reward += 1.0
            self._prev_health = health
        return obs, reward, terminated, truncated, info


class TrueObjective(gym.Wrapper):
    """`info["true_objective"]` = the unshaped return on the last step (what SF's enjoy reports)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._return = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._return = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if terminated or truncated:
            info["true_objective"] = self._return
        return obs, reward, terminated, truncated, info


def _scale(factor: float, reward: float) -> float:
    return reward * factor  # module level, so a training env pickles into a subprocess vector env


def cfg_path(scenario: Scenario) -> str:
    import vizdoom as vzd

    own = HERE / scenario.cfg
    return str(own if own.is_file() else Path(vzd.scenarios_path) / scenario.cfg)


def make_scenario(name: str, kwargs: dict, render_mode: str | None, training: bool) -> gym.Env:
    """The registry's builder. Env kwarg: `frame_skip` (default 4 when training, 1 at evaluation)."""
    from functools import partial

    kwargs = dict(kwargs)
    scenario = SCENARIOS[name]
    frame_skip = kwargs.pop("frame_skip", None)
    if kwargs:
        raise TypeError(f"got an unexpected keyword argument {sorted(kwargs)[0]!r}")
    if frame_skip is None:
        frame_skip = TRAIN_FRAME_SKIP if training else EVAL_FRAME_SKIP
    env: gym.Env = DoomEnv(cfg_path(scenario), frame_skip=int(frame_skip), render_mode=render_mode)
    env = TrueObjective(gym.wrappers.RecordEpisodeStatistics(env))
    if training and scenario.gathering_shaping:
        env = GatheringRewardShaping(env)
    if training and scenario.train_reward_scale != 1.0:
        env = gym.wrappers.TransformReward(env, partial(_scale, scenario.train_reward_scale))
    return env


def make_for(name: str) -> Callable[[dict, str | None, bool], gym.Env]:
    """A registry `make(kwargs, render_mode, training)` for one scenario."""

    def make(kwargs: dict, render_mode: str | None, training: bool) -> gym.Env:
        return make_scenario(name, kwargs, render_mode, training)

    return make


make_health_gathering_supreme = make_for("doom_health_gathering_supreme")
make_health_gathering = make_for("doom_health_gathering")
make_basic = make_for("doom_basic")
make_defend_the_center = make_for("doom_defend_the_center")
