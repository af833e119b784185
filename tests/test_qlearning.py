import json

import numpy as np
import pytest

from deeprl.agent import load_agent
from deeprl.algos import qlearning
from deeprl.evaluation import evaluate
from deeprl.train import train


def test_solves_frozenlake_no_slippery(tmp_path):
    run = train(
        "qlearning",
        "FrozenLake-v1",
        env_kwargs={"map_name": "4x4", "is_slippery": False},
        log_folder=tmp_path,
        show_progress=False,
    )
    assert run.run_dir == tmp_path / "qlearning" / "FrozenLake-v1-4x4-no_slippery_1"
    r = evaluate(load_agent(run.run_dir))
    assert r["mean_reward"] == 1.0 and r["std_reward"] == 0.0
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["hyperparams"]["learning_rate"] == 0.7 and config["hyperparams"]["n_training_episodes"] == 10000
    assert config["trained"]["episodes"] == 10000


def test_course_defaults_and_overrides(tmp_path):
    cfg = tmp_path / "hp.yml"
    cfg.write_text("Taxi-v3:\n  n_training_episodes: 200\n  gamma: 0.9\n")
    run = train(
        "qlearning",
        "Taxi-v3",
        hyperparams_file=str(cfg),
        overrides={"learning_rate": 0.5},
        log_folder=tmp_path,
        show_progress=False,
    )
    hp = run.hyperparams
    assert (hp["n_training_episodes"], hp["gamma"], hp["learning_rate"], hp["decay_rate"]) == (200, 0.9, 0.5, 0.005)


def test_unknown_hyperparameter_is_refused(tmp_path):
    from deeprl.errors import UserError

    with pytest.raises(UserError, match="Did you mean learning_rate"):
        train("qlearning", "Taxi-v3", overrides={"learning_rat": 0.1}, log_folder=tmp_path, show_progress=False)


def test_same_seed_same_numbers(tmp_path):
    kw = dict(overrides={"n_training_episodes": 500}, show_progress=False, seed=7)
    a = train("qlearning", "Taxi-v3", log_folder=tmp_path / "a", **kw)
    b = train("qlearning", "Taxi-v3", log_folder=tmp_path / "b", **kw)
    qa, qb = load_agent(a.run_dir).qtable, load_agent(b.run_dir).qtable
    assert np.array_equal(qa, qb) and np.abs(qa).sum() > 0


def test_epsilon_schedule_is_the_courses():
    hp = qlearning.Settings(min_epsilon=0.05, max_epsilon=1.0, decay_rate=0.005)
    assert qlearning.epsilon(hp, 0) == 1.0
    assert qlearning.epsilon(hp, 1000) == pytest.approx(0.05 + 0.95 * np.exp(-5))


def test_resume_continues_episode_counter(tmp_path):
    run = train(
        "qlearning",
        "Taxi-v3",
        overrides={"n_training_episodes": 1000, "checkpoint_every": 300},
        log_folder=tmp_path,
        show_progress=False,
    )
    # a finished run has nothing to resume: it says so and leaves the model as it was
    from deeprl.train import RunFinished

    with pytest.raises(RunFinished, match="finished already") as finished:
        train("qlearning", "Taxi-v3", log_folder=tmp_path, resume=True, show_progress=False)
    assert finished.value.run.run_dir == run.run_dir
    # a larger budget continues it from its episode counter
    resumed = train(
        "qlearning",
        "Taxi-v3",
        log_folder=tmp_path,
        resume=True,
        show_progress=False,
        overrides={"n_training_episodes": 1500},
        n_timesteps=None,
    )
    assert resumed.run_dir == run.run_dir
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["trained"]["episodes"] == 1500 and config["status"] == "finished"


def test_batched_sampling_follows_the_env_dynamics():
    # slippery FrozenLake: each action goes to one of three directions with probability 1/3
    from deeprl.envs import make_env
    from deeprl.envs.tabular import TabularBatch

    env = make_env("FrozenLake-v1", {"is_slippery": True})
    sim = TabularBatch(env)
    rng = np.random.default_rng(0)
    n = 30000
    s2, r, term = sim.step(np.full(n, 5 - 1), np.full(n, 2), rng)  # state 4, action right
    expected = {}
    for p, nxt, _, _ in env.unwrapped.P[4][2]:
        expected[nxt] = expected.get(nxt, 0) + p
    for nxt, p in expected.items():
        assert abs((s2 == nxt).mean() - p) < 0.02
    assert set(np.unique(s2)) == set(expected)
    assert (sim.reset(1000, rng) == 0).all()  # FrozenLake always starts top-left


def test_refused_run_leaves_no_folder(tmp_path):
    from deeprl.errors import UserError

    with pytest.raises(UserError, match="discrete"):
        train("qlearning", "CartPole-v1", log_folder=tmp_path, show_progress=False)
    assert not any((tmp_path / "qlearning").iterdir())
