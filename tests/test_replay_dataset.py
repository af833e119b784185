"""D4RL's replay datasets: `record_dataset: DIR` writes every episode an on-policy run trains on (deeprl.datasets)."""

import json

import numpy as np
import pytest

from deeprl import datasets
from deeprl.checkpoint import load_checkpoint
from deeprl.cli import main
from deeprl.envs import make_env
from deeprl.errors import UserError
from deeprl.loop import Callback
from deeprl.train import train


def _train(algo, env_id, tmp_path, hyperparams, **kwargs):
    return train(
        algo,
        env_id,
        overrides=hyperparams,
        log_folder=tmp_path / "logs",
        show_progress=False,
        device="cpu",
        **kwargs,
    )


def _reported(run):
    """What the run itself counted: its finished episodes (checkpoint and config) and their lengths and returns
    (the collector's window of the last 100: all of them in these short runs)."""
    _, state = load_checkpoint(run.run_dir)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["trained"]["episodes"] == state["collector"]["episodes"]
    return state["collector"]


def _replay(episodes, env_id, n_envs, seed):
    """Play every recorded episode again, with its actions, on single envs seeded as the vector env seeds them (env
    i: seed + i, then unseeded resets): each episode's first observation says which env it came from, and then every
    observation, reward and termination must be the env's own. Returns the episodes per env."""
    envs = [make_env(env_id) for _ in range(n_envs)]
    starts = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    per_env = [0] * n_envs
    for episode in episodes:
        (i,) = [i for i, s in enumerate(starts) if np.array_equal(np.float32(s), episode.observations[0])]
        env = envs[i]
        obs = starts[i]
        for t, action in enumerate(episode.actions):
            assert np.array_equal(np.float32(obs), episode.observations[t])
            obs, reward, terminated, truncated, _ = env.step(action)
            assert np.float32(reward) == episode.rewards[t]
            assert bool(terminated) == bool(episode.dones[t])
            assert (terminated or truncated) == (t == len(episode) - 1)  # the episode ends where the env's did
        starts[i] = env.reset()[0]
        per_env[i] += 1
    for env in envs:
        env.close()
    return per_env


def test_ppo_records_every_finished_episode_as_the_env_played_it(tmp_path):
    out = tmp_path / "replay"
    hp = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "vectorization": "sync", "record_dataset": str(out)}
    run = _train("ppo", "CartPole-v1", tmp_path, hp, n_timesteps=1024, seed=3)
    dataset = datasets.read(out)
    reported = _reported(run)
    assert 10 < reported["episodes"] < 100  # (all in the window of 100)
    assert len(dataset.trajectories) == reported["episodes"]
    assert [len(t) for t in dataset.trajectories] == reported["recent_lengths"]  # in the order they finished
    assert dataset.returns().tolist() == reported["recent_returns"]
    summary = dataset.summary()
    assert summary["steps"] == sum(reported["recent_lengths"]) <= 1024
    # CartPole's pole falls: every episode ends terminated, on its last step only
    assert all(t.dones[-1] and not t.dones[:-1].any() for t in dataset.trajectories)
    per_env = _replay(dataset.trajectories, "CartPole-v1", 2, seed=3)
    assert min(per_env) > 0
    assert dataset.env_id == "CartPole-v1" and dataset.info["action_space"] == {"type": "Discrete", "n": 2}
    card = (out / "README.md").read_text()
    assert f"the training replay of ppo run {run.run_dir}" in card


def test_box_actions_are_recorded_clipped_and_observations_unnormalized(tmp_path):
    out = tmp_path / "replay"
    # normalize: the policy sees normalized observations and rewards; the dataset keeps the env's own
    hp = {"n_envs": 2, "n_steps": 128, "batch_size": 64, "n_epochs": 1, "vectorization": "sync", "normalize": True}
    run = _train("ppo", "LunarLanderContinuous-v3", tmp_path, {**hp, "record_dataset": str(out)}, n_timesteps=512)
    dataset = datasets.read(out)
    assert len(dataset.trajectories) == _reported(run)["episodes"] > 0
    actions = np.concatenate([t.actions for t in dataset.trajectories])
    assert actions.shape[1] == 2 and np.abs(actions).max() == 1.0  # clipped to the Box, as the env took them
    assert all(t.dones[-1] and not t.dones[:-1].any() for t in dataset.trajectories)  # crashed: terminated
    assert min(_replay(dataset.trajectories, "LunarLanderContinuous-v3", 2, seed=0)) > 0


def test_an_episode_a_time_limit_cuts_ends_without_done(tmp_path, capsys):
    out = tmp_path / "replay"
    hp = {"n_envs": 2, "n_steps": 100, "batch_size": 100, "n_epochs": 1, "record_dataset": str(out)}
    run = _train("ppo", "MountainCar-v0", tmp_path, hp, n_timesteps=800)
    dataset = datasets.read(out)
    # the car never reaches the flag on its first tries: each episode is cut at 200 steps, a truncation
    assert len(dataset.trajectories) == _reported(run)["episodes"] == 4
    assert all(len(t) == 200 and not t.dones.any() for t in dataset.trajectories)
    assert _replay(dataset.trajectories, "MountainCar-v0", 2, seed=0) == [2, 2]
    assert main(["dataset", "show", str(out)]) == 0
    assert "4 episodes, 800 steps (0 terminated)" in capsys.readouterr().out


class StopAfter(Callback):
    def __init__(self, updates):
        self.updates = updates

    def on_update(self, run, count, snapshot):
        self.updates -= 1
        return self.updates <= 0


def test_a_stopped_run_leaves_a_dataset_and_resume_appends_to_it(tmp_path):
    out = tmp_path / "replay"
    hp = {"n_envs": 2, "n_steps": 32, "batch_size": 64, "record_dataset": str(out)}
    stopped = _train("ppo", "CartPole-v1", tmp_path, hp, n_timesteps=1024, callbacks=[StopAfter(4)])
    assert stopped.stopped_by_callback
    first = datasets.read(out)
    assert len(first.trajectories) == _reported(stopped)["episodes"] > 0  # as a Ctrl-C would leave it
    resumed = train("ppo", "CartPole-v1", log_folder=tmp_path / "logs", resume=True, show_progress=False)
    assert resumed.run_dir == stopped.run_dir
    both = datasets.read(out)
    reported = _reported(resumed)
    assert len(both.trajectories) == reported["episodes"] > len(first.trajectories)
    assert [len(t) for t in both.trajectories] == reported["recent_lengths"]
    assert len(list((out / "data").glob("train-*.parquet"))) >= 2
    # a new run does not write into another run's replay
    with pytest.raises(UserError, match="not an empty folder"):
        _train("ppo", "CartPole-v1", tmp_path, hp, n_timesteps=64)
    assert len(list((tmp_path / "logs" / "ppo").iterdir())) == 1  # the refused run left no folder


def test_a2c_records_its_training_episodes_too(tmp_path):
    out = tmp_path / "replay"
    run = _train("a2c", "CartPole-v1", tmp_path, {"n_envs": 4, "record_dataset": str(out)}, n_timesteps=400)
    dataset = datasets.read(out)
    reported = _reported(run)
    assert len(dataset.trajectories) == reported["episodes"] > 0
    assert [len(t) for t in dataset.trajectories] == reported["recent_lengths"]
