"""The Python API for notebooks, shaped as Stable-Baselines3 users expect: train, evaluate, push, load, predict.

    import deeprl

    run = deeprl.train("ppo", "LunarLander-v2", n_timesteps=1_000_000)   # logs/ppo/LunarLander-v2_1
    print(deeprl.evaluate(run))                                          # the course protocol
    deeprl.push(run, repo_id="alice/ppo-LunarLander-v2")                 # model card, replay, one commit
    model = deeprl.load("alice/ppo-LunarLander-v2")
    action, state = model.predict(obs, deterministic=True)

Each call is a thin layer over what the command line runs (deeprl.train.train, deeprl.evaluation.evaluate,
deeprl.publish.push_model, deeprl.agent.load_agent), so a notebook and `deeprl train/evaluate/push/load` give the
same run folders, figures and repositories. `import deeprl` stays light: these names are loaded on first use
(the package's `__getattr__`).

`deeprl.train` is also the name of the module that holds the training run (deeprl/train.py). Importing this
module makes that module callable (`_CallableModule`), and deeprl/__init__.py imports this module as soon as
deeprl.train is imported from anywhere: `deeprl.train(...)` trains through `train` below, while `import
deeprl.train`, `from deeprl import train` and `deeprl.train.train(...)` keep the module as the code base uses it.
"""

from __future__ import annotations

import inspect
import os
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import deeprl.train as _train_module
from deeprl.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import gymnasium as gym

    from deeprl.agent import Agent
    from deeprl.loop import Callback


@dataclass(frozen=True)
class Run:
    """A finished (or stopped) training run: its folder and what it trained.

    `run_dir` is the RL-Zoo style folder (`logs/<algo>/<env tag>_<N>/`) holding config.json and
    model.safetensors; the command line takes it as it is (`deeprl evaluate RUN_DIR`), and so does `os.fspath`.
    """

    algo: str
    env_id: str
    env_tag: str
    env_kwargs: dict
    seed: int
    hyperparams: dict = field(repr=False)
    run_dir: Path

    def agent(self) -> Model:
        """The trained model, ready to `predict` (the same as `deeprl.load(run.run_dir)`)."""
        return load(self.run_dir)

    def evaluate(self, n_eval_episodes: int | None = None, seed: int = 0) -> Results:
        """The course protocol's figures for this run's model (see `deeprl.evaluate`)."""
        return evaluate(self, n_eval_episodes=n_eval_episodes, seed=seed)

    def push(self, repo_id: str, hub: str = "local", **options: Any) -> dict:
        """Evaluate, record, write the model card and commit this run to a hub (see `deeprl.push`)."""
        return push(self, repo_id=repo_id, hub=hub, **options)

    def __fspath__(self) -> str:
        return os.fspath(self.run_dir)


@dataclass(frozen=True)
class Results:
    """The course protocol's figures (design.md, "Evaluation protocol").

    `result` is `mean_reward - std_reward` (population std), the figure the course's leaderboard ranks by;
    `figures` holds every key that results.json and `deeprl evaluate --json` carry. Unpacks as SB3's
    `evaluate_policy` does: `mean_reward, std_reward = deeprl.evaluate(model)`.
    """

    env_id: str
    mean_reward: float
    std_reward: float
    result: float
    n_eval_episodes: int
    episode_rewards: list[float] = field(repr=False)
    episode_lengths: list[int] = field(repr=False)
    figures: dict = field(repr=False)

    def __iter__(self) -> Iterator[float]:
        return iter((self.mean_reward, self.std_reward))

    def __str__(self) -> str:
        from deeprl.commands import format_result

        return format_result(self.figures)


