"""REINFORCE: the course's return computation, learning on CartPole, save/load, and exact resume."""

import json
import shutil

import numpy as np
import pytest
import torch

from deeprl.agent import load_agent
from deeprl.algos import reinforce
from deeprl.errors import UserError
from deeprl.evaluation import evaluate
from deeprl.modelio import load_model
from deeprl.train import train


def test_discounted_returns_and_standardization_match_the_course():
    rewards = np.array([1.0, 0.0, 2.0, 1.0])
    gamma = 0.9
    # the notebook's loop: returns.appendleft(gamma * disc_return_t + rewards[t]) from the back
    expected, g = [], 0.0
    for r in rewards[::-1]:
        g = gamma * g + r
        expected.insert(0, g)
    np.testing.assert_allclose(reinforce.discounted_returns(rewards, gamma), expected)
    t = torch.tensor(expected)
    course = (t - t.mean()) / (t.std() + np.finfo(np.float32).eps.item())
    np.testing.assert_allclose(reinforce.standardize(np.array(expected)), course.numpy(), rtol=1e-6)
    assert reinforce.standardize(np.array([5.0])).tolist() == [0.0]  # the course would divide 0 by NaN here


@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_numpy_actor_matches_the_torch_policy(activation):
    torch.manual_seed(0)
    net = reinforce.build_policy(7, 2, [64, 128], activation)
    actor = reinforce.numpy_policy(net, activation)
    x = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32) * 10
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.stack([actor(row) for row in x]), ref, rtol=1e-4, atol=1e-5)
    if activation != "relu":
        return
    # inverse-CDF sampling: action 0 exactly when u < p0
    p0 = torch.softmax(torch.from_numpy(ref[0]), 0)[0].item()
    logits = actor(x[0])
    assert reinforce.sample_action(logits, p0 * 0.999) == 0
    assert reinforce.sample_action(logits, min(p0 * 1.001, 0.999999)) == 1
    net3 = reinforce.build_policy(4, 3, [8], "tanh")
    actor3 = reinforce.numpy_policy(net3, "tanh")
    draws = [reinforce.sample_action(actor3(np.ones(4, np.float32)), u) for u in np.linspace(0, 0.999, 200)]
    with torch.no_grad():
        probs = torch.softmax(net3(torch.ones(1, 4)), 1)[0].numpy()
    assert np.allclose(np.bincount(draws, minlength=3) / 200, probs, atol=0.02)
    # the actor reads views of the weights: an optimizer step shows up without a refresh
    with torch.no_grad():
        net3[0].bias.add_(1.0)
        ref3 = net3(torch.ones(1, 4))[0].numpy()
    np.testing.assert_allclose(actor3(np.ones(4, np.float32)), ref3, rtol=1e-5, atol=1e-6)


def _train(tmp_path, episodes, seed=0, **over):
    return train(
        "reinforce",
        "CartPole-v1",
        seed=seed,
        log_folder=tmp_path,
        show_progress=False,
        overrides={"n_training_episodes": episodes, **over},
    )


def test_short_cartpole_run_improves_its_return(tmp_path):
    untrained = _train(tmp_path / "a", 1)
    before = evaluate(load_agent(untrained.run_dir))["mean_reward"]
    trained = _train(tmp_path / "b", 60)
    after = evaluate(load_agent(trained.run_dir))["mean_reward"]
    assert after > max(2 * before, 60), (before, after)
    config = json.loads((trained.run_dir / "config.json").read_text())
    assert config["trained"]["episodes"] == 60 and config["policy"]["hidden_sizes"] == [16]
    assert config["hyperparams"]["learning_rate"] == 1e-2 and config["hyperparams"]["gamma"] == 1.0


def test_same_seed_same_weights(tmp_path):
    a = _train(tmp_path / "a", 20, seed=3)
    b = _train(tmp_path / "b", 20, seed=3)
    ta, tb = load_model(a.run_dir)[1], load_model(b.run_dir)[1]
    assert all(np.array_equal(ta[k], tb[k]) for k in ta)


