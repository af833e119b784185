"""The notebook API (deeprl/api.py, issue 20 item 3): deeprl.train / evaluate / push / load and SB3's predict.

One tiny PPO run on CartPole (trained once for the module) goes the whole way round: train -> evaluate -> push ->
load -> predict, with the same figures at each step. The name clash between the module deeprl.train and the
function deeprl.train is checked in fresh interpreters, where import order cannot hide it.
"""

from __future__ import annotations

import json
import pydoc
import subprocess
import sys

import numpy as np
import pytest

import deeprl
import deeprl.api as api
from deeprl.errors import UserError


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (sys.argv[1:] = args), where no earlier import can hide an import-order bug."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    """A PPO CartPole run of one rollout (4 envs x 128 steps): the round trip needs a model, not a good one."""
    logs = tmp_path_factory.mktemp("logs")
    return deeprl.train("ppo", "CartPole-v1", n_timesteps=256, seed=3, log_folder=logs, progress=False)


def test_import_deeprl_stays_light_and_loads_the_api_on_first_use():
    proc = run_python(
        "import sys, deeprl\n"
        "heavy = [m for m in ('torch', 'gymnasium', 'deeprl.api', 'deeprl.train') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "evaluate = deeprl.evaluate\n"
        "assert 'deeprl.api' in sys.modules and evaluate is sys.modules['deeprl.api'].evaluate\n"
        "assert deeprl.load.__module__ == deeprl.push.__module__ == 'deeprl.api'\n"
        "try:\n    deeprl.no_such_name\nexcept AttributeError as exc:\n    print(exc)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "module 'deeprl' has no attribute 'no_such_name'" in proc.stdout


TRAIN_CHECKS = """
import inspect, sys
import deeprl
import deeprl.train as module
from deeprl import train as same
assert module is same is deeprl.train is sys.modules["deeprl.train"]
assert callable(deeprl.train) and module.train is not module and module.Run.__module__ == "deeprl.train"
assert list(inspect.signature(deeprl.train).parameters)[:3] == ["algo", "env_id", "n_timesteps"]
run = deeprl.train("qlearning", "FrozenLake-v1", n_timesteps=50, progress=False, log_folder=sys.argv[1])
assert type(run).__name__ == "Run" and run.algo == "qlearning", run
print("ok")
"""


@pytest.mark.parametrize(
    "first",
    [
        "import deeprl; t = deeprl.train",
        "import deeprl.api",
        "from deeprl import train as t",
        "import deeprl.train as t",
        "from deeprl.train import train",
        "from deeprl.agent import load_agent",  # the model card's snippet, then the API
        "import deeprl.algos.ppo",  # an algorithm imports the module deeprl.train
    ],
)
def test_deeprl_train_is_the_function_for_users_and_the_module_for_the_code_base(first, tmp_path):
    """Whichever import reaches deeprl.train first, `deeprl.train(...)` trains, and the code base's imports get the
    module (`from deeprl import train as trainmod`, `import deeprl.train as dtrain; dtrain.train(...)`)."""
    proc = run_python(f"{first}\n{TRAIN_CHECKS}", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")


def test_monkeypatching_the_train_module_by_name_still_reaches_the_module(monkeypatch):
    monkeypatch.setattr("deeprl.train.check_seed", lambda seed: 7)
    assert sys.modules["deeprl.train"].check_seed(0) == 7


def test_help_shows_the_api_docs():
    for function, words in (
        (deeprl.train, "n_timesteps: the budget in env steps"),
        (deeprl.evaluate, "n_eval_episodes: None keeps the protocol's count"),
        (deeprl.push, "repo_id: NAMESPACE/NAME"),
        (deeprl.load, "a hub repo id"),
        (api.Model.predict, "as SB3's `model.predict`"),
    ):
        assert words in pydoc.render_doc(function), function
    assert "A training run: hyperparameters -> algorithm" in pydoc.render_doc(deeprl.train)  # the module's own doc


def test_round_trip_train_evaluate_push_load_predict(cartpole, _isolated_home):
    run = cartpole
    assert (run.algo, run.env_id, run.env_tag, run.seed) == ("ppo", "CartPole-v1", "CartPole-v1", 3)
    assert (run.run_dir / "model.safetensors").is_file() and run.hyperparams["n_timesteps"] == 256

    results = deeprl.evaluate(run)
    assert results.n_eval_episodes == 10 and len(results.episode_rewards) == 10
    assert results.mean_reward == pytest.approx(np.mean(results.episode_rewards))
    assert results.std_reward == pytest.approx(np.std(results.episode_rewards))
    assert results.result == pytest.approx(results.mean_reward - results.std_reward)
    mean, std = results  # as SB3's evaluate_policy
    assert (mean, std) == (results.mean_reward, results.std_reward)
    assert str(results).startswith(f"CartPole-v1: mean_reward={mean:.2f} +/- {std:.2f}  result=")
    assert run.evaluate().episode_rewards == results.episode_rewards  # seeded: the same figures every time

    pushed = deeprl.push(run, repo_id="alice/ppo-CartPole-v1", record_video=False)
    repo = _isolated_home / "hub" / "alice" / "ppo-CartPole-v1"
    stored = json.loads((repo / "results.json").read_text())
    assert pushed["results"]["mean_reward"] == stored["mean_reward"] == results.mean_reward
    assert pushed["hub"] == "local" and len(pushed["revision"]) == 40

    model = deeprl.load("alice/ppo-CartPole-v1")
    assert (model.algo, model.env_id) == ("ppo", "CartPole-v1")
    assert deeprl.evaluate(model).episode_rewards == results.episode_rewards
    assert deeprl.evaluate("alice/ppo-CartPole-v1", n_eval_episodes=3).episode_rewards == results.episode_rewards[:3]

    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    actions, state = model.predict(obs, deterministic=True)
    assert state is None and actions.shape == (5,)
    assert actions.tolist() == [model.agent.act(o) for o in obs] == [run.agent().predict(o)[0] for o in obs]
    action, state = model.predict(obs[0])
    assert state is None and np.shape(action) == () and int(action) == actions[0]
    assert model.predict(obs.tolist())[0].tolist() == actions.tolist()  # lists are observations too


def test_a_run_and_a_model_are_accepted_wherever_a_folder_is(cartpole, _isolated_home):
    model = deeprl.load(cartpole)
    assert model.source == str(cartpole.run_dir)
    again = deeprl.push(model, repo_id="alice/from-a-model", record_video=False)
    assert again["results"]["mean_reward"] == deeprl.evaluate(cartpole.run_dir).mean_reward
    assert deeprl.load(str(cartpole.run_dir)).config == model.config


def test_predict_gives_sb3s_own_actions_for_an_sb3_model(tmp_path):
    """The same model, read from SB3's .zip (nothing unpickled), predicts what SB3's predict does."""
    sb3 = pytest.importorskip("stable_baselines3")
    trained = sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1, seed=0).learn(64)
    trained.save(tmp_path / "ppo-CartPole-v1.zip")
    model = deeprl.load(tmp_path / "ppo-CartPole-v1.zip")
    obs = np.random.default_rng(2).normal(size=(64, 4)).astype(np.float32)
    ours, state = model.predict(obs, deterministic=True)
    theirs, _ = trained.predict(obs, deterministic=True)
    assert state is None and ours.shape == theirs.shape and ours.tolist() == theirs.tolist()
    assert int(model.predict(obs[5])[0]) == int(trained.predict(obs[5], deterministic=True)[0])


def test_predict_on_a_q_table_takes_one_state_or_a_batch(tmp_path):
    run = deeprl.train("qlearning", "Taxi-v3", n_timesteps=2_000, log_folder=tmp_path, progress=False)
    model = run.agent()
    action, state = model.predict(328)
    assert state is None and int(action) == int(np.argmax(model.agent.qtable[328]))
    actions, _ = model.predict(np.array([328, 0, 499]))
    assert actions.tolist() == [int(np.argmax(model.agent.qtable[s])) for s in (328, 0, 499)]
    with pytest.raises(UserError, match="fits neither Taxi-v3's observations"):
        model.predict(np.zeros((2, 2), dtype=int))


def test_evaluate_on_other_env_options_and_resume_a_run(tmp_path):
    kwargs = {"map_name": "4x4", "is_slippery": False}
    run = deeprl.train("qlearning", "FrozenLake-v1", n_timesteps=200, env_kwargs=kwargs, log_folder=tmp_path)
    assert run.env_tag == "FrozenLake-v1-4x4-no_slippery"
    assert deeprl.evaluate(run).figures["env_tag"] == "FrozenLake-v1-4x4-no_slippery"
    slippery = deeprl.evaluate(run, env_kwargs={**kwargs, "is_slippery": True}, n_eval_episodes=5)
    assert slippery.figures["env_tag"] == "FrozenLake-v1-4x4" and slippery.n_eval_episodes == 5
    more = deeprl.train(
        "qlearning", "FrozenLake-v1", n_timesteps=400, env_kwargs=kwargs, log_folder=tmp_path, resume=True
    )
    assert more.run_dir == run.run_dir and more.hyperparams["n_timesteps"] == 400


def test_predict_carries_the_recurrent_state_as_the_agent_does():
    """APPO's GRU: predict's state is the agent's hidden state; an episode start zeroes its row."""
    import torch

    from deeprl.policies.recurrent import RecurrentActorCritic, RecurrentAgent

    torch.manual_seed(0)
    net = RecurrentActorCritic((4,), 2, mlp_layers=[16], rnn_size=8, normalize_input=False, normalize_returns=False)
    with torch.no_grad():
        net.policy_head.weight.mul_(50.0)  # actions that depend on the state, so the test can see it carried
    agent = RecurrentAgent(net, {"algo": "appo", "env_id": "CartPole-v1", "env_kwargs": {}})
    model = api.Model(agent)
    steps = np.random.default_rng(1).normal(size=(12, 4)).astype(np.float32)

    expected = [agent.act(o) for o in steps]  # the agent's own loop, state carried inside it
    state, got = None, []
    for o in steps:
        action, state = model.predict(o, state=state)
        got.append(int(action))
    assert got == expected and state.shape == (1, 8)

    batch = np.stack([steps[0], steps[0], steps[0]])
    actions, h = model.predict(batch, state=np.stack([state[0]] * 3), episode_start=[True, False, True])
    fresh, _ = model.predict(steps[0])
    carried, h1 = model.predict(steps[0], state=state)
    assert actions.tolist() == [int(fresh), int(carried), int(fresh)]
    assert np.allclose(h[1], h1[0]) and np.allclose(h[0], h[2]) and not np.allclose(h[0], h[1])
    with pytest.raises(UserError, match="recurrent state must hold 3 row"):
        model.predict(batch, state=state)


