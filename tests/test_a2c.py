"""A2C: learns CartPole, carries its normalization statistics through checkpoint, model, push and load."""

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from deeprl import train as trainmod
from deeprl.agent import load_agent
from deeprl.algos import a2c
from deeprl.checkpoint import load_checkpoint
from deeprl.errors import UserError
from deeprl.evaluation import evaluate
from deeprl.loop import Callback
from deeprl.modelio import save_model


def _train(tmp_path, env_id, n, **overrides):
    return trainmod.train(
        "a2c",
        env_id,
        overrides=overrides,
        seed=0,
        log_folder=tmp_path / "logs",
        n_timesteps=n,
        show_progress=False,
        device="cpu",
    )


def test_defaults_are_sb3s():
    d = a2c.DEFAULTS
    assert (
        d["n_steps"],
        d["learning_rate"],
        d["gamma"],
        d["gae_lambda"],
        d["ent_coef"],
        d["vf_coef"],
        d["max_grad_norm"],
        d["optimizer"],
        d["rms_prop_alpha"],
        d["rms_prop_eps"],
    ) == (5, 7e-4, 0.99, 1.0, 0.0, 0.5, 0.5, "rmsprop", 0.99, 1e-5)
    opt = a2c.make_optimizer([torch.nn.Parameter(torch.zeros(2))], a2c.Settings(), 7e-4)
    assert isinstance(opt, torch.optim.RMSprop)
    assert opt.defaults["alpha"] == 0.99 and opt.defaults["eps"] == 1e-5
    assert isinstance(
        a2c.make_optimizer([torch.nn.Parameter(torch.zeros(2))], a2c.Settings(optimizer="adam"), 1e-3), torch.optim.Adam
    )


def test_panda_course_settings():
    hp = trainmod.merge_hyperparams("a2c", a2c, "PandaReachDense-v3", "PandaReachDense-v3", None, {}, None)
    assert hp["n_envs"] == 4 and hp["n_timesteps"] == 1_000_000
    assert hp["normalize"] == {"norm_obs": True, "norm_reward": True, "clip_obs": 10.0}


def test_n_step_returns_when_lambda_is_one():
    """GAE with lambda = 1 is the bootstrapped n-step return minus the value."""
    from deeprl.rollout import compute_gae

    rng = np.random.default_rng(0)
    T, N, gamma = 5, 3, 0.9
    r, v, last = (
        rng.normal(size=(T, N)).astype(np.float32),
        rng.normal(size=(T, N)).astype(np.float32),
        rng.normal(size=N).astype(np.float32),
    )
    dones = np.zeros((T, N), bool)
    dones[2, 1] = True
    adv, ret = compute_gae(r, v, dones, last, gamma, 1.0)
    for i in range(N):
        g = last[i]
        for t in reversed(range(T)):
            g = r[t, i] + gamma * g * (1 - dones[t, i])
            assert ret[t, i] == pytest.approx(g, rel=1e-5, abs=1e-5)
            assert adv[t, i] == pytest.approx(g - v[t, i], rel=1e-5, abs=1e-5)


def test_tiny_cartpole_run_improves(tmp_path):
    run = _train(tmp_path, "CartPole-v1", 16_000, n_envs=8, learning_rate=1e-3)
    from deeprl.agent import load_agent

    agent = load_agent(run.run_dir)
    trained = evaluate(agent, n_eval_episodes=5)["mean_reward"]
    untrained = _untrained_mean(tmp_path)
    assert trained > untrained + 50, (trained, untrained)


def _untrained_mean(tmp_path):
    run = _train(tmp_path / "u", "CartPole-v1", 8, n_envs=8, n_steps=1, learning_rate=1e-12)
    from deeprl.agent import load_agent

    return evaluate(load_agent(run.run_dir), n_eval_episodes=5)["mean_reward"]


def test_bad_optimizer_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        _train(tmp_path, "CartPole-v1", 100, optimizer="sgd")


def _has(env_id):
    from deeprl.envs import get_spec

    try:
        get_spec(env_id)
        return True
    except UserError:
        return False


