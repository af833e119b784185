"""Generative Adversarial Imitation Learning (Ho & Ermon 2016), Bonus 5: PPO learns from a discriminator's reward
instead of the env's.

    D(s, a) = sigmoid(f(s, a))          f: an MLP on (observation, action), trained to tell demonstrations from
                                         the generator's rollouts:  L_D = BCE(f(expert), 1) + BCE(f(generator), 0)
    r(s, a) = -log(1 - D(s, a)) = softplus(f(s, a))      the reward PPO sees in place of the env's

The generator is deeprl.algos.ppo as it is (its `train`, settings, checkpoints, model files): GAIL hands it a
`rewards` hook that relabels each rollout before its advantages are computed, then trains the discriminator on
that rollout for the next one, the order of the `imitation` library's AdversarialTrainer. As there,
`n_disc_updates_per_round` minibatch steps each see `demo_batch_size` demonstration pairs and as many of the
rollout's; the discriminator's inputs are standardized by the demonstrations' mean and std (imitation normalizes
them with running statistics). Discrete actions enter it one-hot.

The course uses imitation's GAIL with an SB3 PPO generator; that library pins Gymnasium 0.29 and SB3 2.2 (this
project runs Gymnasium 1.x), so GAIL is written here on our PPO. Known limits: -log(1 - D) is positive, a bonus for
every step survived (Kostrikov et al. 2019), which favours long episodes in CartPole whatever the demonstrations
do; the value the collector folds into the reward of a time-limit cut is replaced with the rest of the reward; the
discriminator is not checkpointed (`--resume` goes on with a fresh one); PPO's `normalize` is refused (the
discriminator reads the observations the env gives, as the demonstrations hold them).

`bc_pretrain_epochs` first clones the demonstrations into the generator's actor (deeprl.algos.bc's loss and
settings), as the `imitation` library's users pretrain it with its BC before the adversarial rounds: PPO then starts
near the demonstrator, and its value head, still untrained, learns from the first rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deeprl.algos import bc, ppo
from deeprl.datasets import TrajectoryDataset, demonstrations
from deeprl.envs import make_env
from deeprl.errors import UserError
from deeprl.nets import mlp
from deeprl.normalize import parse_normalize
from deeprl.settings import defaults

if TYPE_CHECKING:
    from deeprl.policies import ActorCritic, PolicyAgent
    from deeprl.rollout import RolloutBuffer
    from deeprl.train import Run


@dataclass
class Settings(ppo.Settings):
    """PPO's settings (the generator's; hyperparams/gail.yml sets the course's) and the discriminator's.

    :param demos: folder of the demonstrations (a trajectory dataset of the same env)
    :param demo_batch_size: demonstration pairs (and as many generator pairs) per discriminator step
    :param n_disc_updates_per_round: discriminator steps after each rollout
    :param disc_learning_rate: the discriminator's Adam step size
    :param disc_net_arch: the discriminator's hidden layers (ReLU)
    :param bc_pretrain_epochs: epochs of behaviour cloning (deeprl.algos.bc's settings) on the demonstrations before
        PPO's first rollout; 0: none
    """

    demos: str | None = None
    demo_batch_size: int = 256
    n_disc_updates_per_round: int = 16
    disc_learning_rate: float = 3e-4
    disc_net_arch: Any = None
    bc_pretrain_epochs: int = 0


DEFAULTS = defaults(Settings)
DISPLAY_NAME = "GAIL"  # on model cards
TAGS = ["gail", "imitation-learning", "ppo", "custom-implementation"]


class Discriminator(nn.Module):
    """f(s, a): the logit that (s, a) comes from the demonstrations."""

    obs_mean: torch.Tensor
    obs_std: torch.Tensor

    def __init__(self, demos: TrajectoryDataset, action_space: Any, net_arch: list[int], learning_rate: float):
        super().__init__()
        obs, _ = demos.transitions()
        self.n_actions = int(action_space.n) if hasattr(action_space, "n") else None
        self.obs_dim = obs.shape[1]
        act_dim = self.n_actions if self.n_actions is not None else int(np.prod(action_space.shape))
        self.register_buffer("obs_mean", torch.as_tensor(obs.mean(0)))
        self.register_buffer("obs_std", torch.as_tensor(obs.std(0) + 1e-6))
        self.net = mlp(self.obs_dim + act_dim, net_arch, 1, "relu")
        self.optimizer = torch.optim.Adam(self.parameters(), lr=learning_rate)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        obs = (obs.reshape(-1, self.obs_dim) - self.obs_mean) / self.obs_std
        if self.n_actions is not None:
            acts = F.one_hot(actions.long().reshape(-1), self.n_actions).float()
        else:
            acts = actions.reshape(obs.shape[0], -1).float()
        return self.net(torch.cat([obs, acts], 1)).squeeze(-1)

    def reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """-log(1 - D(s, a)) per pair."""
        with torch.no_grad():
            return F.softplus(self(torch.as_tensor(obs), torch.as_tensor(actions))).numpy()

    def update(
        self,
        expert: tuple[np.ndarray, np.ndarray],
        generator: tuple[np.ndarray, np.ndarray],
        n_updates: int,
        batch_size: int,
        rng: np.random.Generator,
    ) -> dict[str, float]:
        """n_updates BCE steps on fresh minibatches of both sides; returns the last step's loss and accuracies."""
        stats: dict[str, float] = {}
        for _ in range(n_updates):
            e = rng.integers(len(expert[1]), size=batch_size)
            g = rng.integers(len(generator[1]), size=batch_size)
            logits_e = self(torch.as_tensor(expert[0][e]), torch.as_tensor(expert[1][e]))
            logits_g = self(torch.as_tensor(generator[0][g]), torch.as_tensor(generator[1][g]))
            loss = F.binary_cross_entropy_with_logits(
                logits_e, torch.ones_like(logits_e)
            ) + F.binary_cross_entropy_with_logits(logits_g, torch.zeros_like(logits_g))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            stats = {
                "disc/loss": float(loss.detach()),
                "disc/expert_accuracy": float((logits_e > 0).float().mean()),
                "disc/generator_accuracy": float((logits_g < 0).float().mean()),
            }
        return stats


def train(run: Run) -> None:
    hp = run.settings(Settings)
    for key in ("demo_batch_size", "n_disc_updates_per_round"):
        if getattr(hp, key) <= 0:
            raise UserError(f"{key} must be a positive integer, not {getattr(hp, key)!r}.")
    if hp.bc_pretrain_epochs < 0:
        raise UserError(f"bc_pretrain_epochs must be 0 or a positive integer, not {hp.bc_pretrain_epochs!r}.")
    norm = parse_normalize(hp.normalize)
    if norm["norm_obs"] or norm["norm_reward"]:
        raise UserError(
            "gail replaces the env's reward and its discriminator reads raw observations; set normalize: false."
        )
    env = make_env(run.env_id, run.env_kwargs)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    demos = demonstrations(hp.demos, run.env_id, obs_space, action_space)
    expert = demos.transitions()
    net_arch = list(hp.disc_net_arch) if hp.disc_net_arch is not None else [64, 64]
    if not all(isinstance(h, int) and h > 0 for h in net_arch):
        raise UserError(f"disc_net_arch must be a list of positive layer sizes, not {hp.disc_net_arch!r}.")
    disc = Discriminator(demos, action_space, net_arch, hp.disc_learning_rate)
    rng = np.random.default_rng(run.seed + 1)  # (PPO draws from its own generator: the two never share draws)
    writer, rollouts = run.writer(), 0

    def rewards(buffer: RolloutBuffer) -> None:
        nonlocal rollouts
        obs = buffer.obs.reshape(-1, disc.obs_dim)
        actions = buffer.actions.reshape(len(obs), -1) if disc.n_actions is None else buffer.actions.reshape(-1)
        relabelled = disc.reward(obs, actions)
        stats = disc.update(expert, (obs, actions), hp.n_disc_updates_per_round, hp.demo_batch_size, rng)
        buffer.rewards[:] = relabelled.reshape(buffer.rewards.shape)
        rollouts += 1
        stats["gail/reward_mean"] = float(relabelled.mean())
        writer.add_scalars(list(stats.items()), rollouts)

    def pretrain(policy: ActorCritic) -> None:
        obs, actions = bc.demo_tensors(demos, obs_space, action_space)
        stats = bc.pretrain(policy, obs, actions, hp.bc_pretrain_epochs, rng)
        writer.add_scalars([(f"bc/{k}", v) for k, v in stats.items()], 0)

    ppo.train(run, rewards=rewards, pretrain=pretrain if hp.bc_pretrain_epochs else None)


def load_agent(config: dict, tensors: dict) -> PolicyAgent:
    return ppo.load_agent(config, tensors)
