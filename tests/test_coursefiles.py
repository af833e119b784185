import pickle

import numpy as np
import pytest

from deeprl.coursefiles import load_course_pickle
from deeprl.errors import UserError
from deeprl.evaluation import evaluate


def course_model(qtable, env_id="FrozenLake-v1"):
    # exactly the dict the Unit 2 notebook pickles before pushing
    return {
        "env_id": env_id,
        "max_steps": 99,
        "n_training_episodes": 10000,
        "n_eval_episodes": 100,
        "eval_seed": [],
        "learning_rate": 0.7,
        "gamma": 0.95,
        "max_epsilon": 1.0,
        "min_epsilon": 0.05,
        "decay_rate": 0.0005,
        "qtable": qtable,
        "map_name": "4x4",
        "slippery": False,
    }


def test_reads_a_real_course_pickle(tmp_path):
    q = np.zeros((16, 4))
    for s, a in {0: 2, 1: 2, 2: 1, 6: 1, 10: 1, 14: 2}.items():
        q[s, a] = 1.0
    for protocol in (2, 4, 5):
        path = tmp_path / f"q-learning-{protocol}.pkl"
        path.write_bytes(pickle.dumps(course_model(q), protocol=protocol))
        agent = load_course_pickle(path)
        assert agent.env_kwargs == {"map_name": "4x4", "is_slippery": False}
        assert evaluate(agent)["mean_reward"] == 1.0


class CreatesFile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_refuses_pickle_that_would_run_code(tmp_path):
    victim = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pkl"
    model = course_model(np.zeros((16, 4)))
    model["extra"] = CreatesFile(str(victim))
    path.write_bytes(pickle.dumps(model))
    with pytest.raises(UserError, match="refused"):
        load_course_pickle(path)
    assert not victim.exists()


def test_refuses_os_system(tmp_path):
    victim = tmp_path / "ran.txt"

    class Shell:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {victim}",))

    path = tmp_path / "evil2.pkl"
    path.write_bytes(pickle.dumps(Shell()))
    with pytest.raises(UserError):
        load_course_pickle(path)
    assert not victim.exists()


def test_wrong_shape_and_garbage(tmp_path):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(course_model(np.zeros((500, 6)))))
    with pytest.raises(UserError, match="shape"):
        load_course_pickle(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError):
        load_course_pickle(path)
