"""Actor-critic policies shared by the on-policy algorithms (PPO, A2C), and the agent that plays a saved one.

An `ActorCritic` is: a features extractor chosen from the observation space (flatten a Box, one-hot a Discrete,
Nature CNN for images, one extractor per key concatenated for a Dict, as SB3's MultiInputPolicy), then separate
MLP trunks for the policy and the value (SB3's default `net_arch=[64, 64]` means two trunks of 64-64), then a
head: categorical logits for Discrete actions, a diagonal Gaussian with a state-independent log std for Box.
Initialization follows CleanRL / SB3: orthogonal, gain sqrt(2) in trunks, 0.01 on the action head, 1 on the value.

The distributions are written out (log-softmax, Gaussian log-density) rather than through torch.distributions:
the same numbers, without the argument validation and object churn that dominate on networks this small.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from deeprl.errors import UserError
from deeprl.fast.actor_critic import FastMLP
from deeprl.kwargs import parse_call_kwargs  # algos/dqn.py imports it from here too
from deeprl.nets import ACTIVATIONS, NatureCNN, layer_init, mlp

LOG_2PI = math.log(2 * math.pi)
POLICY_KWARGS = {"net_arch", "activation_fn", "ortho_init", "log_std_init", "share_features_extractor"}


# ----------------------------------------------------------------------------------------------------------
# policy_kwargs, RL-Zoo style, read without eval()


def parse_policy_kwargs(value) -> dict:
    """Normalize policy_kwargs to {'net_arch': {'pi': [...], 'vf': [...]}, 'activation': str, 'ortho_init',
    'log_std_init'}."""
    if value is None:
        value = {}
    if isinstance(value, str):
        value = parse_call_kwargs(value, "policy_kwargs")
    if not isinstance(value, dict):
        raise UserError(f"policy_kwargs must be a mapping such as {{net_arch: [64, 64]}}, not {value!r}.")
    value = dict(value)
    if "activation" in value:
        value["activation_fn"] = value.pop("activation")
    bad = sorted(set(value) - POLICY_KWARGS)
    if bad:
        raise UserError(f"policy_kwargs does not take '{bad[0]}'; it takes {', '.join(sorted(POLICY_KWARGS))}.")
    act = str(value.get("activation_fn", "tanh")).lower()
    if act not in ACTIVATIONS:
        raise UserError(f"Unknown activation '{act}'; use one of {', '.join(ACTIVATIONS)}.")
    arch = value.get("net_arch", [64, 64])
    if isinstance(arch, list) and len(arch) == 1 and isinstance(arch[0], dict):  # SB3 < 1.8 wrote [dict(...)]
        arch = arch[0]
    if isinstance(arch, dict):
        pi, vf = list(arch.get("pi", [])), list(arch.get("vf", []))
    elif isinstance(arch, list):
        pi, vf = list(arch), list(arch)
    else:
        raise UserError(f"net_arch must be a list of layer sizes or dict(pi=[...], vf=[...]), not {arch!r}.")
    if not all(isinstance(h, int) and h > 0 for h in pi + vf):
        raise UserError(f"net_arch layer sizes must be positive integers, not {arch!r}.")
    return {"net_arch": {"pi": pi, "vf": vf}, "activation": act, "ortho_init": bool(value.get("ortho_init", True)),
            "log_std_init": float(value.get("log_std_init", 0.0))}


# ----------------------------------------------------------------------------------------------------------
# Spaces


def describe_space(space) -> dict:
    """JSON description of a Gymnasium space (what config.json records; the env is the source of truth)."""
    name = type(space).__name__
    if name == "Discrete":
        return {"type": "Discrete", "n": int(space.n)}
    if name == "Box":
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}
    if name == "Dict":
        return {"type": "Dict", "spaces": {k: describe_space(s) for k, s in space.spaces.items()}}
    if name == "MultiBinary":
        return {"type": "MultiBinary", "shape": list(np.shape(space.n) or [space.n])}
    return {"type": name}


def is_image(space) -> bool:
    return type(space).__name__ == "Box" and len(space.shape) == 3 and space.dtype == np.uint8


class Flatten(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.reshape(x.shape[0], -1).float()


class OneHot(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.dim = n

    def forward(self, x):
        return nn.functional.one_hot(x.long().reshape(-1), self.dim).float()


class CNNFeatures(nn.Module):
    def __init__(self, space):
        super().__init__()
        c, h, w = space.shape  # channels first, as the Atari preprocessing produces
        self.cnn = NatureCNN(c, 512, (h, w))
        self.dim = 512

    def forward(self, x):
        return self.cnn(x)


class DictFeatures(nn.Module):
    """One extractor per key, outputs concatenated (SB3's CombinedExtractor)."""

    def __init__(self, space):
        super().__init__()
        self.keys = list(space.spaces)
        self.parts = nn.ModuleDict({k: make_features(space.spaces[k]) for k in self.keys})
        self.dim = sum(p.dim for p in self.parts.values())

    def forward(self, obs: dict):
        return torch.cat([self.parts[k](obs[k]) for k in self.keys], dim=1)


def make_features(space) -> nn.Module:
    name = type(space).__name__
    if name == "Dict":
        return DictFeatures(space)
    if name == "Discrete":
        return OneHot(int(space.n))
    if is_image(space):
        return CNNFeatures(space)
    if name in ("Box", "MultiBinary"):
        return Flatten(int(np.prod(space.shape)))
    raise UserError(f"Observations of type {name} are not supported by the actor-critic policies.")


def obs_to_tensor(obs, device: torch.device | str = "cpu"):
    """A batch of observations (array, or dict of arrays) as tensors; uint8 images stay uint8 (scaled in the CNN)."""
    if isinstance(obs, dict):
        return {k: obs_to_tensor(v, device) for k, v in obs.items()}
    t = torch.as_tensor(obs, device=device)
    if t.dtype == torch.float64:
        t = t.float()
    return t


# ----------------------------------------------------------------------------------------------------------
# The actor-critic


class ActorCritic(nn.Module):
    """features -> (policy trunk -> action head, value trunk -> value head)."""

    def __init__(self, obs_space, action_space, net_arch: dict | list | None = None, activation: str = "tanh",
                 ortho_init: bool = True, log_std_init: float = 0.0):
        super().__init__()
        kw = parse_policy_kwargs({"net_arch": net_arch if net_arch is not None else [64, 64],
                                  "activation_fn": activation, "ortho_init": ortho_init,
                                  "log_std_init": log_std_init})
        self.kwargs = kw
        self.features = make_features(obs_space)
        self.flat_obs = type(self.features) is Flatten
        self.fast: FastMLP | None = None  # the written-out twin, where build_policy(fast=True) made one
        kind = type(action_space).__name__
        if kind == "Discrete":
            self.discrete, self.action_dim = True, int(action_space.n)
        elif kind == "Box":
            self.discrete, self.action_dim = False, int(np.prod(action_space.shape))
            self.action_shape = tuple(action_space.shape)
        else:
            raise UserError(f"Actions of type {kind} are not supported yet; PPO and A2C handle Discrete and Box.")
        pi, vf, act = kw["net_arch"]["pi"], kw["net_arch"]["vf"], kw["activation"]
        init = kw["ortho_init"]
        self.pi_trunk = mlp(self.features.dim, pi, None, act, init=init)
        self.vf_trunk = mlp(self.features.dim, vf, None, act, init=init)
        self.action_head = nn.Linear(pi[-1] if pi else self.features.dim, self.action_dim)
        self.value_head = nn.Linear(vf[-1] if vf else self.features.dim, 1)
        if init:
            layer_init(self.action_head, 0.01)
            layer_init(self.value_head, 1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((self.action_dim,), kw["log_std_init"]))

    # distributions -----------------------------------------------------------------------------------
    def forward(self, obs):
        """(action-distribution parameters: logits or mean, value [B])."""
        x = self.features(obs)
        return self.action_head(self.pi_trunk(x)), self.value_head(self.vf_trunk(x)).squeeze(-1)

    def log_prob_entropy(self, dist, actions):
        if self.discrete:
            logp_all = torch.log_softmax(dist, -1)
            logp = logp_all.gather(1, actions.long().reshape(-1, 1)).squeeze(1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp, entropy
        log_std = self.log_std.expand_as(dist)
        z = (actions.reshape(dist.shape) - dist) * torch.exp(-log_std)
        logp = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * LOG_2PI * self.action_dim
        entropy = (0.5 + 0.5 * LOG_2PI + self.log_std).sum().expand(dist.shape[0])
        return logp, entropy

    def sample(self, dist, deterministic: bool = False):
        if self.discrete:
            if deterministic:
                return dist.argmax(-1)
            return torch.multinomial(torch.softmax(dist, -1), 1).squeeze(1)
        if deterministic:
            return dist
        return dist + torch.randn_like(dist) * self.log_std.exp()

    # the interface algorithms use ----------------------------------------------------------------------
    def act(self, obs, deterministic: bool = False):
        """(action, value, log_prob) for a batch; call under torch.inference_mode when collecting."""
        fast = self.fast
        dist, value = fast.forward(obs) if fast is not None else self(obs)
        action = self.sample(dist, deterministic)
        logp, _ = self.log_prob_entropy(dist, action)
        return action, value, logp

    def evaluate_actions(self, obs, actions):
        """(log_prob, entropy, value) of stored actions under the current parameters (with gradients)."""
        dist, value = self(obs)
        logp, entropy = self.log_prob_entropy(dist, actions)
        return logp, entropy, value

    def value(self, obs):
        fast = self.fast
        if fast is not None:
            return fast.value(obs)
        x = self.features(obs)
        return self.value_head(self.vf_trunk(x)).squeeze(-1)

    def action(self, obs, deterministic: bool = True):
        x = self.features(obs)
        return self.sample(self.action_head(self.pi_trunk(x)), deterministic)

    def config(self) -> dict:
        return {"class": "ActorCritic", **self.kwargs}


def build_policy(obs_space, action_space, policy_config: dict, device: torch.device | str = "cpu",
                 fast: bool = False) -> ActorCritic:
    """The ActorCritic of `policy_config` on `device`; with fast=True also its written-out twin (deeprl.fast) as
    `policy.fast` where the shape allows it, which lays the parameters out flat: build it before the optimizer."""
    policy = ActorCritic(obs_space, action_space, net_arch=policy_config.get("net_arch"),
                         activation=policy_config.get("activation", "tanh"),
                         ortho_init=policy_config.get("ortho_init", True),
                         log_std_init=policy_config.get("log_std_init", 0.0)).to(device)
    if fast:
        policy.fast = FastMLP.attach(policy)
    return policy


def policy_tensors(policy: nn.Module, prefix: str = "policy.") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu() for k, v in policy.state_dict().items()}


def load_policy_tensors(policy: nn.Module, tensors: dict, what: str, prefix: str = "policy.") -> None:
    """Copy saved weights into `policy`; a missing or mis-shaped tensor is one UserError sentence."""
    from deeprl.modelio import check_shape

    own = policy.state_dict()
    for k, v in own.items():
        name = prefix + k
        if name not in tensors:
            raise UserError(f"The model file has no '{name}' weights; it was not saved by this kind of policy.")
        check_shape(name, tensors[name], tuple(v.shape), what)
    policy.load_state_dict({k: torch.as_tensor(np.asarray(tensors[prefix + k])) for k in own})


# ----------------------------------------------------------------------------------------------------------
# The agent that plays a saved actor-critic


class PolicyAgent:
    """One observation in, one env action out: frozen normalization, then the policy's mode (or a sample)."""

    def __init__(self, policy: ActorCritic, normalizer, config: dict, action_space):
        self.policy, self.normalizer, self.config = policy.eval(), normalizer, config
        self.env_id, self.env_kwargs = config["env_id"], config.get("env_kwargs") or {}
        self.action_space = action_space
        self.discrete = policy.discrete
        if not self.discrete:
            self.low, self.high = action_space.low, action_space.high

    def act(self, obs, deterministic: bool = True):
        if self.normalizer is not None:
            obs = self.normalizer.obs_one(obs)
        batch = {k: np.asarray(v)[None] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[None]
        with torch.inference_mode():
            a = self.policy.action(obs_to_tensor(batch), deterministic)[0].numpy()
        if self.discrete:
            return int(a)
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