def test_save_load_round_trip_evaluates_identically(tmp_path):
    run = _train(tmp_path, 60)
    agent = load_agent(run.run_dir)
    copy = tmp_path / "copied-model"
    shutil.copytree(run.run_dir, copy)
    again = load_agent(copy)
    r1, r2 = evaluate(agent, seed=5), evaluate(again, seed=5)
    assert r1["episode_rewards"] == r2["episode_rewards"]
    # act() is the argmax of the saved network's logits
    config, tensors = load_model(copy)
    net = reinforce.build_policy(4, 2, [16], "relu")
    net.load_state_dict({k.removeprefix("policy."): torch.from_numpy(v) for k, v in tensors.items()})
    obs = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(obs)).argmax(1).tolist()
    assert [again.act(o) for o in obs] == expected
    assert agent.act(obs[0], deterministic=False) in (0, 1)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    over = {"checkpoint_every": 10, "baseline": True, "episodes_per_update": 2}
    straight = _train(tmp_path / "straight", 40, seed=1, **over)

    real_seed = reinforce.episode_seed

    def interrupt_at_25(seed, episode):
        if episode == 25:
            raise KeyboardInterrupt
        return real_seed(seed, episode)

    monkeypatch.setattr(reinforce, "episode_seed", interrupt_at_25)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "resumed", 40, seed=1, **over)
    monkeypatch.setattr(reinforce, "episode_seed", real_seed)
    resumed = train("reinforce", "CartPole-v1", log_folder=tmp_path / "resumed", resume=True, show_progress=False)
    assert resumed.run_dir == straight.run_dir.parent.parent.parent / "resumed" / "reinforce" / "CartPole-v1_1"
    c1 = json.loads((straight.run_dir / "config.json").read_text())["trained"]
    c2 = json.loads((resumed.run_dir / "config.json").read_text())["trained"]
    assert (c1["episodes"], c1["timesteps"]) == (c2["episodes"], c2["timesteps"])
    t1, t2 = load_model(straight.run_dir)[1], load_model(resumed.run_dir)[1]
    assert all(np.array_equal(t1[k], t2[k]) for k in t1)


def test_bad_hyperparameters_and_models_are_user_errors(tmp_path):
    with pytest.raises(UserError):
        _train(tmp_path, 2, hidden_sizes=[16, -1])
    with pytest.raises(UserError):
        _train(tmp_path, 2, activation="gelu")
    with pytest.raises(UserError):
        _train(tmp_path, 2, learnin_rate=0.1)
    run = _train(tmp_path / "ok", 2)
    config, tensors = load_model(run.run_dir)
    tensors["policy.0.weight"] = np.zeros((16, 5), dtype=np.float32)
    with pytest.raises(UserError, match="shape"):
        reinforce.load_agent(config, tensors)
    with pytest.raises(UserError):
        reinforce.load_agent({**config, "policy": {}}, tensors)


def test_pixelcopter_defaults_are_the_course_notebooks(tmp_path):
    run = train(
        "reinforce",
        "Pixelcopter-PLE-v0",
        seed=0,
        log_folder=tmp_path,
        show_progress=False,
        overrides={"n_training_episodes": 3},
    )
    hp = run.hyperparams
    assert (hp["hidden_sizes"], hp["max_t"], hp["gamma"], hp["learning_rate"]) == ([64, 128], 10000, 0.99, 1e-4)
    config, tensors = load_model(run.run_dir)
    assert tensors["policy.0.weight"].shape == (64, 7) and tensors["policy.2.weight"].shape == (128, 64)
    assert tensors["policy.4.weight"].shape == (2, 128)
    assert evaluate(load_agent(run.run_dir), n_eval_episodes=2)["n_eval_episodes"] == 2


def test_run_killed_after_a_checkpoint_resumes_from_it(tmp_path, monkeypatch):
    """kill -9 writes nothing: the periodic checkpoint (episode 20 here) is where --resume starts, and the run
    still ends with the uninterrupted run's weights and counters."""
    straight = _train(tmp_path / "straight", 30, seed=2, checkpoint_every=10)
    real_seed = reinforce.episode_seed

    def die_at_25(seed, episode):
        if episode == 25:
            raise SystemExit("killed")  # not KeyboardInterrupt: no checkpoint on the way out
        return real_seed(seed, episode)

    monkeypatch.setattr(reinforce, "episode_seed", die_at_25)
    with pytest.raises(SystemExit):
        _train(tmp_path / "killed", 30, seed=2, checkpoint_every=10)
    from deeprl.checkpoint import load_checkpoint

    _, state = load_checkpoint(tmp_path / "killed" / "reinforce" / "CartPole-v1_1")
    assert state["episodes"] == 20
    monkeypatch.setattr(reinforce, "episode_seed", real_seed)
    resumed = train("reinforce", "CartPole-v1", log_folder=tmp_path / "killed", resume=True, show_progress=False)
    t1, t2 = load_model(straight.run_dir)[1], load_model(resumed.run_dir)[1]
    assert all(np.array_equal(t1[k], t2[k]) for k in t1)
    c2 = json.loads((resumed.run_dir / "config.json").read_text())["trained"]
    assert c2["episodes"] == 30