class Model:
    """A trained agent, as SB3's `model`: `predict(obs)` for your own loop, and everything deeprl's evaluation,
    replay and push take (it is a deeprl agent: `act`, `env_id`, `env_kwargs`, `config`).

    `agent` is the algorithm's own agent underneath (deeprl.agent.load_agent's), `source` where it was loaded from.
    """

    def __init__(self, agent: Agent):
        self.agent = agent
        self.config: dict = agent.config
        self.env_id: str = agent.env_id
        self.env_kwargs: dict = agent.env_kwargs
        self.algo: str = str(agent.config.get("algo", ""))
        self.source: str = str(getattr(agent, "source", ""))
        self._spaces: tuple[gym.Space, gym.Space] | None = None

    def __repr__(self) -> str:
        return f"Model(algo={self.algo!r}, env_id={self.env_id!r}, source={self.source!r})"

    @property
    def observation_space(self) -> gym.Space:
        """The env's observation space (the env is made once to read it)."""
        return self._env_spaces()[0]

    @property
    def action_space(self) -> gym.Space:
        return self._env_spaces()[1]

    def _env_spaces(self) -> tuple[gym.Space, gym.Space]:
        if self._spaces is None:
            from deeprl.envs import make_env

            env = make_env(self.env_id, self.env_kwargs)
            self._spaces = (env.observation_space, env.action_space)
            env.close()
        return self._spaces

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """One observation in, one env action out (the agent protocol that evaluation and replays use)."""
        return self.agent.act(obs, deterministic=deterministic)

    def reset(self) -> None:
        """Start a new episode (a recurrent agent forgets its state; the others hold none)."""
        if hasattr(self.agent, "reset"):
            self.agent.reset()

    def observe(self, reward: float) -> None:
        """The reward the last action earned, for an agent that conditions on it (a Decision Transformer)."""
        if hasattr(self.agent, "observe"):
            self.agent.observe(reward)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The action for one observation or a batch of them, as SB3's `model.predict`: `(action, state)`.

        A single observation (the env's observation shape) gives one action; a batch (a leading dimension, as a
        vector env returns) gives one per row. `state` is None for a feed-forward policy; for a recurrent one
        (APPO) it is the GRU state, one row per observation: pass back what the last call returned, with
        `episode_start` True where an episode began (a zero state). Unlike `act`, `predict` decides on every
        call: where a recurrent model was trained at a frame skip its env does not apply, hold each action that
        many frames yourself.
        """
        batched = _is_batch(self.observation_space, observation, self.env_id)
        rows = _rows(observation) if batched else [observation]
        core = getattr(getattr(self.agent, "model", None), "core", None)
        if core is not None:  # a recurrent actor-critic (deeprl.policies.recurrent): the batch in one step
            actions, new_state = self._recurrent(rows, state, episode_start, deterministic)
        else:
            actions = np.stack([np.asarray(self.agent.act(obs, deterministic=deterministic)) for obs in rows])
            new_state = None
        return (actions if batched else actions[0]), new_state

    def _recurrent(
        self, rows: list[Any], state: Any, episode_start: Any, deterministic: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        model: Any = getattr(self.agent, "model")  # noqa: B009  # checked by predict
        n = len(rows)
        h = model.initial_state(n)
        if state is not None:
            given = np.asarray(state, dtype=np.float32)
            if given.size != h.numel():
                raise UserError(
                    f"The recurrent state must hold {n} row(s) of {h.shape[1]} values (what predict returned), "
                    f"not an array of shape {given.shape}."
                )
            h = torch.from_numpy(given.reshape(h.shape).copy())
        if episode_start is not None:
            starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(-1))
            if starts.numel() != n:
                raise UserError(f"episode_start must hold one flag per observation ({n}), not {starts.numel()}.")
            h[starts] = 0.0
        with torch.inference_mode():
            logits, _, h = model.step(torch.as_tensor(np.stack(rows)), h)
            if deterministic:
                actions = logits.argmax(-1)
            else:
                generator = getattr(self.agent, "generator", None)
                actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
        return actions.numpy(), h.numpy().copy()


def _is_batch(space: gym.Space, obs: Any, env_id: str) -> bool:
    """True for a batch of observations (one leading dimension more than the space's), False for one
    observation, a UserError for anything else (SB3's is_vectorized_observation, for every space)."""
    spaces = getattr(space, "spaces", None)
    if isinstance(spaces, dict):  # a Dict space: every key must agree
        if not isinstance(obs, dict) or set(obs) != set(spaces):
            raise UserError(f"{env_id} observations are dicts with the keys {sorted(spaces)}; give one of those.")
        flags = {_is_batch(sub, obs[key], env_id) for key, sub in spaces.items()}
        if len(flags) > 1:
            raise UserError(f"Some keys of this {env_id} observation are batched and some are not.")
        return flags.pop()
    want = space.shape
    if want is None:  # a space without a shape (Tuple, Text): one observation
        return False
    shape = np.shape(obs)
    if shape == tuple(want):
        return False
    if len(shape) == len(want) + 1 and shape[1:] == tuple(want):
        return True
    raise UserError(
        f"An observation of shape {shape} fits neither {env_id}'s observations (shape {tuple(want)}) nor a "
        "batch of them."
    )


def _rows(batch: Any) -> list[Any]:
    if isinstance(batch, dict):
        n = len(next(iter(batch.values())))
        return [{k: v[i] for k, v in batch.items()} for i in range(n)]
    return list(np.asarray(batch))


def _positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{name} must be a whole number of at least 1, not {value!r}.")
    return int(value)


def train(
    algo: str,
    env_id: str,
    n_timesteps: int | None = None,
    seed: int = 0,
    log_folder: str | os.PathLike[str] | None = None,
    *,
    env_kwargs: dict | None = None,
    device: str = "auto",
    progress: bool = True,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
    **hyperparams: Any,
) -> Run:
    """Train `algo` on a course env and return the run; `deeprl train --algo ALGO --env ENV_ID` in Python.

    Args:
        algo: qlearning, reinforce, dqn, a2c, ppo, appo, selfplay.
        env_id: the course's env id, e.g. "LunarLander-v2", "Taxi-v3", "FrozenLake-v1" (see `deeprl envs`).
        n_timesteps: the budget in env steps; None keeps the course's figure (deeprl/hyperparams/<algo>.yml).
            For the episode-budgeted algorithms (qlearning, reinforce) it caps their n_training_episodes.
        seed: the run's seed (same seed, same model).
        log_folder: where run folders go, RL-Zoo style (default "logs": logs/<algo>/<env tag>_<N>/).
        env_kwargs: the env's options, e.g. {"map_name": "4x4", "is_slippery": False} for FrozenLake.
        device: "auto", "cpu" or "cuda".
        progress: print progress (a bar on a terminal, a line every few seconds in a notebook).
        resume: continue the newest run of this algo and env under log_folder from its checkpoint (its own
            settings; n_timesteps, if given, is the new budget).
        callbacks: deeprl.loop.Callback objects, called as training goes (they can stop it).
        **hyperparams: any hyperparameter of the algorithm (learning_rate=3e-4, n_envs=16, ...), over the
            course's defaults.

    Interrupting the kernel stops the run after its current step, saving a checkpoint and the model as it stood
    (evaluate or push that run folder as it is), then raises KeyboardInterrupt; the same call with resume=True
    continues it.
    """
    budget = _positive("n_timesteps", n_timesteps)
    done = _train_module.train(
        algo,
        env_id,
        env_kwargs=env_kwargs,
        overrides=hyperparams,
        seed=seed,
        log_folder=os.fspath(log_folder) if log_folder is not None else "logs",
        n_timesteps=budget,
        device=device,
        show_progress=progress,
        resume=resume,
        callbacks=callbacks,
    )
    return Run(
        algo=done.algo,
        env_id=done.env_id,
        env_tag=done.env_tag,
        env_kwargs=dict(done.env_kwargs),
        seed=done.seed,
        hyperparams=dict(done.hyperparams),
        run_dir=Path(done.run_dir),
    )


def load(
    repo_id_or_path: str | os.PathLike[str] | Run,
    *,
    hub: str | None = None,
    revision: str | None = None,
    env: str | None = None,
) -> Model:
    """Load a model to `predict` with; what `deeprl evaluate` accepts is accepted here.

    Args:
        repo_id_or_path: a hub repo id ("alice/ppo-LunarLander-v2"), a run or model folder, a run returned by
            `deeprl.train`, a course notebook's q-learning.pkl, or a Stable-Baselines3 .zip (read without
            unpickling anything).
        hub: "local" (default: DEEPRL_HOME/hub) or "hf" (the Hugging Face Hub) for a repo id.
        revision: a commit, branch or tag of the repo (default: the latest).
        env: the env id an SB3 .zip plays, where its name and card do not say.

    Nothing read from a file or a hub is executed: weights are safetensors, settings JSON.
    """
    from deeprl.agent import load_agent

    target = repo_id_or_path.run_dir if isinstance(repo_id_or_path, Run) else repo_id_or_path
    if not isinstance(target, (str, os.PathLike)):
        raise UserError(f"deeprl.load takes a repo id, a folder or a run, not a {type(target).__name__}.")
    return Model(load_agent(os.fspath(target), revision=revision, hub=hub, env=env))


def evaluate(
    model_or_repo_or_run: Any,
    n_eval_episodes: int | None = None,
    seed: int = 0,
    env_id: str | None = None,
    *,
    env_kwargs: dict | None = None,
    deterministic: bool | None = None,
    hub: str | None = None,
) -> Results:
    """Evaluate by the course protocol, as `deeprl evaluate` and the leaderboard do; returns the figures.

    Args:
        model_or_repo_or_run: a run from `deeprl.train`, a model from `deeprl.load`, or anything `deeprl.load`
            takes (a repo id, a folder, a .pkl or SB3 .zip).
        n_eval_episodes: None keeps the protocol's count: 10, or 100 for Taxi-v3 (the course's 100 fixed seeds)
            and FrozenLake.
        seed: episode i is reset with seed + i (Taxi: the course's seeds).
        env_id, env_kwargs: evaluate on another course env, or other env options (a FrozenLake map), than the
            model's own; a new env_id starts from that env's default options.
        deterministic: None keeps the env's rule (argmax everywhere; sampled on Atari, as the course evaluates).
        hub: "local" or "hf", for a repo id.

    The returns are the original env's, undiscounted, unnormalized and unclipped; `result` is mean - std.
    """
    from deeprl.evaluation import evaluate as course_protocol

    episodes = _positive("n_eval_episodes", n_eval_episodes)
    model = model_or_repo_or_run
    if isinstance(model, (str, os.PathLike, Run)):
        model = load(model, hub=hub)
    elif not callable(getattr(model, "act", None)) or not hasattr(model, "env_id"):
        raise UserError(f"deeprl.evaluate takes a run, a model, a repo id or a folder, not a {type(model).__name__}.")
    figures = course_protocol(
        model,
        env_id=env_id,
        env_kwargs=env_kwargs if env_kwargs is not None or env_id is None else {},
        n_eval_episodes=episodes,
        seed=seed,
        deterministic=deterministic,
    )
    return Results(
        env_id=figures["env_id"],
        mean_reward=figures["mean_reward"],
        std_reward=figures["std_reward"],
        result=figures["result"],
        n_eval_episodes=figures["n_eval_episodes"],
        episode_rewards=list(figures["episode_rewards"]),
        episode_lengths=list(figures["episode_lengths"]),
        figures=figures,
    )


def push(
    run: Any,
    repo_id: str,
    hub: str = "local",
    *,
    commit_message: str | None = None,
    record_video: bool = True,
    n_eval_episodes: int | None = None,
    seed: int = 0,
) -> dict:
    """Publish a run to a hub, as `deeprl push`: evaluate it by the course protocol, record a replay, write the
    model card and commit it all as one revision. Returns {repo_id, revision, location, hub, results}.

    Args:
        run: a run from `deeprl.train`, a model from `deeprl.load`, a run or model folder, or a course .pkl.
        repo_id: NAMESPACE/NAME, e.g. "alice/ppo-LunarLander-v2".
        hub: "local" (DEEPRL_HOME/hub, git-versioned; the leaderboard ranks it) or "hf" (the Hugging Face Hub).
        commit_message: default "Push <env> agent: mean_reward M +/- S".
        record_video: False skips replay.mp4.
        n_eval_episodes, seed: as `deeprl.evaluate`.
    """
    from deeprl.publish import push_model

    episodes = _positive("n_eval_episodes", n_eval_episodes)
    if isinstance(run, Model):
        if not run.source or not Path(run.source).exists():
            raise UserError("This model has no folder on disk to push; push the run or the folder it came from.")
        target: str | os.PathLike[str] = run.source
    elif isinstance(run, (str, os.PathLike)):  # a Run is an os.PathLike: its folder
        target = run
    else:
        raise UserError(f"deeprl.push takes a run, a model or a folder, not a {type(run).__name__}.")
    return push_model(
        os.fspath(target),
        repo_id,
        hub=hub,
        commit_message=commit_message,
        record_video=record_video,
        n_eval_episodes=episodes,
        seed=seed,
    )


class _CallableModule(types.ModuleType):
    """The class of the module deeprl.train once this API is loaded: still that module in every way, and calling
    it trains through `deeprl.api.train`, so `deeprl.train("ppo", "CartPole-v1")` works as users expect while
    `import deeprl.train` keeps giving the module the code base imports. help() shows both docs."""

    def __call__(self, *args: Any, **kwargs: Any) -> Run:
        return train(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(train)

    @property  # a data descriptor, so help() reads it before the module's own __doc__
    def __doc__(self) -> str | None:  # type: ignore[override]
        own = self.__dict__.get("__doc__") or ""
        return f"Call deeprl.train(...) to train (deeprl.api.train):\n\n{inspect.getdoc(train)}\n\n{own}"


if not isinstance(_train_module, _CallableModule):
    _train_module.__class__ = _CallableModule