def test_a_batch_of_dict_observations_is_told_from_one():
    gym = pytest.importorskip("gymnasium")
    space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (3,)), "b": gym.spaces.Discrete(4)})
    assert api._is_batch(space, {"a": np.zeros(3), "b": 2}, "E") is False
    assert api._is_batch(space, {"a": np.zeros((5, 3)), "b": np.arange(5)}, "E") is True
    rows = api._rows({"a": np.arange(6).reshape(2, 3), "b": np.array([1, 2])})
    assert [r["b"] for r in rows] == [1, 2] and rows[1]["a"].tolist() == [3, 4, 5]
    with pytest.raises(UserError, match="keys"):
        api._is_batch(space, {"a": np.zeros(3)}, "E")
    with pytest.raises(UserError, match="batched and some are not"):
        api._is_batch(space, {"a": np.zeros((5, 3)), "b": 2}, "E")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: deeprl.train("ppo", "CartPole-v1", n_timesteps=0), "n_timesteps must be a whole number"),
        (lambda: deeprl.train("ppo", "CartPole-v1", seed=-1), "--seed must be a whole number"),
        (lambda: deeprl.train("nope", "CartPole-v1"), "nope"),
        (lambda: deeprl.train("ppo", "CartPole-v1", n_timesteps=10, learning_rat=1e-3), "Did you mean learning_rate"),
        (lambda: deeprl.evaluate(42), "deeprl.evaluate takes a run, a model, a repo id or a folder, not a int"),
        (lambda: deeprl.evaluate("alice/nothing-here"), "alice/nothing-here"),
        (lambda: deeprl.evaluate("alice/x", n_eval_episodes=0), "n_eval_episodes must be a whole number"),
        (lambda: deeprl.load(3.5), "deeprl.load takes a repo id, a folder or a run, not a float"),
        (lambda: deeprl.push(None, repo_id="alice/x"), "deeprl.push takes a run, a model or a folder"),
    ],
)
def test_mistakes_are_one_sentence(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a refused train leaves no logs/ behind in the working folder
    with pytest.raises(UserError, match=message) as info:
        call()
    text = str(info.value)
    assert text.endswith((".", "?")) and "\n" not in text
