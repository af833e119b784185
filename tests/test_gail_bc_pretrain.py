"""GAIL's bc_pretrain_epochs: the generator is cloned from the demonstrations (deeprl.algos.bc) before PPO starts."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from deeprl import datasets
from deeprl.agent import load_agent
from deeprl.algos import bc
from deeprl.errors import UserError
from deeprl.policies import build_policy
from deeprl.train import train
from demo_helpers import cartpole_demos


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return cartpole_demos(tmp_path_factory.mktemp("demos") / "cartpole", 3)


def _agreement(run_dir, demos):
    obs, actions = datasets.read(demos).transitions()
    agent = load_agent(run_dir)
    return float(np.mean([agent.act(o, deterministic=True) == a for o, a in zip(obs, actions, strict=True)]))


def test_the_generator_starts_from_the_demonstrations(tmp_path, demos):
    # one rollout and a PPO update that changes nothing (learning rate 0): the model is the policy PPO started from
    hp = {"demos": str(demos), "learning_rate": 0.0, "n_disc_updates_per_round": 1, "demo_batch_size": 32}
    agreement = {}
    for epochs in (0, 50):
        run = train(
            "gail",
            "CartPole-v1",
            overrides={**hp, "bc_pretrain_epochs": epochs},
            n_timesteps=512,
            log_folder=tmp_path,
            show_progress=False,
        )
        agreement[epochs] = _agreement(run.run_dir, demos)
    assert agreement[50] > 0.9 and agreement[50] > agreement[0] + 0.25, agreement


def test_bc_pretrain_steps_ppos_flat_parameters_and_its_numpy_twin():
    # PPO's policy lays its parameters out flat (deeprl.fast): pretraining must step them there, and keep them there
    torch.manual_seed(0)
    policy = build_policy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2,)), {}, fast=True)
    assert policy.fast is not None
    obs = torch.randn(512, 3)
    target = torch.stack([obs[:, 0], -obs[:, 1]], 1) * 0.5
    stats = bc.pretrain(policy, obs, target, 40, np.random.default_rng(0))
    assert stats["mse"] < 0.01
    assert policy.fast.flat.owns(policy.parameters())
    policy.fast.refresh()  # as the collector does before a rollout: numpy acts as the cloned torch policy does
    action, _, _ = policy.fast.numpy_act(obs[:5].numpy(), np.random.default_rng(0), deterministic=True)
    assert np.allclose(action, target[:5].numpy(), atol=0.15)


def test_bc_pretrain_epochs_must_not_be_negative(tmp_path, demos):
    with pytest.raises(UserError, match="bc_pretrain_epochs"):
        train("gail", "CartPole-v1", overrides={"demos": str(demos), "bc_pretrain_epochs": -1}, log_folder=tmp_path)
