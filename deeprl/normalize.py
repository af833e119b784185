"""Running observation and reward normalization, as Stable-Baselines3's VecNormalize does it.

- Observations: a running mean/variance per feature (per key for Dict observations), (x - mean) / sqrt(var + eps),
  clipped to +-clip_obs (10).
- Rewards: divided by the running standard deviation of the discounted return (not of the reward), clipped to
  +-clip_reward (10). The return accumulator resets when an episode ends.
- At evaluation the statistics are frozen (`training = False`) and rewards are not touched: the course scores the
  raw return (Unit 6: "at evaluation the statistics are frozen and rewards are not normalized").

The statistics travel as float64 arrays named `<prefix>obs.<key>.mean|var|count` and `<prefix>ret.var|count`, so
they go into checkpoints and model.safetensors with the weights; the settings go into config.json.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from deeprl.errors import UserError
from deeprl.kwargs import parse_call_kwargs

if TYPE_CHECKING:
    import gymnasium as gym

EPS = 1e-8


class RunningMeanStd:
    """Mean and variance of everything seen so far, merged batch by batch (Chan et al.'s parallel algorithm)."""

    def __init__(self, shape: tuple = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = float(epsilon)  # SB3's prior count: the first batch does not divide by zero

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        batch_mean, batch_var, n = x.mean(0), x.var(0), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.var = m2 / total
        self.count = total

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}mean": self.mean, f"{prefix}var": self.var, f"{prefix}count": np.array(self.count)}

    def load(self, tensors: dict, prefix: str) -> None:
        for part in ("mean", "var", "count"):
            if f"{prefix}{part}" not in tensors:
                raise UserError(f"The normalization statistics '{prefix}{part}' are missing from the model file.")
        mean = np.asarray(tensors[f"{prefix}mean"], np.float64)
        if mean.shape != self.mean.shape:
            raise UserError(
                f"The normalization statistics '{prefix}mean' have shape {mean.shape} but this "
                f"environment's observations need {self.mean.shape}; the model does not fit it."
            )
        self.mean = mean
        self.var = np.asarray(tensors[f"{prefix}var"], np.float64).reshape(self.mean.shape)
        self.count = float(np.asarray(tensors[f"{prefix}count"]))


def parse_normalize(value: Any) -> dict:
    """RL-Zoo's `normalize` key: true/false, a mapping, or the string "dict(norm_obs=True, norm_reward=False)"."""
    if value in (None, False, "false", "False"):
        return {"norm_obs": False, "norm_reward": False}
    if value in (True, "true", "True"):
        return {"norm_obs": True, "norm_reward": True}
    if isinstance(value, str):
        value = parse_call_kwargs(value, "normalize")
    if not isinstance(value, dict):
        raise UserError(f"normalize must be true, false or a mapping like {{norm_obs: true}}, not {value!r}.")
    known = {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"}
    bad = sorted(set(value) - known)
    if bad:
        raise UserError(f"normalize does not take '{bad[0]}'; it takes {', '.join(sorted(known))}.")
    return {"norm_obs": True, "norm_reward": True, **value}


class Normalizer:
    """VecNormalize-style statistics for a vector of `n_envs` environments (n_envs=1 at evaluation).

    `obs_space` is the single-env observation space (Box or Dict of Boxes; Discrete observations pass through).
    """

    def __init__(
        self,
        obs_space: Any,  # a Box, a Dict of Boxes (read by duck typing), or a space that passes through
        *,
        norm_obs: bool = True,
        norm_reward: bool = True,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
        gamma: float = 0.99,
        epsilon: float = EPS,
        n_envs: int = 1,
    ):
        self.norm_obs, self.norm_reward = bool(norm_obs), bool(norm_reward)
        self.clip_obs, self.clip_reward = float(clip_obs), float(clip_reward)
        self.gamma, self.epsilon = float(gamma), float(epsilon)
        self.training = True
        self.keys = (
            list(obs_space.spaces) if hasattr(obs_space, "spaces") and isinstance(obs_space.spaces, dict) else None
        )
        if self.norm_obs:
            if self.keys is not None:
                self.obs_rms = {
                    k: RunningMeanStd(obs_space.spaces[k].shape)
                    for k in self.keys
                    if _normalizable(obs_space.spaces[k])
                }
            elif _normalizable(obs_space):
                self.obs_rms = {"": RunningMeanStd(obs_space.shape)}
            else:
                self.obs_rms = {}
        else:
            self.obs_rms = {}
        self.ret_rms = RunningMeanStd(())
        self.returns = np.zeros(n_envs, np.float64)

    @property
    def active(self) -> bool:
        return self.norm_obs or self.norm_reward

    def config(self) -> dict:
        return {
            "norm_obs": self.norm_obs,
            "norm_reward": self.norm_reward,
            "clip_obs": self.clip_obs,
            "clip_reward": self.clip_reward,
            "gamma": self.gamma,
            "epsilon": self.epsilon,
        }

    # observations -------------------------------------------------------------------------------------
    def _norm(self, x: np.ndarray, rms: RunningMeanStd) -> np.ndarray:
        out = (x - rms.mean) / np.sqrt(rms.var + self.epsilon)
        return np.clip(out, -self.clip_obs, self.clip_obs).astype(np.float32)

    def obs(self, obs: Any, update: bool | None = None) -> Any:  # an array, or a dict of arrays (Dict spaces)
        """Normalized copy of a batch of observations; updates the statistics first while training."""
        if not self.obs_rms:
            return obs
        if update is None:
            update = self.training
        if self.keys is None:
            if update:
                self.obs_rms[""].update(obs)
            return self._norm(obs, self.obs_rms[""])
        out = dict(obs)
        for k, rms in self.obs_rms.items():
            if update:
                rms.update(obs[k])
            out[k] = self._norm(obs[k], rms)
        return out

    def obs_one(self, obs: Any) -> Any:
        """Normalize a single (unbatched) observation with frozen statistics."""
        if not self.obs_rms:
            return obs
        if self.keys is None:
            return self._norm(np.asarray(obs), self.obs_rms[""])
        return {k: (self._norm(np.asarray(v), self.obs_rms[k]) if k in self.obs_rms else v) for k, v in obs.items()}

    # rewards ------------------------------------------------------------------------------------------
    def reward(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Scale rewards by the running std of the discounted return; `done` ends the return accumulation."""
        if not self.norm_reward:
            return reward
        if self.training:
            self.returns = self.returns * self.gamma + reward
            self.ret_rms.update(self.returns)
            self.returns[done] = 0.0
        scaled = reward / np.sqrt(self.ret_rms.var + self.epsilon)
        return np.clip(scaled, -self.clip_reward, self.clip_reward).astype(np.float32)

    # persistence --------------------------------------------------------------------------------------
    def state_dict(self, prefix: str = "normalize.") -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for k, rms in self.obs_rms.items():
            out.update(rms.state(f"{prefix}obs.{k}." if k else f"{prefix}obs."))
        if self.norm_reward:
            out.update(self.ret_rms.state(f"{prefix}ret."))
        return out

    def load_state_dict(self, tensors: dict, prefix: str = "normalize.", with_returns: bool = False) -> None:
        for k, rms in self.obs_rms.items():
            rms.load(tensors, f"{prefix}obs.{k}." if k else f"{prefix}obs.")
        if self.norm_reward:
            self.ret_rms.load(tensors, f"{prefix}ret.")
        if with_returns and f"{prefix}returns" in tensors:
            self.returns = np.asarray(tensors[f"{prefix}returns"], np.float64).copy()

    def checkpoint_state(self, prefix: str = "normalize.") -> dict[str, np.ndarray]:
        """Statistics plus the per-env return accumulators (only a checkpoint needs those)."""
        return {**self.state_dict(prefix), f"{prefix}returns": self.returns.copy()}

    @classmethod
    def from_config(
        cls, obs_space: gym.spaces.Space, config: dict | None, tensors: dict | None = None, prefix: str = "normalize."
    ) -> Normalizer | None:
        """A frozen normalizer for evaluation (None when the model was trained without one)."""
        if not config or not (config.get("norm_obs") or config.get("norm_reward")):
            return None
        norm = cls(
            obs_space,
            **{
                k: config[k]
                for k in ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon")
                if k in config
            },
        )
        if tensors is not None:
            norm.load_state_dict(tensors, prefix)
        norm.training = False
        return norm


def _normalizable(space: Any) -> bool:
    """Only float Boxes are normalized; images (uint8) and discrete parts pass through, as in VecNormalize."""
    return hasattr(space, "shape") and hasattr(space, "low") and np.issubdtype(space.dtype, np.floating)
