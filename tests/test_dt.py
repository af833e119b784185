"""Bonus 3: the Decision Transformer's collator, its training, and a saved model played by the protocol."""

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from deeprl import datasets
from deeprl.agent import load_agent
from deeprl.algos import dt
from deeprl.errors import UserError
from deeprl.evaluation import evaluate
from deeprl.modelio import load_model
from deeprl.train import train

LANDER, CONTINUOUS = "LunarLander-v2", {"continuous": True}


def _trajectory(n, obs_dim=3, act_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    return datasets.Trajectory(
        observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        rewards=np.arange(1, n + 1, dtype=np.float32),
        dones=np.arange(n) == n - 1,
    )


def _unit_bounds(act_dim=2):
    return -np.ones(act_dim, np.float32), np.ones(act_dim, np.float32)


def test_collator_pads_on_the_left_with_mask_returns_to_go_and_timesteps():
    t = _trajectory(5)  # rewards 1..5: returns-to-go 15, 14, 12, 9, 5
    t.actions[:] = np.array([[-3.0, 0.5]])  # outside the bounds: clipped to them, as the env would
    mean, std = np.full(3, 1.0, np.float32), np.full(3, 2.0, np.float32)
    data = dt.prepare([t], mean, std, 10.0, *_unit_bounds())
    batch = dt.collate(data, [(0, 3), (0, 0)], context_length=4, max_ep_len=4)
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        "states": (2, 4, 3),
        "actions": (2, 4, 2),
        "returns_to_go": (2, 4, 1),
        "timesteps": (2, 4),
        "attention_mask": (2, 4),
    }
    # from step 3: two real steps, two of padding on the left
    assert batch["attention_mask"][0].tolist() == [0, 0, 1, 1]
    assert batch["timesteps"][0].tolist() == [0, 0, 3, 3]  # step 4 clipped at max_ep_len - 1
    assert np.allclose(batch["returns_to_go"][0, :, 0], [0, 0, 0.9, 0.5])  # (4 + 5) / 10, 5 / 10
    assert np.allclose(batch["states"][0, :2], 0) and np.allclose(batch["states"][0, 2:], (t.observations[3:] - 1) / 2)
    assert np.allclose(batch["actions"][0, :2], dt.PAD_ACTION) and np.allclose(batch["actions"][0, 2:], [[-1.0, 0.5]])
    # from step 0: the first K steps, nothing padded
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1]
    assert batch["timesteps"][1].tolist() == [0, 1, 2, 3]
    assert np.allclose(batch["returns_to_go"][1, :, 0], [1.5, 1.4, 1.2, 0.9])


def test_sub_sequences_are_drawn_in_proportion_to_trajectory_length():
    data = dt.prepare([_trajectory(1), _trajectory(99)], np.zeros(3), np.ones(3), 1.0, *_unit_bounds())
    picks = dt.sample(data, np.random.default_rng(0), 2000)
    share = np.mean([i == 1 for i, _ in picks])
    assert 0.97 < share <= 1.0
    assert all(0 <= start < (1 if i == 0 else 99) for i, start in picks)


