"""Training callbacks: every algorithm reports its progress and a snapshot of its model; a callback can stop it."""

import numpy as np
import pytest

from deeprl.train import Callback, train


class Recorder(Callback):
    def __init__(self, stop_at=None, snapshot_every=1):
        self.counts, self.snapshots, self.stop_at, self.every = [], [], stop_at, snapshot_every

    def on_update(self, run, count, snapshot):
        self.counts.append(count)
        if len(self.counts) % self.every == 0:
            self.snapshots.append(snapshot())
        return self.stop_at is not None and count >= self.stop_at


CASES = [
    ("qlearning", "FrozenLake-v1", {"is_slippery": False}, {"n_training_episodes": 400}, None),
    ("reinforce", "CartPole-v1", {}, {"n_training_episodes": 6}, None),
    ("ppo", "CartPole-v1", {}, {"n_steps": 64, "n_envs": 2, "batch_size": 32, "n_epochs": 1}, 512),
    ("a2c", "CartPole-v1", {}, {"n_envs": 2}, 400),
    ("dqn", "CartPole-v1", {}, {"learning_starts": 50, "buffer_size": 500}, 300),
]


@pytest.mark.parametrize("algo, env, kwargs, overrides, n", CASES, ids=[c[0] for c in CASES])
def test_every_algorithm_reports_progress_and_snapshots(tmp_path, algo, env, kwargs, overrides, n):
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.modelio import save_model

    rec = Recorder(snapshot_every=3)
    run = train(
        algo,
        env,
        env_kwargs=kwargs,
        overrides=overrides,
        n_timesteps=n,
        log_folder=tmp_path,
        show_progress=False,
        callbacks=[rec],
    )
    assert rec.counts and rec.counts == sorted(rec.counts) and rec.snapshots
    tensors, policy_config = rec.snapshots[-1]
    save_model(tmp_path / "snap", tensors, {**run.base_config(), "policy": policy_config})
    result = evaluate(load_agent(tmp_path / "snap"), n_eval_episodes=2)
    assert np.isfinite(result["mean_reward"])


def test_a_callback_stops_the_run_with_its_model_saved(tmp_path):
    rec = Recorder(stop_at=1024)
    run = train(
        "ppo",
        "CartPole-v1",
        overrides={"n_steps": 128, "n_envs": 2, "batch_size": 64, "n_epochs": 1},
        n_timesteps=20_000,
        log_folder=tmp_path,
        show_progress=False,
        callbacks=[rec],
    )
    assert run.stopped_by_callback and rec.counts[-1] == 1024
    import json

    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["status"] == "stopped" and config["trained"]["timesteps"] == 1024


def test_callbacks_do_not_change_training(tmp_path):
    from deeprl.modelio import load_model

    hp = {"n_steps": 64, "n_envs": 2, "batch_size": 32, "n_epochs": 2}
    plain = train("ppo", "CartPole-v1", overrides=hp, n_timesteps=1024, log_folder=tmp_path / "a", show_progress=False)
    watched = train(
        "ppo",
        "CartPole-v1",
        overrides=hp,
        n_timesteps=1024,
        log_folder=tmp_path / "b",
        show_progress=False,
        callbacks=[Recorder()],
    )
    a, b = load_model(plain.run_dir)[1], load_model(watched.run_dir)[1]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
