"""deeprl.settings: RL-Zoo hyperparameters read once into an algorithm's typed Settings; deeprl.loop: the frame."""

import json
from dataclasses import dataclass

import pytest

from deeprl import settings
from deeprl.algos import dqn, qlearning
from deeprl.errors import UserError
from deeprl.settings import Linear, Rate, convert, load, merge_hyperparams, rate_at
from deeprl.train import Callback, train


@dataclass
class Example:
    """:param n: a count  :param lr: a rate  :param cap: optional  :param on: a switch  :param act: a word"""

    n: int = 10
    lr: Rate = 3e-4
    cap: int | None = None
    on: bool = False
    act: str = "tanh"


def test_rl_zoo_forms_become_typed_values():
    s = load(Example, {"n": "1e3", "lr": "lin_2.5e-4", "cap": 5.0, "on": True, "act": "relu"})
    assert s.n == 1000 and isinstance(s.n, int) and s.cap == 5 and s.on and s.act == "relu"
    assert s.lr == Linear(2.5e-4) and rate_at(s.lr, 0.5) == 2.5e-4 * 0.5
    assert load(Example, {"lr": "1e-3"}).lr == 1e-3 and rate_at(1e-3, 0.1) == 1e-3
    assert load(Example, {}) == Example()  # a run recorded before a key existed takes its default


def test_lin_with_an_end_anneals_to_its_floor():
    # ML-Agents' DecayedValue: PPO's epsilon 0.2 -> 0.1 and beta 0.01 -> 1e-5 over the run, not to 0
    s = load(Example, {"lr": "lin_0.2_0.1"})
    assert s.lr == Linear(0.2, 0.1)
    assert rate_at(s.lr, 1.0) == pytest.approx(0.2) and rate_at(s.lr, 0.0) == pytest.approx(0.1)
    assert rate_at(s.lr, 0.5) == pytest.approx(0.15)
    assert str(s.lr) == "lin_0.2_0.1" and str(Linear(0.01)) == "lin_0.01"  # written back as read
    assert load(Example, {"lr": str(Linear(0.01, 1e-5))}).lr == Linear(0.01, 1e-5)


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("n", 2.5, "whole number"),
        ("n", "many", "whole number"),
        ("lr", "lin_x", "lin_<number>"),
        ("lr", "lin_0.2_x", "lin_<start>_<end>"),
        ("on", "yes", "true or false"),
        ("act", 3, "word"),
        ("n", None, "needs a value"),
    ],
)
def test_bad_values_are_one_sentence(key, value, words):
    with pytest.raises(UserError, match=words):
        load(Example, {key: value})


def test_lin_is_a_schedule_only_where_one_is_allowed():
    # dqn.py once stripped lin_ from gamma silently; gamma is a number
    with pytest.raises(UserError, match="gamma must be a number"):
        dqn.check_hyperparams({"gamma": "lin_0.99"}, is_atari=False)
    assert dqn.check_hyperparams({"learning_rate": "lin_1e-3"}, is_atari=False).learning_rate == Linear(1e-3)
    assert convert("x", "lin_1", float | Linear) == Linear(1.0)


def test_merge_records_values_as_written_and_refuses_unknown_keys():
    hp = merge_hyperparams(
        "dqn", dqn, "CartPole-v1", "CartPole-v1", None, {"learning_rate": "lin_2.5e-4", "buffer_size": 1e4}, None
    )
    assert hp["learning_rate"] == "lin_2.5e-4" and hp["buffer_size"] == 10_000 and isinstance(hp["buffer_size"], int)
    with pytest.raises(UserError, match="Did you mean learning_rate"):
        merge_hyperparams("qlearning", qlearning, "Taxi-v3", "Taxi-v3", None, {"learning_rat": 0.5}, None)
    with pytest.raises(UserError, match="whole number"):
        merge_hyperparams("qlearning", qlearning, "Taxi-v3", "Taxi-v3", None, {"n_envs": 2.5}, None)


def test_defaults_come_from_the_dataclass():
    assert qlearning.DEFAULTS == settings.defaults(qlearning.Settings)
    assert qlearning.DEFAULTS["learning_rate"] == 0.7 and dqn.DEFAULTS["torch_threads"] == "auto"


class StopWhenAsked(Callback):
    def __init__(self, after):
        self.after, self.updates = after, 0

    def on_update(self, run, count, snapshot):
        self.updates += 1
        return False

    def should_stop(self, run):
        return self.updates >= self.after


class Evaluations(Callback):
    def __init__(self):
        self.seen = []

    def on_evaluation(self, run, count, result):
        self.seen.append((count, result["result"]))
        return True  # the first evaluation ends the run


def test_should_stop_ends_the_run_with_its_model_saved(tmp_path):
    stop = StopWhenAsked(3)
    run = train(
        "qlearning",
        "FrozenLake-v1",
        env_kwargs={"is_slippery": False},
        overrides={"n_training_episodes": 100_000},
        log_folder=tmp_path,
        show_progress=False,
        callbacks=[stop],
    )
    config = json.loads((run.run_dir / "config.json").read_text())
    assert run.stopped_by_callback and stop.updates == 3
    assert config["status"] == "stopped" and config["trained"]["episodes"] < 100_000
    assert (run.run_dir / "checkpoint.safetensors").is_file()


def test_dqn_evaluations_reach_callbacks(tmp_path):
    ev = Evaluations()
    run = train(
        "dqn",
        "CartPole-v1",
        overrides={"learning_starts": 50, "buffer_size": 500, "eval_freq": 200, "n_eval_episodes": 2},
        n_timesteps=2000,
        log_folder=tmp_path,
        show_progress=False,
        callbacks=[ev],
    )
    assert [c for c, _ in ev.seen] == [200] and run.stopped_by_callback
    assert json.loads((run.run_dir / "config.json").read_text())["trained"]["timesteps"] == 200