def test_actions_map_onto_the_env_bounds_and_back():
    low, high = np.array([0.0, -2.0], np.float32), np.array([4.0, 2.0], np.float32)
    unit = dt.to_unit(np.array([[1.0, 2.0], [9.0, -2.0]], np.float32), low, high)
    assert np.allclose(unit, [[-0.5, 1.0], [1.0, -1.0]])
    assert np.allclose(dt.from_unit(unit, low, high), [[1.0, 2.0], [4.0, -2.0]])


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    trajectories = [_trajectory(30, seed=s) for s in range(4)]
    for t in trajectories:  # a learnable target: the action is a function of the state
        t.actions = np.tanh(t.observations[:, :2]).astype(np.float32)
    data = dt.prepare(trajectories, *dt.state_stats(trajectories), 100.0, *_unit_bounds())
    batch = dt.collate(data, dt.sample(data, np.random.default_rng(0), 16), 10, 1000)
    model = dt.build_model(3, 2, hidden_size=32, n_layer=1, n_head=1, dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    losses = []
    for _ in range(40):
        loss = dt.dt_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny DT trained through `deeprl train --algo dt` on 3 random LunarLander (continuous) episodes."""
    root = tmp_path_factory.mktemp("dt")
    trajectories = []
    for seed in range(3):
        t = _trajectory(40, obs_dim=8, seed=seed)
        t.rewards = np.random.default_rng(seed).normal(size=40).astype(np.float32)
        trajectories.append(t)
    spaces = {"observation_shape": [8], "action_space": {"type": "Box", "shape": [2]}}
    datasets.write(root / "data", trajectories, env_id=LANDER, env_kwargs=CONTINUOUS, spaces=spaces, source="test")
    overrides = {"dataset": str(root / "data"), "hidden_size": 32, "n_layer": 1, "batch_size": 8}
    run = train(
        "dt", LANDER, env_kwargs=CONTINUOUS, overrides=overrides, n_timesteps=5, log_folder=root, show_progress=False
    )
    return run, trajectories


def test_pushed_with_a_card_and_a_replay(trained):
    from deeprl.hub import resolve_repo
    from deeprl.publish import push_model

    run, _ = trained
    push_model(run.run_dir, "alice/dt-lander", n_eval_episodes=1)
    repo = resolve_repo("alice/dt-lander")
    card = (repo / "README.md").read_text()
    assert "dt" in card.lower() and "mean_reward" in card and (repo / "replay.mp4").stat().st_size > 1000
    assert load_agent("alice/dt-lander").act(np.zeros(8, np.float32)).shape == (2,)


def test_saved_model_loads_plays_the_protocol_and_keeps_the_episode_context(trained):
    run, trajectories = trained
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["algo"] == "dt" and config["trained"]["timesteps"] == 5
    best = max(t.episode_return for t in trajectories)
    assert config["policy"]["target_return"] == pytest.approx(best, rel=1e-5)
    assert len(config["policy"]["state_mean"]) == 8 and config["policy"]["scale"] == 1000.0

    agent, again = load_agent(run.run_dir), load_agent(run.run_dir)
    obs = np.linspace(-1, 1, 8).astype(np.float32)
    action = agent.act(obs)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
    assert np.allclose(action, again.act(obs))  # the weights came back exactly
    agent.observe(250.0)
    agent.observe(250.0)  # told twice for one step (the protocol and a wrapper): counted once
    agent.act(obs)
    assert agent.returns_to_go[-1] == pytest.approx((best - 250.0) / 1000.0)
    for _ in range(25):
        agent.act(obs)
    assert len(agent.states) == 20 and list(agent.timesteps)[-1] == 26  # the last K steps, numbered from 0
    agent.reset()
    agent.act(obs)
    assert list(agent.timesteps) == [0] and agent.returns_to_go[-1] == pytest.approx(best / 1000.0)

    result = evaluate(agent, n_eval_episodes=2)
    assert result["n_eval_episodes"] == 2 and np.isfinite(result["mean_reward"])


def test_discrete_actions_and_a_missing_dataset_are_one_sentence(tmp_path):
    with pytest.raises(UserError, match="continuous \\(Box\\) actions"):
        train("dt", "CartPole-v1", n_timesteps=1, log_folder=tmp_path, show_progress=False)
    with pytest.raises(UserError, match="dataset:DIR"):
        train("dt", LANDER, env_kwargs=CONTINUOUS, n_timesteps=1, log_folder=tmp_path, show_progress=False)


def test_a_doctored_config_is_refused(trained):
    run, _ = trained
    config, tensors = load_model(run.run_dir)
    config["policy"]["state_mean"] = [0.0] * 3
    with pytest.raises(UserError, match="do not fit together"):
        dt.load_agent(config, tensors)


def test_importing_deeprl_does_not_import_transformers():
    code = "import sys, deeprl, deeprl.algos.dt, deeprl.cli; sys.exit('transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_hub_dataset_in_the_course_columns_is_read_through_datasets(monkeypatch):
    from datasets import Dataset

    asked = {}
    rows = Dataset.from_dict(  # as edbeeching/decision_transformer_gym_replay holds them (D4RL halfcheetah: 17, 6)
        {
            "observations": [np.ones((3, 17)).tolist()],
            "actions": [np.full((3, 6), 0.5).tolist()],
            "rewards": [[1.0, 2.0, 3.0]],
            "dones": [[False, False, True]],
        }
    )

    def load_dataset(path, name=None, split=None):
        asked.update(path=path, name=name, split=split)
        return rows

    monkeypatch.setattr("datasets.load_dataset", load_dataset)
    hp = dt.Settings(dataset="edbeeching/decision_transformer_gym_replay", dataset_config="halfcheetah-expert-v2")
    box = gym.spaces.Box(-1, 1, (6,))
    (t,) = dt.load_trajectories(hp, "HalfCheetah-v5", gym.spaces.Box(-np.inf, np.inf, (17,)), box)
    assert asked == {"path": hp.dataset, "name": "halfcheetah-expert-v2", "split": "train"}
    assert t.observations.shape == (3, 17) and t.actions.shape == (3, 6) and t.episode_return == 6.0
    with pytest.raises(UserError, match="do not match"):
        dt.load_trajectories(hp, "LunarLander-v2", gym.spaces.Box(-np.inf, np.inf, (8,)), gym.spaces.Box(-1, 1, (2,)))
