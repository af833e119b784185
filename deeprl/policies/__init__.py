"""Actor-critic policies shared by the on-policy algorithms (PPO, A2C), and the agent that plays a saved one.

    features.py      features extractors chosen from the observation space; describe_space, obs_to_tensor
    actor_critic.py  ActorCritic (trunks, heads, written-out distributions), policy_kwargs, build/save/load
    agent.py         PolicyAgent and load_policy_agent: a saved actor-critic playing an env

The names below are the ones other modules import from deeprl.policies.
"""

from deeprl.kwargs import parse_call_kwargs  # algos/dqn.py imports it from here
from deeprl.policies.actor_critic import (
    POLICY_KWARGS,
    ActorCritic,
    build_policy,
    load_policy_tensors,
    parse_policy_kwargs,
    policy_tensors,
)
from deeprl.policies.agent import PolicyAgent, load_policy_agent
from deeprl.policies.features import describe_space, is_image, make_features, obs_to_tensor

__all__ = [
    "POLICY_KWARGS",
    "ActorCritic",
    "PolicyAgent",
    "build_policy",
    "describe_space",
    "is_image",
    "load_policy_agent",
    "load_policy_tensors",
    "make_features",
    "obs_to_tensor",
    "parse_call_kwargs",
    "parse_policy_kwargs",
    "policy_tensors",
]
