"""Trajectory datasets: the course's Hub layout, shared by imitation learning (BC, GAIL) and Decision Transformers.

One row per episode with the four columns of the course's Decision Transformer data
(`edbeeching/decision_transformer_gym_replay`): `observations` [T, obs_dim] float32, `actions` [T] int64 for
Discrete actions or [T, act_dim] float32 for Box ones, `rewards` [T] float32 and `dones` [T] bool, where `dones`
marks termination (D4RL's `terminals`): an episode a time limit cut ends with False. Observation t is the one
action t was chosen from; the observation after the last action is not kept.

On disk a dataset is a folder as the Hub holds one: `data/train-NNNNN.parquet` shards written by Hugging Face
`datasets` (each write or append adds one, so appending never rewrites what is there) and `README.md`, a dataset
card whose front matter says which env made it (`deeprl:` env_id, env_kwargs, spaces) and how `load_dataset`
finds the shards. `datasets.load_dataset(DIR)` reads the folder too; `read` hands the trajectories back as numpy.

D4RL's three kinds of data come from our own agents: expert and medium are a trained and a half-trained agent's
episodes (`agent_episodes`, `deeprl dataset make`), replay is every episode a PPO or A2C run played while it trained
(`record_dataset: DIR`, `TrainingReplay`); a person's demonstrations come from `deeprl record-demo` (`Recorder`).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import yaml

from deeprl.errors import UserError

if TYPE_CHECKING:
    from deeprl.agent import Agent
    from deeprl.train import Run

COLUMNS = ("observations", "actions", "rewards", "dones")
CARD = "README.md"
SHARDS = "data"
SHARD = re.compile(r"^train-(\d{5})\.parquet$")
MAX_SHARDS = 10_000


@dataclass
class Trajectory:
    """One episode in the course's columns (see the module's docstring)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))


