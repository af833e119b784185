"""Reward signals for PPO (issue 17 item 3): per-signal GAE against a hand computation, RND's predictor learns the
states it is shown, a PPO run with RND trains, saves and resumes."""

import numpy as np
import pytest
import torch

from deeprl.errors import UserError
from deeprl.rewards import RND, parse_reward_signals, signal_advantages


def test_per_signal_gae_by_hand():
    # one env, 3 steps, an episode end after step 1 (index 0); lambda 0.5
    dones = np.array([[True], [False], [False]])
    ext = {
        "rewards": np.array([[1.0], [0.0], [2.0]], np.float32),
        "values": np.array([[0.5], [1.0], [0.0]], np.float32),
        "last_values": np.array([4.0], np.float32),
        "gamma": 0.9,
        "episodic": True,
    }
    intr = {
        "rewards": np.array([[0.1], [0.2], [0.3]], np.float32),
        "values": np.array([[1.0], [2.0], [3.0]], np.float32),
        "last_values": np.array([5.0], np.float32),
        "gamma": 0.5,
        "episodic": False,
    }
    lam = 0.5
    # extrinsic: stops at the episode end
    d2 = 2.0 + 0.9 * 4.0 - 0.0  # 5.6
    d1 = 0.0 + 0.9 * 0.0 - 1.0  # -1.0
    d0 = 1.0 + 0 - 0.5  # 0.5 (done: no bootstrap)
    a_e = [d0, d1 + 0.9 * lam * d2, d2]  # [0.5, 1.52, 5.6]
    # intrinsic: ignores the episode end (bootstraps through it)
    e2 = 0.3 + 0.5 * 5.0 - 3.0  # -0.2
    e1 = 0.2 + 0.5 * 3.0 - 2.0  # -0.3
    e0 = 0.1 + 0.5 * 2.0 - 1.0  # 0.1
    a2 = e2
    a1 = e1 + 0.5 * lam * a2
    a0 = e0 + 0.5 * lam * a1
    a_i = [a0, a1, a2]
    adv, returns = signal_advantages([ext, intr], dones, lam)
    np.testing.assert_allclose(adv[:, 0], (np.array(a_e) + np.array(a_i)) / 2, rtol=1e-6)  # the mean
    np.testing.assert_allclose(returns[0][:, 0], np.array(a_e) + ext["values"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(returns[1][:, 0], np.array(a_i) + intr["values"][:, 0], rtol=1e-6)
    paper, _ = signal_advantages([ext, intr], dones, lam, [2.0, 1.0])
    np.testing.assert_allclose(paper[:, 0], 2 * np.array(a_e) + np.array(a_i), rtol=1e-6)


@pytest.mark.parametrize("paper", [False, True])
def test_rnd_error_falls_on_seen_states(paper):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    rnd = RND(8, [64, 64, 64], 1e-3, paper=paper)
    seen = rng.normal(size=(256, 8)).astype(np.float32)
    unseen = rng.normal(3.0, 1.0, size=(256, 8)).astype(np.float32)
    rnd.rewards(seen[None], 0.99)  # (the paper's variant takes the observation statistics from here)
    before_seen = rnd.error(seen).mean()
    for _ in range(30):
        rnd.update(seen, 1, 64, rng)
    after_seen, after_unseen = rnd.error(seen).mean(), rnd.error(unseen).mean()
    assert after_seen < 0.2 * before_seen
    assert after_unseen > 3 * after_seen  # novelty still pays


def test_settings_are_checked():
    assert parse_reward_signals({"rnd": {}})["rnd"] == {
        "strength": 0.01,
        "gamma": 0.99,
        "learning_rate": 1e-4,
        "net_arch": [64, 64, 64],
        "variant": "mlagents",
    }
    for bad in ({"gail": {}}, {"rnd": {"hidden": 3}}, {"rnd": {"variant": "x"}}, {"extrinsic": {"gamma": 0.9}}):
        with pytest.raises(UserError):
            parse_reward_signals(bad)


def test_ppo_with_rnd_trains_saves_and_resumes(tmp_path):
    from deeprl.agent import load_agent
    from deeprl.modelio import check_weights, read_config, read_header
    from deeprl.train import train

    hp = {
        "n_envs": 2,
        "n_steps": 32,
        "batch_size": 32,
        "n_epochs": 1,
        "reward_signals": {"rnd": {"strength": 0.01}},
        "checkpoint_every": 1,
    }
    run = train("ppo", "CartPole-v1", log_folder=tmp_path, show_progress=False, n_timesteps=128, overrides=hp)
    config = read_config(run.run_dir)
    check_weights(config, read_header(run.run_dir / "model.safetensors"))  # the leaderboard's check passes
    assert load_agent(run.run_dir).act(np.zeros(4, np.float32)) in (0, 1)
    again = train(
        "ppo", "CartPole-v1", log_folder=tmp_path, show_progress=False, n_timesteps=256, overrides=hp, resume=True
    )
    assert again.run_dir == run.run_dir


def test_curiosity_reward_is_zero_until_trained_then_falls_on_seen_transitions():
    from gymnasium import spaces

    from deeprl.rewards import Curiosity

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    icm = Curiosity(6, spaces.MultiDiscrete([3, 2]), [32, 32], 3e-3, strength=0.02)
    obs = rng.normal(size=(256, 6)).astype(np.float32)
    actions = rng.integers([3, 2], size=(256, 2))
    next_obs = obs + 0.1 * actions[:, :1]  # the action moves the state: the inverse model has something to learn
    valid = np.ones(256, bool)
    assert not icm.rewards(obs, next_obs, actions, valid).any()  # zero until the first update
    icm.update(obs, next_obs, actions, valid, 1, 64, rng)
    first = icm.rewards(obs, next_obs, actions, valid).mean()
    for _ in range(30):
        icm.update(obs, next_obs, actions, valid, 1, 64, rng)
    r = icm.rewards(obs, next_obs, actions, valid)
    assert r.mean() < first and (r <= 1 / 0.02).all()
    valid[:10] = False
    assert not icm.rewards(obs, next_obs, actions, valid)[:10].any()  # episode ends carry no transition


def test_ppo_with_curiosity_on_branch_actions(tmp_path):
    from deeprl.train import train

    hp = {
        "n_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 1,
        "reward_signals": {"rnd": {}, "curiosity": {"encoding_size": 32}},
        "checkpoint_every": 1,
    }
    run = train("ppo", "SnowballTarget", log_folder=tmp_path, show_progress=False, n_timesteps=256, overrides=hp)
    train("ppo", "SnowballTarget", log_folder=tmp_path, show_progress=False, n_timesteps=512, overrides=hp, resume=True)
    assert (run.run_dir / "model.safetensors").is_file()


def _signals(seed: int):
    from gymnasium import spaces

    from deeprl.policies import build_policy
    from deeprl.rewards import RewardSignals

    torch.manual_seed(seed)
    obs_space, act_space = spaces.Box(-1, 1, (6,), np.float32), spaces.Discrete(3)
    policy = build_policy(obs_space, act_space, {"net_arch": [16]}, device="cpu", fast=False)
    cfg = parse_reward_signals({"rnd": {"learning_rate": 1e-2, "variant": "paper"}, "curiosity": {}})
    return RewardSignals(cfg, policy, 6, act_space)


def test_signal_optimizers_survive_a_checkpoint_round_trip():
    """The RND predictor, its Adam moments and step count (and curiosity's) come back from a checkpoint's
    tensors and JSON, so a resumed run's next update is the one an unbroken run would make."""
    import json

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(32, 6)).astype(np.float32)
    a = _signals(0)
    rnd = a.providers["rnd"]
    rnd.rewards(obs[:, None], 0.99)  # observation statistics and the forward filter
    for name, provider in a.providers.items():
        if name == "rnd":
            provider.update(obs, 2, 8, rng)
        else:
            provider.update(obs, obs[::-1].copy(), rng.integers(3, size=(32, 1)), np.ones(32, bool), 2, 8, rng)
    tensors, state = a.optimizer_state()
    tensors = {**a.tensors(), **tensors}
    state = json.loads(json.dumps(state))  # as the checkpoint's JSON holds it
    assert float(tensors["signals.rnd_optim.0.step"]) == 8  # 2 epochs of 4 minibatches
    b = _signals(1)  # other initial weights: everything must come from the checkpoint
    b.load({k: v.numpy() for k, v in tensors.items()})
    b.load_optimizer_state({k: v.numpy() for k, v in tensors.items()}, state)
    for name in ("rnd", "curiosity"):
        sa, sb = a.providers[name].optimizer.state_dict(), b.providers[name].optimizer.state_dict()
        assert sa["state"].keys() == sb["state"].keys() and sa["state"]
        for pid in sa["state"]:
            for key in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(torch.as_tensor(sa["state"][pid][key]), torch.as_tensor(sb["state"][pid][key]))
    np.testing.assert_array_equal(b.providers["rnd"].forward_filter, rnd.forward_filter)
    # the next update from either is the same
    a.providers["rnd"].update(obs, 1, 8, np.random.default_rng(5))
    b.providers["rnd"].update(obs, 1, 8, np.random.default_rng(5))
    for pa, pb in zip(a.providers["rnd"].predictor.parameters(), b.providers["rnd"].predictor.parameters()):
        assert torch.allclose(pa, pb)
    fresh = _signals(1)
    fresh.providers["rnd"].update(obs, 1, 8, np.random.default_rng(5))  # (a fresh Adam would step elsewhere)
    assert not torch.allclose(
        next(fresh.providers["rnd"].predictor.parameters()), next(a.providers["rnd"].predictor.parameters())
    )


def test_ppo_checkpoint_holds_the_rnd_optimizer(tmp_path):
    from deeprl.checkpoint import load_checkpoint
    from deeprl.train import train

    hp = {"n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1, "reward_signals": {"rnd": {}}}
    run = train(
        "ppo",
        "CartPole-v1",
        log_folder=tmp_path,
        show_progress=False,
        n_timesteps=128,
        overrides={**hp, "checkpoint_every": 1},
    )
    loaded = load_checkpoint(run.run_dir)
    assert loaded is not None
    tensors, state = loaded
    steps = [float(np.asarray(v)) for k, v in tensors.items() if k.startswith("signals.rnd_optim.") and "step" in k]
    assert steps and min(steps) == 4  # 2 rollouts of 64 steps, each one epoch of 2 minibatches of 32
    assert any(np.abs(np.asarray(v)).sum() > 0 for k, v in tensors.items() if k.endswith("exp_avg"))
    assert "rnd" in state["signal_optimizers"]


def test_annealed_intrinsic_weight():
    """`int_coef: lin_X` (the paper variant) weighs the intrinsic advantages X * progress_remaining: at the run's end
    the policy's advantage is the extrinsic one alone, 2 x its GAE; a number keeps the weight; the key is checked."""
    from gymnasium import spaces

    from deeprl.policies import build_policy
    from deeprl.rewards import RewardSignals
    from deeprl.rollout import RolloutBuffer

    obs_space, act_space = spaces.Box(-1, 1, (6,), np.float32), spaces.Discrete(3)
    policy = build_policy(obs_space, act_space, {"net_arch": [16]}, device="cpu", fast=False)
    rng = np.random.default_rng(0)
    buffer = RolloutBuffer(8, 2, obs_space, act_space, device="cpu")
    buffer.obs[:] = rng.normal(size=buffer.obs.shape)
    buffer.rewards[:] = rng.normal(size=buffer.rewards.shape)
    buffer.values[:] = rng.normal(size=buffer.values.shape)
    last_obs, last_values = rng.normal(size=(2, 6)).astype(np.float32), np.zeros(2, np.float32)

    def advantages(coef, progress: float) -> np.ndarray:
        torch.manual_seed(0)
        cfg = parse_reward_signals({"rnd": {"variant": "paper", "int_coef": coef}})
        signals = RewardSignals(cfg, policy, 6, act_space)
        signals.process(buffer, last_values, last_obs, 0.99, 0.95, "cpu", progress_remaining=progress)
        return buffer.advantages.copy()

    ext, _ = signal_advantages(
        [
            {
                "rewards": buffer.rewards,
                "values": buffer.values,
                "last_values": last_values,
                "gamma": 0.99,
                "episodic": True,
            }
        ],
        buffer.dones,
        0.95,
        [2.0],
    )
    np.testing.assert_allclose(advantages("lin_1.0", 0.0), ext, rtol=1e-5, atol=1e-6)
    assert not np.allclose(advantages("lin_1.0", 1.0), ext)
    np.testing.assert_allclose(advantages("lin_1.0", 0.5), advantages(0.5, 0.3), rtol=1e-5, atol=1e-6)
    for bad in ({"variant": "paper", "int_coef": "lin_x"}, {"int_coef": 0.5}):
        with pytest.raises(UserError, match="int_coef"):
            parse_reward_signals({"rnd": bad})
