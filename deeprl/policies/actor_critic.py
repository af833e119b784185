"""The actor-critic that PPO and A2C train, and its policy_kwargs.

An `ActorCritic` is: a features extractor chosen from the observation space (deeprl.policies.features), then
separate MLP trunks for the policy and the value (SB3's default `net_arch=[64, 64]` means two trunks of 64-64),
then a head: categorical logits for Discrete actions, one categorical per branch for MultiDiscrete (ML-Agents'
branches, SnowballTarget's turn and shoot: independent, so the log-probability and the entropy are the branches'
sums), a diagonal Gaussian with a state-independent log std for Box.
Initialization follows CleanRL / SB3: orthogonal, gain sqrt(2) in trunks, 0.01 on the action head, 1 on the value.

The distributions are written out (log-softmax, Gaussian log-density) rather than through torch.distributions:
the same numbers, without the argument validation and object churn that dominate on networks this small.
`build_policy(..., fast=True)` adds the written-out twin for MLPs on flat observations (deeprl.fast).
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from deeprl.errors import UserError
from deeprl.fast.actor_critic import FastMLP
from deeprl.kwargs import parse_call_kwargs
from deeprl.nets import ACTIVATIONS, layer_init, mlp
from deeprl.policies.features import Flatten, make_features

LOG_2PI = math.log(2 * math.pi)
POLICY_KWARGS = {"net_arch", "activation_fn", "ortho_init", "log_std_init", "share_features_extractor"}


# ----------------------------------------------------------------------------------------------------------
# policy_kwargs, RL-Zoo style, read without eval()


def parse_policy_kwargs(value: Any) -> dict:  # whatever the settings hold (a wrong kind is a UserError)
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
    return {
        "net_arch": {"pi": pi, "vf": vf},
        "activation": act,
        "ortho_init": bool(value.get("ortho_init", True)),
        "log_std_init": float(value.get("log_std_init", 0.0)),
    }


# ----------------------------------------------------------------------------------------------------------
# The actor-critic

ObsBatch = torch.Tensor | dict[str, torch.Tensor]  # a batch of observations (one tensor per key of a Dict space)


class ActorCritic(nn.Module):
    """features -> (policy trunk -> action head, value trunk -> value head)."""

    def __init__(
        self,
        obs_space: Any,  # Gymnasium spaces, told apart by their type's name
        action_space: Any,
        net_arch: dict | list | None = None,
        activation: str = "tanh",
        ortho_init: bool = True,
        log_std_init: float = 0.0,
    ):
        super().__init__()
        kw = parse_policy_kwargs(
            {
                "net_arch": net_arch if net_arch is not None else [64, 64],
                "activation_fn": activation,
                "ortho_init": ortho_init,
                "log_std_init": log_std_init,
            }
        )
        self.kwargs = kw
        self.features = make_features(obs_space)
        self.flat_obs = type(self.features) is Flatten
        self.fast: FastMLP | None = None  # the written-out twin, where build_policy(fast=True) made one
        kind = type(action_space).__name__
        # nvec: the branch sizes of MultiDiscrete actions (None otherwise); the head's logits are the branches' in order
        self.nvec: tuple[int, ...] | None = None
        if kind == "Discrete":
            self.discrete, self.action_dim = True, int(action_space.n)
        elif kind == "MultiDiscrete":
            self.discrete, self.nvec = False, tuple(int(n) for n in np.asarray(action_space.nvec).ravel())
            self.action_dim, self.action_shape = sum(self.nvec), tuple(action_space.shape)
        elif kind == "Box":
            self.discrete, self.action_dim = False, int(np.prod(action_space.shape))
            self.action_shape = tuple(action_space.shape)
        else:
            raise UserError(
                f"Actions of type {kind} are not supported yet; PPO and A2C handle Discrete, MultiDiscrete and Box."
            )
        self.continuous = kind == "Box"
        pi, vf, act = kw["net_arch"]["pi"], kw["net_arch"]["vf"], kw["activation"]
        init = kw["ortho_init"]
        self.pi_trunk = mlp(self.features.dim, pi, None, act, init=init)
        self.vf_trunk = mlp(self.features.dim, vf, None, act, init=init)
        self.action_head = nn.Linear(pi[-1] if pi else self.features.dim, self.action_dim)
        self.value_head = nn.Linear(vf[-1] if vf else self.features.dim, 1)
        if init:
            layer_init(self.action_head, 0.01)
            layer_init(self.value_head, 1.0)
        if self.continuous:
            self.log_std = nn.Parameter(torch.full((self.action_dim,), kw["log_std_init"]))

    # distributions -----------------------------------------------------------------------------------
    def forward(self, obs: ObsBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(action-distribution parameters: logits or mean, value [B])."""
        x = self.features(obs)
        return self.action_head(self.pi_trunk(x)), self.value_head(self.vf_trunk(x)).squeeze(-1)

    def log_prob_entropy(self, dist: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.discrete:
            logp_all = torch.log_softmax(dist, -1)
            logp = logp_all.gather(1, actions.long().reshape(-1, 1)).squeeze(1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp, entropy
        if self.nvec is not None:
            return self._branches_log_prob_entropy(dist, actions)
        log_std = self.log_std.expand_as(dist)
        z = (actions.reshape(dist.shape) - dist) * torch.exp(-log_std)
        logp = (-0.5 * z.pow(2) - log_std).sum(-1) - 0.5 * LOG_2PI * self.action_dim
        entropy = (0.5 + 0.5 * LOG_2PI + self.log_std).sum().expand(dist.shape[0])
        return logp, entropy

    def _branches_log_prob_entropy(
        self, dist: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        nvec = cast(tuple[int, ...], self.nvec)  # MultiDiscrete actions: the branch sizes
        actions = actions.long().reshape(dist.shape[0], len(nvec))
        logp: torch.Tensor | int = 0
        entropy: torch.Tensor | int = 0
        for i, logits in enumerate(dist.split(self.nvec, -1)):
            logp_all = torch.log_softmax(logits, -1)
            logp = logp + logp_all.gather(1, actions[:, i : i + 1]).squeeze(1)
            entropy = entropy - (logp_all.exp() * logp_all).sum(-1)
        return cast(torch.Tensor, logp), cast(torch.Tensor, entropy)  # tensors: a MultiDiscrete has a branch

    def sample(self, dist: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        if self.discrete:
            if deterministic:
                return dist.argmax(-1)
            return torch.multinomial(torch.softmax(dist, -1), 1).squeeze(1)
        if self.nvec is not None:
            branches = dist.split(self.nvec, -1)
            if deterministic:
                return torch.stack([b.argmax(-1) for b in branches], 1)
            return torch.stack([torch.multinomial(torch.softmax(b, -1), 1).squeeze(1) for b in branches], 1)
        if deterministic:
            return dist
        return dist + torch.randn_like(dist) * self.log_std.exp()

    # the interface algorithms use ----------------------------------------------------------------------
    def act(self, obs: ObsBatch, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, value, log_prob) for a batch; call under torch.inference_mode when collecting."""
        fast = self.fast
        dist, value = fast.forward(obs) if fast is not None else self(obs)
        action = self.sample(dist, deterministic)
        logp, _ = self.log_prob_entropy(dist, action)
        return action, value, logp

    def evaluate_actions(self, obs: ObsBatch, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log_prob, entropy, value) of stored actions under the current parameters (with gradients)."""
        dist, value = self(obs)
        logp, entropy = self.log_prob_entropy(dist, actions)
        return logp, entropy, value

    def value(self, obs: ObsBatch) -> torch.Tensor:
        fast = self.fast
        if fast is not None:
            return fast.value(obs)
        x = self.features(obs)
        return self.value_head(self.vf_trunk(x)).squeeze(-1)

    def action(self, obs: ObsBatch, deterministic: bool = True) -> torch.Tensor:
        x = self.features(obs)
        return self.sample(self.action_head(self.pi_trunk(x)), deterministic)

    def config(self) -> dict:
        return {"class": "ActorCritic", **self.kwargs}


def build_policy(
    obs_space: Any, action_space: Any, policy_config: dict, device: torch.device | str = "cpu", fast: bool = False
) -> ActorCritic:
    """The ActorCritic of `policy_config` on `device`; with fast=True also its written-out twin (deeprl.fast) as
    `policy.fast` where the shape allows it, which lays the parameters out flat: build it before the optimizer."""
    policy = ActorCritic(
        obs_space,
        action_space,
        net_arch=policy_config.get("net_arch"),
        activation=policy_config.get("activation", "tanh"),
        ortho_init=policy_config.get("ortho_init", True),
        log_std_init=policy_config.get("log_std_init", 0.0),
    ).to(device)
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
