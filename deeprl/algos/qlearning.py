"""Q-Learning from scratch (Unit 2), the course's update rule on many episodes at once.

    Q(s, a) <- Q(s, a) + lr * [r + gamma * max_a' Q(s', a') - Q(s, a)]
    epsilon(episode) = min_eps + (max_eps - min_eps) * exp(-decay_rate * episode)

The course steps one episode at a time in Python. Here `n_envs` episodes run side by side in arrays
(deeprl.envs.tabular); each keeps its own episode index, so every episode sees the course's epsilon schedule.
When two side-by-side episodes update the same (s, a) in one step, the last write wins, as in asynchronous
Q-learning.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeprl.envs import make_env
from deeprl.envs.tabular import TabularBatch
from deeprl.errors import UserError
from deeprl.modelio import check_shape
from deeprl.settings import defaults


@dataclass
class Settings:
    """The course's Q-Learning settings (Unit 2's notebook; hyperparams/qlearning.yml holds its per-env values).

    :param n_training_episodes: episodes to train
    :param n_timesteps: optional cap on env steps; training stops at whichever comes first
    :param learning_rate: lr, the step towards the TD target
    :param gamma: discount factor
    :param max_steps: an episode is cut after this many steps
    :param max_epsilon: exploration at the first episode
    :param min_epsilon: exploration it decays to
    :param decay_rate: epsilon's exponential decay per episode
    :param n_envs: episodes played side by side
    :param checkpoint_every: episodes between checkpoints (at most one every CHECKPOINT_GAP = 2 s)
    """

    n_training_episodes: int = 10000
    n_timesteps: int | None = None
    learning_rate: float = 0.7
    gamma: float = 0.95
    max_steps: int = 99
    max_epsilon: float = 1.0
    min_epsilon: float = 0.05
    decay_rate: float = 0.0005
    n_envs: int = 64
    checkpoint_every: int = 5000


DEFAULTS = defaults(Settings)
TAGS = ["q-learning", "custom-implementation"]
USES_TORCH = False  # numpy only: `deeprl train` then never imports torch (about 1 s and 190 MB of a 2 s run)
CHECKPOINT_GAP = 2.0  # seconds: each checkpoint is an fsync'd file, and a whole course run takes half a second


def epsilon(hp: Settings, episode: int | np.ndarray) -> Any:  # a float, or an array for an array of episodes
    return hp.min_epsilon + (hp.max_epsilon - hp.min_epsilon) * np.exp(-hp.decay_rate * episode)


def train(run: Any) -> None:  # a deeprl.train.Run (imported here it would close agent -> coursefiles -> here)
    hp = run.settings(Settings)
    env = make_env(run.env_id, run.env_kwargs, training=True)
    if not (hasattr(env.observation_space, "n") and hasattr(env.action_space, "n")):
        raise UserError(
            f"Q-Learning needs discrete states and actions; {run.env_id} has "
            f"{env.observation_space}. Try --algo dqn or ppo."
        )
    sim = TabularBatch(env)
    env.close()
    rng = np.random.default_rng(run.seed)
    q = np.zeros((sim.n_states, sim.n_actions))
    n_episodes, lr, gamma, max_steps = hp.n_training_episodes, hp.learning_rate, hp.gamma, hp.max_steps
    started, finished, steps = 0, 0, 0
    if run.resumed:
        tensors, state = run.resumed
        q[:] = tensors["qtable"]
        started = finished = state["episodes"]
        steps = state["timesteps"]
        run.restore_rng(tensors, state, rng)

    b = min(hp.n_envs, n_episodes - started)
    if b <= 0:
        run.save_model({"qtable": q}, _policy_config(sim), episodes=finished, timesteps=steps)
        return
    episode = np.arange(started, started + b)
    started += b
    s, t, ret = sim.reset(b, rng), np.zeros(b, dtype=np.int64), np.zeros(b)
    recent: deque[float] = deque(maxlen=100)  # the last 100 returns, for the progress line

    def checkpoint() -> None:
        run.checkpoint({"qtable": q}, {"episodes": finished, "timesteps": steps}, rng)

    def save_model(stopped: bool) -> None:
        run.save_model({"qtable": q}, _policy_config(sim), stopped=stopped, episodes=finished, timesteps=steps)

    with run.loop(
        n_episodes,
        "episodes",
        initial=finished,
        checkpoint=checkpoint,
        save=save_model,
        checkpoint_every=hp.checkpoint_every,
        checkpoint_gap=CHECKPOINT_GAP,
    ) as loop:
        while episode.size:
            eps = epsilon(hp, episode)
            greedy = q[s].argmax(1)
            explore = rng.random(episode.size) <= eps
            a = np.where(explore, rng.integers(0, sim.n_actions, episode.size), greedy)
            s2, r, term = sim.step(s, a, rng)
            target = r + gamma * q[s2].max(1) * ~term
            q[s, a] += lr * (target - q[s, a])
            steps += episode.size
            ret += r
            t += 1
            s = s2
            done = term | (t >= max_steps)
            if done.any():
                idx = np.flatnonzero(done)
                n_done = idx.size
                finished += n_done
                recent.extend(ret[idx].tolist())
                if loop.update(
                    n_done,
                    finished,
                    lambda: ({"qtable": q.copy()}, _policy_config(sim)),
                    epsilon=float(eps.min()),
                    mean_return=sum(recent) / len(recent),  # np.mean of a list: a fifth of the training time
                ):
                    break
                if hp.n_timesteps is not None and steps >= hp.n_timesteps:
                    break
                n_new = min(n_done, n_episodes - started)
                restart, retire = idx[:n_new], idx[n_new:]
                episode[restart] = np.arange(started, started + n_new)
                started += n_new
                s[restart] = sim.reset(n_new, rng)
                t[restart] = 0
                ret[restart] = 0.0
                if retire.size:
                    keep = np.ones(episode.size, dtype=bool)
                    keep[retire] = False
                    episode, s, t, ret = episode[keep], s[keep], t[keep], ret[keep]
                loop.checkpoint_if_due(finished)


def _policy_config(sim: TabularBatch) -> dict:
    return {"n_states": sim.n_states, "n_actions": sim.n_actions}


class QTableAgent:
    """Greedy (argmax, first index on ties, as np.argmax in the course) or epsilon-free sampled policy."""

    source: str = ""  # where it was loaded from (a model folder or a course file), set by the loaders

    def __init__(self, qtable: np.ndarray, env_id: str, env_kwargs: dict, config: dict):
        self.qtable, self.env_id, self.env_kwargs, self.config = qtable, env_id, env_kwargs, config
        self._rng = np.random.default_rng(0)

    def act(self, obs: Any, deterministic: bool = True) -> int:
        if deterministic:
            return int(np.argmax(self.qtable[int(obs)]))
        return int(self._rng.integers(self.qtable.shape[1]))


def load_agent(config: dict, tensors: dict) -> QTableAgent:
    if "qtable" not in tensors:
        raise UserError("The model file has no 'qtable' tensor; it is not a Q-Learning model.")
    q = tensors["qtable"]
    env = make_env(config["env_id"], config.get("env_kwargs") or {})
    try:
        expected = (int(env.observation_space.n), int(env.action_space.n))
    except AttributeError:
        raise UserError(f"A Q-table cannot act in {config['env_id']}: its states are not discrete.") from None
    finally:
        env.close()
    check_shape("qtable", q, expected, config["env_id"])
    return QTableAgent(q.astype(np.float64), config["env_id"], config.get("env_kwargs") or {}, config)