@dataclass
class TrajectoryDataset:
    """Trajectories read back from a folder, with what its card says about the env (`info`)."""

    trajectories: list[Trajectory]
    info: dict = field(default_factory=dict)

    @property
    def env_id(self) -> str:
        return str(self.info.get("env_id", ""))

    def returns(self) -> np.ndarray:
        return np.array([t.episode_return for t in self.trajectories], np.float64)

    def transitions(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (observation, action) pair of every episode, concatenated: what BC and GAIL's discriminator read."""
        if not self.trajectories:
            raise UserError("The dataset holds no episodes.")
        return (
            np.concatenate([t.observations for t in self.trajectories]),
            np.concatenate([t.actions for t in self.trajectories]),
        )

    def summary(self) -> dict:
        returns, lengths = self.returns(), [len(t) for t in self.trajectories]
        return {
            "env_id": self.env_id,
            "episodes": len(self.trajectories),
            "steps": int(sum(lengths)),
            "mean_return": float(returns.mean()) if len(returns) else None,
            "std_return": float(returns.std()) if len(returns) else None,
            "mean_length": float(np.mean(lengths)) if lengths else None,
            "terminated": int(sum(bool(t.dones[-1]) for t in self.trajectories if len(t))),
        }


# --------------------------------------------------------------------------------------------------------------
# Spaces: which observations and actions the flat columns can hold


def space_info(obs_space: gym.Space, action_space: gym.Space) -> dict:
    """What a card records of the env's spaces; one sentence for spaces the columns cannot hold."""
    if not isinstance(obs_space, gym.spaces.Box):
        raise UserError(
            f"Trajectory datasets hold vector observations (a Box); this env's are {type(obs_space).__name__}."
        )
    if isinstance(action_space, gym.spaces.Discrete):
        action = {"type": "Discrete", "n": int(action_space.n)}
    elif isinstance(action_space, gym.spaces.Box):
        action = {"type": "Box", "shape": [int(np.prod(action_space.shape))]}
    else:
        raise UserError(
            f"Trajectory datasets hold Discrete or Box actions; this env's are {type(action_space).__name__}."
        )
    return {"observation_shape": [int(np.prod(obs_space.shape))], "action_space": action}


def _features(info: dict) -> Any:  # a datasets.Features (imported here: `datasets` loads pandas and more)
    from datasets import Features, List, Value

    discrete = info["action_space"]["type"] == "Discrete"
    return Features(
        {
            "observations": List(List(Value("float32"))),
            "actions": List(Value("int64")) if discrete else List(List(Value("float32"))),
            "rewards": List(Value("float32")),
            "dones": List(Value("bool")),
        }
    )


def _columns(trajectories: Sequence[Trajectory], info: dict) -> dict[str, list]:
    obs_dim = info["observation_shape"][0]
    discrete = info["action_space"]["type"] == "Discrete"
    out: dict[str, list] = {c: [] for c in COLUMNS}
    for t in trajectories:
        n = len(t.rewards)
        obs = np.asarray(t.observations, np.float32).reshape(n, obs_dim)
        acts = np.asarray(t.actions, np.int64 if discrete else np.float32)
        acts = acts.reshape(n) if discrete else acts.reshape(n, -1)
        if len(t.dones) != n or n == 0:
            raise ValueError("a trajectory's columns must have one entry per step, and at least one step")
        out["observations"].append(obs)
        out["actions"].append(acts)
        out["rewards"].append(np.asarray(t.rewards, np.float32))
        out["dones"].append(np.asarray(t.dones, bool))
    return out


# --------------------------------------------------------------------------------------------------------------
# Folder: write, append, read


def _shards(folder: Path) -> list[Path]:
    data = folder / SHARDS
    if not data.is_dir():
        return []
    return sorted(p for p in data.iterdir() if SHARD.match(p.name) and p.is_file())[:MAX_SHARDS]


def read_info(folder: str | Path) -> dict:
    """The `deeprl:` block of a dataset card; one sentence when the folder is not a dataset."""
    from deeprl.hub.card import front_matter

    folder = Path(folder)
    meta = front_matter(folder / CARD) if (folder / CARD).is_file() else None
    info = (meta or {}).get("deeprl")
    if not isinstance(info, dict) or not _shards(folder):
        raise UserError(
            f"{folder} is not a trajectory dataset (no {CARD} with a deeprl: section, or no {SHARDS}/train-*.parquet); "
            "make one with 'deeprl dataset make' or 'deeprl record-demo'."
        )
    try:
        info["observation_shape"] = [int(info["observation_shape"][0])]
        kind = info["action_space"]["type"]
        if kind not in ("Discrete", "Box"):
            raise ValueError(kind)
    except (KeyError, TypeError, ValueError, IndexError):
        raise UserError(
            f"{folder / CARD} does not describe the dataset's spaces; it was not written by deeprl."
        ) from None
    return info


def _card(info: dict, lines: list[str]) -> str:
    meta = {
        "tags": ["deep-rl-course", "deeprl", "reinforcement-learning", "imitation-learning", info["env_id"]],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": f"{SHARDS}/train-*"}]}],
        "deeprl": info,
    }
    head = yaml.safe_dump(meta, sort_keys=False)
    body = "\n".join(f"- {line}" for line in lines)
    return (
        f"---\n{head}---\n# Trajectories of {info['env_id']}\n\nOne row per episode: observations, actions, rewards, "
        "dones (termination), as the course's Decision Transformer datasets. Read with "
        "`deeprl dataset show` or `datasets.load_dataset`.\n\nWritten:\n"
        f"{body}\n"
    )


def _card_lines(folder: Path) -> list[str]:
    text = (folder / CARD).read_text(errors="replace") if (folder / CARD).is_file() else ""
    return [line[2:] for line in text.split("Written:\n", 1)[-1].splitlines() if line.startswith("- ")][:MAX_SHARDS]


@contextmanager
def _quiet() -> Iterator[None]:
    """`datasets` draws a progress bar for every file it converts; a command shows its own summary instead."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def write(
    folder: str | Path,
    trajectories: Sequence[Trajectory],
    *,
    env_id: str,
    env_kwargs: dict | None = None,
    spaces: dict,
    source: str,
    append: bool = False,
) -> Path:
    """Write `trajectories` as one new shard of the dataset in `folder` (created; with append=True an existing
    dataset of the same env gets the shard added). `spaces` is `space_info(...)`; `source` says where the episodes
    came from (the card lists it). Returns the shard's path."""
    from datasets import Dataset

    from deeprl.modelio import atomic_write_bytes
    from deeprl.paths import check_can_create

    folder = Path(folder)
    if not trajectories:
        raise UserError("No episodes to write.")
    info = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {}), **spaces}
    exists = (folder / CARD).is_file() or bool(_shards(folder))
    if exists and not append:
        raise UserError(f"{folder} holds a dataset already; add to it with --append, or pick another folder.")
    if exists:
        have = read_info(folder)
        mine = {k: have.get(k) for k in info}
        if mine != info:
            raise UserError(
                f"{folder} holds trajectories of {have.get('env_id')} with other spaces or options than these "
                f"({env_id} {info['env_kwargs'] or ''}); write them to another folder."
            )
    elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"{folder} exists and is not an empty folder or a dataset; pick another folder.")
    check_can_create(folder, "The dataset folder", "pick another one with -o")
    shards = _shards(folder)
    if len(shards) >= MAX_SHARDS:
        raise UserError(f"{folder} holds {MAX_SHARDS:,} shards, as many as a dataset may; write to another folder.")
    number = int(SHARD.match(shards[-1].name).group(1)) + 1 if shards else 0  # type: ignore[union-attr]
    path = folder / SHARDS / f"train-{number:05d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset = Dataset.from_dict(_columns(trajectories, info), features=_features(info))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)  # not train-*: never read half
    os.close(fd)
    try:
        with _quiet():
            dataset.to_parquet(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    returns = np.array([t.episode_return for t in trajectories])
    line = f"{path.name}: {len(trajectories)} episodes from {source} (mean return {returns.mean():.2f})"
    atomic_write_bytes(folder / CARD, _card(info, [*_card_lines(folder), line]).encode())
    return path


def append(folder: str | Path, trajectories: Sequence[Trajectory], **kwargs: Any) -> Path:
    """`write(..., append=True)`: one more shard in the dataset (created when absent)."""
    return write(folder, trajectories, append=True, **kwargs)


def read(folder: str | Path) -> TrajectoryDataset:
    """Every episode of the dataset in `folder`, as numpy arrays (shards in the order they were written)."""
    from datasets import Dataset

    folder = Path(folder)
    info = read_info(folder)
    with tempfile.TemporaryDirectory(prefix="deeprl-dataset-") as cache, _quiet():
        try:  # in memory, with its scratch files in a folder that goes away: nothing left in ~/.cache
            rows = Dataset.from_parquet([str(p) for p in _shards(folder)], keep_in_memory=True, cache_dir=cache)
            return TrajectoryDataset(trajectories(rows), info)
        except Exception as exc:  # a damaged or foreign shard: what pyarrow or datasets said, as one sentence
            raise UserError(f"Cannot read the trajectories in {folder / SHARDS}: {str(exc).splitlines()[0]}") from None


def trajectories(rows: Any) -> list[Trajectory]:
    """The episodes of any `datasets.Dataset` with the course's four columns: one of ours, or the Hub's
    (`load_dataset("edbeeching/decision_transformer_gym_replay", "halfcheetah-medium-v2", split="train")`).
    Integer actions are Discrete ones ([T]); any others are vectors ([T, act_dim])."""
    rows = rows.with_format("numpy")
    out = []
    for obs, acts, rews, dones in zip(*(rows[c] for c in COLUMNS), strict=True):
        n, acts = len(rews), np.asarray(acts)
        discrete = np.issubdtype(acts.dtype, np.integer)
        out.append(
            Trajectory(
                observations=np.asarray(obs, np.float32).reshape(n, -1),
                actions=acts.astype(np.int64).reshape(n) if discrete else acts.astype(np.float32).reshape(n, -1),
                rewards=np.asarray(rews, np.float32).reshape(n),
                dones=np.asarray(dones, bool).reshape(n),
            )
        )
    return out


# --------------------------------------------------------------------------------------------------------------
# Recording episodes: an agent's (deeprl dataset make), a person's (deeprl record-demo) or a training run's


class Recorder(gym.Wrapper):
    """Keeps each episode's observations, actions, rewards and terminations as the env is stepped, so that any
    loop that plays the env (the evaluation protocol's `play_episode`, record-demo's keyboard loop) records
    trajectories without knowing it. `take()` hands back the episode played since the last reset."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._obs: list[np.ndarray] = []
        self._actions: list[Any] = []
        self._rewards: list[float] = []
        self._dones: list[bool] = []
        self._last: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self._obs, self._actions, self._rewards, self._dones = [], [], [], []
        self._last = np.asarray(obs, np.float32).ravel()
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._last is not None:
            self._obs.append(self._last)
            self._actions.append(np.asarray(action))
            self._rewards.append(float(reward))
            self._dones.append(bool(terminated))
        self._last = np.asarray(obs, np.float32).ravel()
        return obs, reward, terminated, truncated, info

    def take(self) -> Trajectory | None:
        """The episode since the last reset (None when no step was taken)."""
        if not self._rewards:
            return None
        discrete = isinstance(self.env.action_space, gym.spaces.Discrete)
        actions = np.asarray(self._actions, np.int64 if discrete else np.float32)
        return Trajectory(
            observations=np.stack(self._obs),
            actions=actions.reshape(len(self._rewards)) if discrete else actions.reshape(len(self._rewards), -1),
            rewards=np.asarray(self._rewards, np.float32),
            dones=np.asarray(self._dones, bool),
        )


class TrainingReplay:
    """D4RL's "replay" dataset (halfcheetah-medium-replay: every episode the agent played while it trained), recorded
    from the vector env a run trains on. It wraps that env, so the on-policy collector (deeprl.rollout) steps it as
    it is and nothing there knows. It sees what the env itself gives and receives: observations and rewards before
    any VecNormalize-style normalization (that happens in the collector, above it), and actions as the env got
    them, clipped to a Box.

    The vector env resets finished envs in the same step (SAME_STEP autoreset, as all of deeprl's do): the
    observation a step returns for a finished env is already its next episode's first. Every finished episode is
    kept, in the order they finish (envs that finish in the same step by index); `dones` is its termination, so an
    episode a time limit cut ends with False. Finished episodes go to `folder` as one more shard every
    `flush_seconds` (or `flush_steps` steps) and when the env is closed, which the training loop does when the run
    ends or is stopped: a Ctrl-C leaves a readable dataset. Episodes the end of training cuts off are dropped,
    and so are those a reset interrupts (a resumed run starts fresh episodes: env states are not checkpointed).
    Episodes written after the run's last checkpoint and before a hard kill (SIGKILL, a crash) are written again,
    differently, when it resumes from that checkpoint."""

    def __init__(
        self,
        venv: Any,
        folder: str | Path,
        *,
        env_id: str,
        env_kwargs: dict | None,
        source: str,
        append: bool = False,
        flush_seconds: float = 30.0,
        flush_steps: int = 100_000,
    ):
        mode = getattr(venv, "metadata", {}).get("autoreset_mode")
        if mode is not None and mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(f"TrainingReplay needs a SAME_STEP autoreset vector env, not {mode}")
        self.env, self.folder, self.source = venv, Path(folder), source
        self.info = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {})}
        self.spaces = space_info(venv.single_observation_space, venv.single_action_space)
        self.discrete = self.spaces["action_space"]["type"] == "Discrete"
        self.flush_seconds, self.flush_steps = flush_seconds, flush_steps
        self._check_folder(append)
        self.written = {"episodes": 0, "steps": 0}  # by this process
        self._reset_buffers(None)

    def _check_folder(self, append: bool) -> None:
        """Refuse before the run trains what the first flush would refuse after minutes of it."""
        from deeprl.paths import check_can_create

        check_can_create(self.folder, "The dataset folder", "pick another one for record_dataset")
        folder = self.folder
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            if not append:
                raise UserError(
                    f"{folder} is not an empty folder; record this run's episodes to a new one (a run continued "
                    "with --resume appends to its own)."
                )
            have = read_info(folder)  # one sentence when it is not a dataset
            if {k: have.get(k) for k in (*self.info, *self.spaces)} != {**self.info, **self.spaces}:
                raise UserError(
                    f"{folder} holds trajectories of {have.get('env_id')} with other spaces or options than this "
                    f"run's env; record to another folder."
                )

    def _reset_buffers(self, obs: Any) -> None:
        n = self.num_envs
        # per vector step since the oldest unfinished episode began: (obs, actions, rewards, terminated), [n_envs, ...]
        self._steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._base = 0  # the step number of _steps[0]
        self._t = 0  # vector steps since the reset
        self._start = np.zeros(n, np.int64)  # the step each env's current episode began at
        self._finished: list[tuple[int, int, int]] = []  # (env, first step, step after the last), in finishing order
        self._finished_steps = 0
        self._obs = None if obs is None else np.array(obs, np.float32).reshape(n, -1)
        self._last_flush = time.monotonic()

    def __getattr__(self, name: str) -> Any:  # num_envs, spaces, metadata, ...: the wrapped env's
        return getattr(self.env, name)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.flush()  # what finished before the reset; the episodes it cut off are dropped
        self._reset_buffers(obs)
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict]:
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if self._obs is None:
            raise RuntimeError("TrainingReplay was stepped before its first reset")
        ended = np.array(terminated, bool)
        self._steps.append((self._obs, np.array(actions), np.array(rewards, np.float32), ended))
        self._obs = np.array(obs, np.float32).reshape(self.num_envs, -1)
        self._t += 1
        done = ended | np.asarray(truncated, bool)
        if np.count_nonzero(done):
            for i in np.flatnonzero(done):
                self._finished.append((int(i), int(self._start[i]), self._t))
                self._finished_steps += self._t - int(self._start[i])
                self._start[i] = self._t
            if self._finished_steps >= self.flush_steps or time.monotonic() - self._last_flush >= self.flush_seconds:
                self.flush()
        return obs, rewards, terminated, truncated, info

    def flush(self) -> Path | None:
        """Write the episodes finished since the last flush as one shard; returns its path (None: none finished)."""
        self._last_flush = time.monotonic()
        if not self._finished:
            return None
        base = self._base
        obs, actions, rewards, terminated = (np.stack(column) for column in zip(*self._steps, strict=True))
        episodes = [
            Trajectory(
                observations=obs[a - base : b - base, i],
                actions=actions[a - base : b - base, i],
                rewards=rewards[a - base : b - base, i],
                dones=terminated[a - base : b - base, i],
            )
            for i, a, b in self._finished
        ]
        path = append(self.folder, episodes, **self.info, spaces=self.spaces, source=self.source)
        self.written["episodes"] += len(episodes)
        self.written["steps"] += self._finished_steps
        self._finished, self._finished_steps = [], 0
        keep = int(self._start.min())  # the steps of unfinished episodes stay for a later flush
        del self._steps[: keep - base]
        self._base = keep
        return path

    def close(self, **kwargs: Any) -> None:
        """Write what has finished, then close the env. Called as a run ends or stops, before its model is saved: a
        failed write is then a warning, not a lost model."""
        from deeprl.log import note, warn

        try:
            self.flush()
            if self.written["episodes"]:
                episodes, steps = self.written["episodes"], self.written["steps"]
                note(f"recorded {episodes:,} training episodes ({steps:,} steps) in {self.folder}.")
        except (OSError, UserError) as exc:
            warn(f"the last training episodes could not be added to {self.folder}: {exc}")
        finally:
            self.env.close(**kwargs)


def record_training(venv: Any, folder: str | Path, run: Run) -> TrainingReplay:
    """The `record_dataset: DIR` setting of PPO and A2C: `venv` (the run's training env) recording every finished
    episode into DIR; a run continued with --resume appends to the same folder."""
    try:
        return TrainingReplay(
            venv,
            folder,
            env_id=run.env_id,
            env_kwargs=run.env_kwargs,
            source=f"the training replay of {run.algo} run {run.run_dir} (seed {run.seed})",
            append=run.resumed is not None,
        )
    except BaseException:
        venv.close()  # (a refused folder: the run stops before its loop, which would close it)
        raise


def agent_episodes(
    agent: Agent,
    n_episodes: int,
    *,
    env_id: str | None = None,
    seed: int = 0,
    deterministic: bool | None = None,
) -> tuple[list[Trajectory], dict]:
    """`n_episodes` played by `agent` as the evaluation protocol plays them (deeprl.evaluation.play_episode: the
    spec's step cap, deterministic actions unless the env or `deterministic` says otherwise, seeds seed, seed+1,
    ...). Returns (trajectories, the card's info: env_id, env_kwargs and spaces)."""
    from deeprl.envs import make_env, resolve_env
    from deeprl.evaluation import play_episode

    spec, kwargs = resolve_env(env_id or agent.env_id, agent.env_kwargs)
    det = spec.deterministic if deterministic is None else deterministic
    env = Recorder(make_env(spec.course_id, kwargs, training=False))
    try:
        spaces = space_info(env.observation_space, env.action_space)
        trajectories = []
        for i in range(n_episodes):
            play_episode(agent, env, seed=seed + i, max_steps=spec.eval_max_steps, deterministic=det)
            episode = env.take()
            if episode is not None:
                trajectories.append(episode)
    finally:
        env.close()
    return trajectories, {"env_id": spec.course_id, "env_kwargs": kwargs, "spaces": spaces}


def demonstrations(folder: str | None, env_id: str, obs_space: gym.Space, action_space: gym.Space) -> TrajectoryDataset:
    """The `demos: DIR` of an imitation algorithm's settings, read and checked against the env it trains on."""
    if not folder:
        raise UserError(
            f"Imitation learning needs demonstrations: give --hyperparams demos:DIR, a dataset of {env_id} made with "
            "'deeprl dataset make' or 'deeprl record-demo'."
        )
    if not Path(folder).is_dir():
        raise UserError(f"The demonstrations folder {folder} does not exist.")
    dataset = read(folder)
    want = space_info(obs_space, action_space)
    have = {k: dataset.info.get(k) for k in want}
    if have != want:
        raise UserError(
            f"The demonstrations in {folder} are of {dataset.env_id or 'another env'} {have}, which does not match "
            f"{env_id} {want}; record demonstrations of {env_id}."
        )
    return dataset
