"""The agent that plays a saved actor-critic (PPO, A2C): the env's spaces, the policy from config.json, its
weights checked and loaded, the frozen observation statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from deeprl.policies.actor_critic import ActorCritic, build_policy, load_policy_tensors
from deeprl.policies.features import obs_to_tensor

if TYPE_CHECKING:
    import gymnasium as gym

    from deeprl.normalize import Normalizer


class PolicyAgent:
    """One observation in, one env action out: frozen normalization, then the policy's mode (or a sample)."""

    def __init__(self, policy: ActorCritic, normalizer: Normalizer | None, config: dict, action_space: gym.Space):
        self.policy, self.normalizer, self.config = policy.eval(), normalizer, config
        self.env_id, self.env_kwargs = config["env_id"], config.get("env_kwargs") or {}
        self.action_space = action_space
        self.discrete = policy.discrete
        if policy.continuous:
            box = cast("gym.spaces.Box", action_space)  # a continuous policy acts on a Box
            self.low, self.high = box.low, box.high

    def act(self, obs: Any, deterministic: bool = True) -> int | np.ndarray:
        if self.normalizer is not None:
            obs = self.normalizer.obs_one(obs)
        batch = {k: np.asarray(v)[None] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[None]
        with torch.inference_mode():
            a = self.policy.action(obs_to_tensor(batch), deterministic)[0].numpy()
        if self.discrete:
            return int(a)
        if self.policy.nvec is not None:  # one choice per branch, in the space's shape
            return a.reshape(self.policy.action_shape).astype(np.int64)
        # the Gaussian is unbounded; the env gets the action clipped to its box, as SB3 does
        return np.clip(a.reshape(self.policy.action_shape), self.low, self.high)


def load_policy_agent(config: dict, tensors: dict) -> PolicyAgent:
    """Build the env's spaces, the policy from config['policy'], check every weight's shape, load."""
    from deeprl.envs import make_env
    from deeprl.normalize import Normalizer

    env = make_env(config["env_id"], config.get("env_kwargs") or {})
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    pconf = config.get("policy") or {}
    policy = build_policy(obs_space, action_space, pconf)
    load_policy_tensors(policy, tensors, config["env_id"])
    normalizer = Normalizer.from_config(obs_space, pconf.get("normalize"), tensors)
    return PolicyAgent(policy, normalizer, config, action_space)
