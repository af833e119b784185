"""On-policy experience: rollout storage with GAE, and collection over a Gymnasium vector env.

Conventions (one place, so PPO and A2C agree):
- step t of env i stores obs[t, i] (normalized, what the policy saw), actions, values = V(obs[t]), log_probs,
  rewards[t, i] (normalized when reward normalization is on) and dones[t, i] = the episode ended with that step
  (terminated or truncated); obs[t + 1, i] is then already the next episode's first observation (autoreset
  SAME_STEP).
- truncation is not termination: when a time limit cuts an episode, the value of its real last observation
  (info["final_obs"]) is folded into the reward, r + gamma * V(s_final), so the episode end masks only what
  lies beyond it (Pardo et al. 2018; SB3 does the same).
- everything lives in preallocated numpy arrays; torch sees the rollout once per update, flattened.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from deeprl.nets import at_most_threads
from deeprl.policies.features import obs_to_tensor

if TYPE_CHECKING:
    import gymnasium as gym

    from deeprl.fast.actor_critic import FastMLP
    from deeprl.normalize import Normalizer
    from deeprl.policies.actor_critic import ActorCritic

Obs = np.ndarray | dict[str, np.ndarray]  # a batch of observations: an array, or one per key of a Dict space


def compute_gae(
    rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_values: np.ndarray, gamma: float, gae_lambda: float
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation (Schulman et al. 2016) over [T, N] arrays.

    delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t);  A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
    Returns (advantages, returns = advantages + values): the value targets are TD(lambda) returns.
    """
    T = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float32)
    not_done = 1.0 - dones.astype(np.float32)
    next_values = np.concatenate([values[1:], np.asarray(last_values, np.float32)[None]])
    # every step's delta at once (the same operations in the same order as step by step), then the recursion
    delta = rewards + gamma * next_values * not_done - values
    decay = gamma * gae_lambda * not_done
    last = np.zeros(rewards.shape[1:], np.float32)
    for t in range(T - 1, -1, -1):
        last = delta[t] + decay[t] * last
        adv[t] = last
    return adv, adv + values


def _alloc_obs(space: Any, lead: tuple) -> Any:  # an array, or a dict of them for a Dict space (nested: nested)
    if hasattr(space, "spaces") and isinstance(space.spaces, dict):
        return {k: _alloc_obs(s, lead) for k, s in space.spaces.items()}
    if type(space).__name__ == "Discrete":
        return np.zeros(lead, np.int64)
    dtype = space.dtype if np.issubdtype(space.dtype, np.integer) else np.float32
    return np.zeros(lead + tuple(space.shape), dtype)


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape((-1,) + x.shape[2:])


class RolloutBuffer:
    """[n_steps, n_envs] arrays for one rollout, then advantages and returns, then minibatches as tensors."""

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        obs_space: Any,
        action_space: Any,
        device: str | torch.device = "cpu",
    ):
        self.n_steps, self.n_envs, self.device = n_steps, n_envs, torch.device(device)
        lead: tuple[int, ...] = (n_steps, n_envs)
        self.obs = _alloc_obs(obs_space, lead)  # spaces told apart by name: any Gymnasium spaces
        self.actions: np.ndarray
        if type(action_space).__name__ == "Discrete":
            self.actions = np.zeros(lead, np.int64)
        elif type(action_space).__name__ == "MultiDiscrete":  # one choice per branch
            self.actions = np.zeros(lead + tuple(action_space.shape), np.int64)
        else:
            self.actions = np.zeros(lead + tuple(action_space.shape), np.float32)
        self.rewards = np.zeros(lead, np.float32)
        self.values = np.zeros(lead, np.float32)
        self.log_probs = np.zeros(lead, np.float32)
        self.dones = np.zeros(lead, bool)
        self.advantages: np.ndarray | None = None  # set by compute_returns_and_advantage
        self.returns: np.ndarray | None = None
        # with several reward signals (deeprl.rewards): [n_steps, n_envs, signals] values, returns beside them
        self.signal_values: np.ndarray | None = None

    def store_obs(self, t: int, obs: Obs) -> None:
        if isinstance(self.obs, dict):
            for k, v in cast("dict[str, np.ndarray]", obs).items():
                self.obs[k][t] = v
        else:
            self.obs[t] = obs

    def compute_returns_and_advantage(self, last_values: np.ndarray, gamma: float, gae_lambda: float) -> None:
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, self.dones, last_values, gamma, gae_lambda
        )

    def tensors(self) -> dict:
        """The whole rollout flattened to [n_steps * n_envs, ...] tensors on the training device."""
        dev = self.device

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(_flat(x))).to(dev)

        obs = {k: t(v) for k, v in self.obs.items()} if isinstance(self.obs, dict) else t(self.obs)
        values = self.values if self.signal_values is None else self.signal_values
        return {
            "obs": obs,
            "actions": t(self.actions),
            "values": t(values),
            "log_probs": t(self.log_probs),
            "advantages": t(cast(np.ndarray, self.advantages)),  # set by compute_returns_and_advantage
            "returns": t(cast(np.ndarray, self.returns)),
        }


