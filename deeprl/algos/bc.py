"""Behaviour cloning (Bonus 5; Pomerleau 1991): supervised learning of the demonstrator's actions.

    Discrete actions:  loss = mean(-log pi(a_demo | s)) - ent_weight * mean(entropy)      (cross-entropy)
    Box actions:       loss = mean(||mu(s) - a_demo||^2)                                  (MSE on the mean)

The policy is the same ActorCritic that PPO trains (deeprl.policies), so a cloned model evaluates, records and
pushes like a PPO one, and GAIL or PPO could start from it. Only its actor learns; the value head stays as
initialized. The course uses the `imitation` library's BC (on an SB3 policy); that library pins Gymnasium 0.29 and
SB3 2.2, which would downgrade this project's Gymnasium 1.x, so the few lines it needs are written here.
`ent_weight` is imitation's default 1e-3; the demonstrations are `demos: DIR`, a trajectory dataset
(deeprl.datasets) from `deeprl dataset make` or `deeprl record-demo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from deeprl.datasets import TrajectoryDataset, demonstrations
from deeprl.envs import make_env
from deeprl.errors import UserError
from deeprl.fast.flat import Adam
from deeprl.nets import set_threads
from deeprl.policies import (
    build_policy,
    describe_space,
    load_policy_agent,
    load_policy_tensors,
    parse_policy_kwargs,
    policy_tensors,
)
from deeprl.settings import defaults

if TYPE_CHECKING:
    from deeprl.policies import ActorCritic, PolicyAgent
    from deeprl.train import Run


@dataclass
class Settings:
    """imitation's BC defaults (batch 32 there; 64 here, as PPO's minibatch); hyperparams/bc.yml per env.

    :param demos: folder of the demonstrations (a trajectory dataset of the same env)
    :param n_epochs: passes over the demonstrations
    :param batch_size: minibatch size (transitions)
    :param learning_rate: Adam's step size
    :param ent_weight: entropy bonus for Discrete actions (imitation's 1e-3)
    :param policy_kwargs: as PPO's: {net_arch: [64, 64], activation_fn: tanh}
    :param torch_threads: small networks run fastest on one thread
    """

    demos: str | None = None
    n_epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 1e-3
    ent_weight: float = 1e-3
    policy_kwargs: Any = None
    torch_threads: int = 1


DEFAULTS = defaults(Settings)
DISPLAY_NAME = "Behaviour Cloning"  # on model cards
TAGS = ["bc", "imitation-learning", "custom-implementation"]


def bc_loss(
    policy: ActorCritic, obs: torch.Tensor, actions: torch.Tensor, ent_weight: float
) -> tuple[torch.Tensor, dict]:
    """The cloning loss on one minibatch: (loss, detached diagnostics)."""
    dist = policy.action_head(policy.pi_trunk(policy.features(obs)))
    if policy.continuous:
        loss = (dist - actions.reshape(dist.shape)).pow(2).sum(-1).mean()
        return loss, {"mse": loss.detach()}
    log_prob, entropy = policy.log_prob_entropy(dist, actions)
    loss = -log_prob.mean() - ent_weight * entropy.mean()
    with torch.no_grad():
        accuracy = (policy.sample(dist, deterministic=True).reshape(actions.shape) == actions).float().mean()
    return loss, {"neglogp": -log_prob.mean().detach(), "entropy": entropy.mean().detach(), "accuracy": accuracy}


def demo_tensors(demos: TrajectoryDataset, obs_space: Any, action_space: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (observation, action) pair of the demonstrations as the tensors the policy reads."""
    obs_np, act_np = demos.transitions()
    if getattr(action_space, "n", None) is not None and (act_np.min() < 0 or act_np.max() >= action_space.n):
        raise UserError(f"The demonstrations of {demos.env_id} hold actions outside {action_space}.")
    return torch.as_tensor(obs_np.reshape((-1, *obs_space.shape))), torch.as_tensor(act_np)


def clone_epoch(
    policy: ActorCritic,
    optimizer: Any,
    obs: torch.Tensor,
    actions: torch.Tensor,
    batch_size: int,
    ent_weight: float,
    rng: np.random.Generator,
) -> dict[str, float]:
    """One pass of bc_loss steps over the demonstrations in shuffled minibatches; the epoch's mean diagnostics."""
    n = len(actions)
    perm = torch.from_numpy(rng.permutation(n))
    sums: dict[str, float] = {}
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        loss, info = bc_loss(policy, obs[idx], actions[idx], ent_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for k, v in info.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(idx) / n
    return sums


def pretrain(
    policy: ActorCritic,
    obs: torch.Tensor,
    actions: torch.Tensor,
    n_epochs: int,
    rng: np.random.Generator,
    hp: Settings | None = None,
) -> dict[str, float]:
    """Clone demonstrations (demo_tensors) into a policy another algorithm goes on training (GAIL's
    bc_pretrain_epochs: the `imitation` library's users pretrain the generator so): n_epochs of clone_epoch with
    BC's settings `hp` (default: DEFAULTS), stepped by deeprl.fast.flat's Adam, which also steps a PPO policy's flat
    parameters (deeprl.fast) in place. Returns the last epoch's diagnostics."""
    hp = hp if hp is not None else Settings()
    optimizer = Adam(policy.parameters(), lr=hp.learning_rate)
    stats: dict[str, float] = {}
    for _ in range(n_epochs):
        stats = clone_epoch(policy, optimizer, obs, actions, hp.batch_size, hp.ent_weight, rng)
    return stats


def train(run: Run) -> None:
    hp = run.settings(Settings)
    for key in ("n_epochs", "batch_size"):
        if getattr(hp, key) <= 0:
            raise UserError(f"{key} must be a positive integer, not {getattr(hp, key)!r}.")
    if hp.torch_threads:
        set_threads(hp.torch_threads)
    env = make_env(run.env_id, run.env_kwargs)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    demos = demonstrations(hp.demos, run.env_id, obs_space, action_space)
    obs, actions = demo_tensors(demos, obs_space, action_space)
    policy = build_policy(obs_space, action_space, parse_policy_kwargs(hp.policy_kwargs))
    optimizer = torch.optim.Adam(policy.parameters(), lr=hp.learning_rate)
    rng = np.random.default_rng(run.seed)
    epoch = 0
    if run.resumed:
        tensors, state = run.resumed
        load_policy_tensors(policy, tensors, run.env_id)
        optimizer_from_tensors(optimizer, tensors, state["optimizer"])
        run.restore_rng(tensors, state, rng)
        epoch = state["epochs"]
    policy_config = {
        **policy.config(),
        "normalize": None,
        "observation_space": describe_space(obs_space),
        "action_space": describe_space(action_space),
    }
    writer, n = run.writer(), len(actions)
    stats: dict = {}

    def checkpoint() -> None:
        opt_tensors, opt_state = optimizer_to_tensors(optimizer)
        run.checkpoint({**policy_tensors(policy), **opt_tensors}, {"epochs": epoch, "optimizer": opt_state}, rng)

    def save(stopped: bool) -> None:
        run.save_model(
            policy_tensors(policy),
            policy_config,
            stopped=stopped,
            epochs=epoch,
            demonstrations=hp.demos,
            demo_episodes=len(demos.trajectories),
            demo_transitions=n,
            demo_mean_return=float(demos.returns().mean()),
            **{k: round(float(v), 6) for k, v in stats.items()},
        )

    with run.loop(hp.n_epochs, "epochs", initial=epoch, checkpoint=checkpoint, save=save, checkpoint_every=10) as loop:
        while epoch < hp.n_epochs:
            stats = clone_epoch(policy, optimizer, obs, actions, hp.batch_size, hp.ent_weight, rng)
            epoch += 1
            writer.add_scalars([(f"train/{k}", v) for k, v in stats.items()], epoch)
            if loop.update(1, epoch, lambda: (policy_tensors(policy), policy_config), **stats):
                break
            loop.checkpoint_if_due(epoch)


def load_agent(config: dict, tensors: dict) -> PolicyAgent:
    return load_policy_agent(config, tensors)