def test_multi_input_network_takes_other_dict_shapes():
    from deeprl.policies import ActorCritic, obs_to_tensor

    space = spaces.Dict(
        {
            "a": spaces.Box(-1, 1, (2, 3), np.float32),
            "b": spaces.Box(-1, 1, (7,), np.float32),
            "c": spaces.Box(0, 255, (4, 36, 36), np.uint8),
        }
    )
    policy = ActorCritic(space, spaces.Discrete(5))
    batch = {k: np.stack([space[k].sample() for _ in range(3)]) for k in space.spaces}
    action, value, logp = policy.act(obs_to_tensor(batch))
    assert action.shape == (3,) and value.shape == (3,) and logp.shape == (3,)
    gauss = ActorCritic(spaces.Dict({"x": spaces.Box(-1, 1, (11,), np.float32)}), spaces.Box(-1, 1, (2,)))
    action, value, _ = gauss.act(obs_to_tensor({"x": np.zeros((4, 11), np.float32)}))
    assert action.shape == (4, 2) and value.shape == (4,)


panda = pytest.mark.skipif(not _has("PandaReachDense-v3"), reason="panda-gym not registered")


@panda
def test_panda_model_pushed_and_loaded_evaluates_identically(tmp_path):
    pytest.importorskip("panda_gym")
    from deeprl.agent import load_agent
    from deeprl.publish import push_model

    run = _train(tmp_path, "PandaReachDense-v3", 400)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["policy"]["normalize"]["norm_obs"] and config["policy"]["normalize"]["clip_obs"] == 10.0
    local = load_agent(run.run_dir)
    assert local.normalizer is not None and not local.normalizer.training
    # the saved statistics are the training ones, per Dict key
    ckpt, _ = load_checkpoint(run.run_dir)
    for key in ("observation", "achieved_goal", "desired_goal"):
        np.testing.assert_array_equal(local.normalizer.obs_rms[key].mean, ckpt[f"normalize.obs.{key}.mean"])
        assert local.normalizer.obs_rms[key].count > 400
    push_model(run.run_dir, "user/a2c-panda", record_video=False, n_eval_episodes=2)
    hubbed = load_agent("user/a2c-panda")
    a = evaluate(local, n_eval_episodes=2, seed=7)
    b = evaluate(hubbed, n_eval_episodes=2, seed=7)
    assert abs(a["mean_reward"] - b["mean_reward"]) < 1e-6 and abs(a["result"] - b["result"]) < 1e-6
    for key in ("observation", "achieved_goal", "desired_goal"):
        np.testing.assert_array_equal(hubbed.normalizer.obs_rms[key].var, local.normalizer.obs_rms[key].var)
    # evaluation leaves the statistics frozen
    c = evaluate(hubbed, n_eval_episodes=2, seed=7)
    assert c["mean_reward"] == b["mean_reward"]


class FirstUpdate(Callback):
    """Keeps the observation statistics of the model as it is after the run's first update."""

    def __init__(self, folder):
        self.folder, self.normalizer = folder, None

    def on_update(self, run, count, snapshot):
        if self.normalizer is None:
            tensors, policy_config = snapshot()
            save_model(self.folder, tensors, {**run.base_config(), "policy": policy_config})
            self.normalizer = load_agent(self.folder).normalizer
        return False


def test_resume_restores_the_statistics(tmp_path):
    """Stopped at 1,000 steps and resumed to 2,000 gives the same statistics as 2,000 steps in one go would
    have started from: the resumed run starts from the checkpoint's, not from fresh ones."""
    run = _train(tmp_path, "CartPole-v1", 1000, n_envs=4, normalize=True, checkpoint_every=10**9)
    first, _ = load_checkpoint(run.run_dir)
    first_update = FirstUpdate(tmp_path / "first-update")
    resumed = trainmod.train(
        "a2c",
        "CartPole-v1",
        seed=0,
        log_folder=tmp_path / "logs",
        n_timesteps=2000,
        resume=True,
        show_progress=False,
        device="cpu",
        callbacks=[first_update],
    )
    assert resumed.run_dir == run.run_dir
    norm = first_update.normalizer
    # one update after resuming (4 reset observations, then 5 steps of 4 envs): the counts go on from the checkpoint's
    assert norm.obs_rms[""].count == pytest.approx(float(first["normalize.obs.count"]) + 4 + 20)
    assert norm.ret_rms.count == pytest.approx(float(first["normalize.ret.count"]) + 20)
    second, state = load_checkpoint(run.run_dir)
    assert state["timesteps"] == 2000
    assert float(second["normalize.obs.count"]) == pytest.approx(float(first["normalize.obs.count"]) + 4 + 1000)