def index_batch(data: dict, idx: np.ndarray) -> dict:
    """Rows `idx` of every tensor (and numpy array) of a batch; nested dicts (Dict observations) too."""
    idx_t = torch.from_numpy(np.asarray(idx))

    def take(v: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(v, np.ndarray):
            return v[idx]
        return v[idx_t if v.device.type == "cpu" else idx_t.to(v.device)]

    return {k: {kk: take(vv) for kk, vv in v.items()} if isinstance(v, dict) else take(v) for k, v in data.items()}


def slice_batch(data: dict, start: int, stop: int) -> dict:
    out = {}
    for k, v in data.items():
        out[k] = {kk: vv[start:stop] for kk, vv in v.items()} if isinstance(v, dict) else v[start:stop]
    return out


class EpisodeStats:
    """Raw (unnormalized) episode returns and lengths as they finish, over a vector of envs."""

    def __init__(self, n_envs: int, window: int = 100):
        self.ret = np.zeros(n_envs, np.float64)
        self.len = np.zeros(n_envs, np.int64)
        self.recent_returns: collections.deque = collections.deque(maxlen=window)
        self.recent_lengths: collections.deque = collections.deque(maxlen=window)
        self.episodes = 0
        self.new: list[tuple[float, int]] = []  # finished since the last drain(), for TensorBoard

    def step(self, reward: np.ndarray, done: np.ndarray) -> None:
        self.ret += reward
        self.len += 1
        if np.count_nonzero(done):  # (a C call: .any() goes through numpy's Python-level method wrapper)
            for i in np.flatnonzero(done):
                r, n = float(self.ret[i]), int(self.len[i])
                self.recent_returns.append(r)
                self.recent_lengths.append(n)
                self.new.append((r, n))
            self.episodes += int(done.sum())
            self.ret[done] = 0.0
            self.len[done] = 0

    def mean_return(self) -> float | None:
        return float(np.mean(self.recent_returns)) if self.recent_returns else None

    def mean_length(self) -> float | None:
        return float(np.mean(self.recent_lengths)) if self.recent_lengths else None

    def drain(self) -> list[tuple[float, int]]:
        out, self.new = self.new, []
        return out


class Collector:
    """Steps a SAME_STEP-autoreset vector env with an actor-critic and fills a RolloutBuffer.

    Keeps the current (normalized) observation between rollouts, the episode statistics and the env-step count.
    `normalizer` may be None. The policy runs under torch.inference_mode on `device`.
    """

    def __init__(
        self,
        venv: gym.vector.VectorEnv,
        normalizer: Normalizer | None = None,
        *,
        gamma: float = 0.99,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        rng: np.random.Generator | None = None,
    ):
        self.venv, self.normalizer, self.gamma, self.device = venv, normalizer, gamma, torch.device(device)
        # action sampling on the numpy path (flat-observation MLPs on CPU); give the run's generator to have it
        # checkpointed with the run
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.n_envs = venv.num_envs
        self.stats = EpisodeStats(self.n_envs)
        space = venv.single_action_space
        # Discrete and MultiDiscrete actions go to the env as sampled; a Gaussian's are clipped to the Box
        self.discrete = type(space).__name__ in ("Discrete", "MultiDiscrete")
        if not self.discrete:
            box = cast("gym.spaces.Box", space)  # neither Discrete nor MultiDiscrete: a Gaussian's Box
            self.low, self.high = box.low, box.high
        obs, _ = venv.reset(seed=seed) if seed is not None else venv.reset()
        self.obs: Any = self._norm_obs(obs)  # an array, or a dict of them: each use knows which (dict_obs, fast)
        self.env_time = 0.0  # seconds inside venv.step, for the throughput report

    def _norm_obs(self, obs: Obs, update: bool = True) -> Obs:
        return self.normalizer.obs(obs, update=update) if self.normalizer is not None else obs

    def _env_action(self, action: np.ndarray) -> np.ndarray:
        return action if self.discrete else np.clip(action, self.low, self.high)

    def collect(self, policy: ActorCritic, buffer: RolloutBuffer) -> int:
        """Fill `buffer` with buffer.n_steps vector steps; returns the env steps taken. Computes no advantages:
        call `last_values(policy)` then buffer.compute_returns_and_advantage."""
        # One thread while collecting, where the acting is numpy's on a handful of rows (a second BLAS thread gains
        # it little and spins against the env's stepping on the other core) or the envs step in processes of their own
        if self._numpy_policy(policy) is not None or getattr(self.venv.unwrapped, "steps_elsewhere", False):
            with at_most_threads(1):
                return self._collect(policy, buffer)
        return self._collect(policy, buffer)

    def _collect(self, policy: ActorCritic, buffer: RolloutBuffer) -> int:
        venv, norm, stats, dev, rng = self.venv, self.normalizer, self.stats, self.device, self.rng
        fast = self._numpy_policy(policy)
        if fast is not None:
            fast.refresh()  # whatever optimizer changed the weights since the last rollout
        clock, env_time = time.perf_counter, 0.0
        dict_obs, clip_actions = isinstance(buffer.obs, dict), not self.discrete
        for t in range(buffer.n_steps):
            obs = self.obs
            if fast is not None:
                action, value, logp = fast.numpy_act(obs, rng)
            else:
                with torch.inference_mode():
                    action, value, logp = policy.act(obs_to_tensor(obs, dev))
                action, value, logp = action.cpu().numpy(), value.cpu().numpy(), logp.cpu().numpy()
            t0 = clock()
            next_obs, reward, terminated, truncated, info = venv.step(
                np.clip(action, self.low, self.high) if clip_actions else action
            )
            env_time += clock() - t0
            done = terminated | truncated
            stats.step(reward, done)
            if norm is not None:
                reward = norm.reward(np.asarray(reward, np.float32), done)
            if dict_obs:
                buffer.store_obs(t, obs)
            else:
                buffer.obs[t] = obs
            # VecNormalize's order: the statistics take in the new observations first, and the final observations
            # of cut episodes are normalized with those updated statistics
            self.obs = next_obs if norm is None else self._norm_obs(next_obs)
            if np.count_nonzero(truncated):
                trunc = truncated & ~terminated
                if trunc.any():
                    reward = np.asarray(reward, np.float32) + self.gamma * self._final_values(policy, info, trunc)
            buffer.actions[t] = action
            buffer.values[t] = value
            buffer.log_probs[t] = logp
            buffer.rewards[t] = reward  # float32 storage: the assignment converts
            buffer.dones[t] = done
        self.env_time += env_time
        return buffer.n_steps * self.n_envs

    def _numpy_policy(self, policy: ActorCritic) -> FastMLP | None:
        """The numpy inference of the policy's written-out twin (deeprl.fast), where it has one and runs on the CPU
        (a policy without one, or a stand-in in a test, is called through act and value)."""
        fast = getattr(policy, "fast", None)
        if fast is None or self.device.type != "cpu" or isinstance(self.obs, dict):
            return None
        return fast

    def _value(self, policy: ActorCritic, obs: Obs) -> np.ndarray:
        fast = self._numpy_policy(policy)
        if fast is not None:
            return fast.numpy_value(cast(np.ndarray, obs))  # the numpy twin runs only on flat observations
        with torch.inference_mode():
            return policy.value(obs_to_tensor(obs, self.device)).cpu().numpy()

    def _final_values(self, policy: ActorCritic, info: dict, trunc: np.ndarray) -> np.ndarray:
        """V(real last observation) for the envs a time limit cut, zero elsewhere."""
        idx = np.flatnonzero(trunc)
        final = info["final_obs"]
        batch: dict[str, np.ndarray] | np.ndarray
        if isinstance(final[idx[0]], dict):
            batch = {k: np.stack([final[i][k] for i in idx]) for k in final[idx[0]]}
        else:
            batch = np.stack([final[i] for i in idx])
        v = self._value(policy, self._norm_obs(batch, update=False))
        out = np.zeros(self.n_envs, np.float32)
        out[idx] = v
        return out

    def last_values(self, policy: ActorCritic) -> np.ndarray:
        return self._value(policy, self.obs)

    # checkpoints ---------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "episodes": self.stats.episodes,
            "recent_returns": list(self.stats.recent_returns),
            "recent_lengths": list(self.stats.recent_lengths),
        }

    def load_state(self, state: dict) -> None:
        self.stats.episodes = int(state.get("episodes", 0))
        self.stats.recent_returns.extend(state.get("recent_returns", []))
        self.stats.recent_lengths.extend(state.get("recent_lengths", []))
