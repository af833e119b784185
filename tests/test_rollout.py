"""Shared on-policy building blocks: GAE, rollout collection with truncation bootstrap, normalization,
optimizer checkpoints, the native vector CartPole."""

import numpy as np
import pytest
import torch

from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from deeprl.envs.vector import make_vec_env
from deeprl.errors import UserError
from deeprl.normalize import Normalizer, RunningMeanStd, parse_normalize
from deeprl.rollout import Collector, RolloutBuffer, compute_gae


def test_gae_matches_hand_computation():
    # one env, 3 steps, the episode ends after step 1; gamma 0.9, lambda 0.8, V(s_3) = 0.2
    rewards = np.array([[1.0], [1.0], [1.0]], np.float32)
    values = np.array([[0.5], [0.4], [0.3]], np.float32)
    dones = np.array([[False], [True], [False]])
    adv, ret = compute_gae(rewards, values, dones, np.array([0.2], np.float32), 0.9, 0.8)
    # t=2: 1 + 0.9*0.2 - 0.3 = 0.88
    # t=1: episode ends: 1 - 0.4 = 0.6 (nothing flows back from t=2)
    # t=0: delta = 1 + 0.9*0.4 - 0.5 = 0.86; A = 0.86 + 0.9*0.8*0.6 = 1.292
    np.testing.assert_allclose(adv[:, 0], [1.292, 0.6, 0.88], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [1.792, 1.0, 1.18], rtol=1e-6)


def test_gae_lambda_one_is_discounted_return_minus_value():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(5, 2)).astype(np.float32)
    v = rng.normal(size=(5, 2)).astype(np.float32)
    adv, ret = compute_gae(r, v, np.zeros((5, 2), bool), np.zeros(2, np.float32), 0.5, 1.0)
    g = np.zeros(2)
    for t in range(4, -1, -1):
        g = r[t] + 0.5 * g
        np.testing.assert_allclose(ret[t], g, rtol=1e-5)


class _ConstPolicy:
    """Always action 0, value 2.0, log_prob 0: lets the test see exactly what the collector stores."""

    def act(self, obs):
        n = obs.shape[0]
        return torch.zeros(n, dtype=torch.long), torch.full((n,), 2.0), torch.zeros(n)

    def value(self, obs):
        return torch.full((obs.shape[0],), 2.0)


def test_truncation_bootstraps_from_final_obs():
    # CartPole's time limit, shortened: every episode is cut at 5 steps, never terminated under the 0-1-0-1 ...
    # policy? Use a 3-step limit so no pole can fall before it.
    import gymnasium as gym

    venv = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1", max_episode_steps=3)] * 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    col = Collector(venv, None, gamma=0.5, seed=0)
    buf = RolloutBuffer(4, 2, venv.single_observation_space, venv.single_action_space)
    col.collect(_ConstPolicy(), buf)
    # step index 2 ends each episode by truncation: reward 1 + 0.5 * V(final_obs) = 2
    np.testing.assert_array_equal(buf.dones[:, 0], [False, False, True, False])
    np.testing.assert_allclose(buf.rewards[:, 0], [1.0, 1.0, 2.0, 1.0])
    assert col.stats.episodes == 2 and list(col.stats.recent_returns) == [3.0, 3.0]
    venv.close()


def test_native_cartpole_resets_in_the_same_step():
    venv = make_vec_env("CartPole-v1", 4, seed=0, vectorization="native")
    assert venv.metadata["autoreset_mode"].name == "SAME_STEP"
    obs, _ = venv.reset(seed=0)
    ended = 0
    for _ in range(200):
        prev = obs
        obs, reward, term, trunc, info = venv.step(np.zeros(4, np.int64))
        assert (reward == 1.0).all()  # no dummy zero-reward reset transitions
        done = term | trunc
        if done.any():
            ended += done.sum()
            assert "final_obs" in info
            # the fresh episode starts near the origin; the final obs is where the pole fell
            assert (np.abs(obs[done]) <= 0.05).all()
            assert (np.abs(info["final_obs"][done][:, 2]) > 0.2).all()
        else:
            assert np.allclose(obs[:, 0], prev[:, 0] + 0.02 * prev[:, 1], atol=1e-5)
    assert ended > 0
    with pytest.raises(AssertionError):  # actions are still checked, by the wrapper instead of the core
        venv.step(np.full(4, 2))
    with pytest.raises(UserError, match="no native"):
        make_vec_env("LunarLander-v2", 2, vectorization="native")


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, size=(300, 3))
    rms = RunningMeanStd((3,), epsilon=0.0)
    for chunk in np.split(data, [10, 110, 111]):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-10)


def test_normalizer_obs_reward_dict_and_roundtrip():
    import gymnasium as gym

    space = gym.spaces.Dict({"a": gym.spaces.Box(-1e3, 1e3, (2,)), "b": gym.spaces.Box(-1e3, 1e3, (1,))})
    norm = Normalizer(space, gamma=0.9, n_envs=2)
    rng = np.random.default_rng(0)
    for _ in range(50):
        out = norm.obs({"a": rng.normal(100, 5, (2, 2)), "b": rng.normal(-7, 1, (2, 1))})
        scaled = norm.reward(np.array([10.0, 10.0]), np.array([False, False]))
    assert abs(out["a"].mean()) < 3 and out["a"].dtype == np.float32
    assert norm.obs({"a": np.full((1, 2), 1e6), "b": np.zeros((1, 1))})["a"].max() == 10.0  # clip_obs
    assert np.all(np.abs(scaled) < 10.0)
    # statistics survive a save/load, and a frozen copy does not move
    frozen = Normalizer.from_config(space, norm.config(), norm.state_dict())
    x = {"a": np.array([[101.0, 99.0]]), "b": np.array([[-7.0]])}
    np.testing.assert_allclose(frozen.obs(x)["a"], norm.obs(x, update=False)["a"])
    before = frozen.obs_rms["a"].mean.copy()
    frozen.obs(x)
    np.testing.assert_array_equal(frozen.obs_rms["a"].mean, before)
    assert parse_normalize("dict(norm_obs=True, norm_reward=False)") == {"norm_obs": True, "norm_reward": False}
    with pytest.raises(UserError):
        parse_normalize({"norm_ob": True})


def test_optimizer_state_roundtrips_through_tensors():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    tensors, state = optimizer_to_tensors(opt)
    import json

    state = json.loads(json.dumps(state))  # it really is JSON
    tensors = {k: v.numpy() for k, v in tensors.items()}
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(net.state_dict())
    opt2 = torch.optim.Adam(net2.parameters(), lr=5.0)
    optimizer_from_tensors(opt2, tensors, state)
    assert opt2.param_groups[0]["lr"] == 1e-3
    x = torch.randn(4, 3)
    for o, n in ((opt, net), (opt2, net2)):
        o.zero_grad()
        n(x).pow(2).sum().backward()
        o.step()
    for p, q in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(p, q)


def test_worker_processes_step_the_same_episodes_as_sync():
    runs = {}
    for vec in ("sync", "workers"):
        venv = make_vec_env("LunarLander-v2", 4, seed=3, vectorization=vec)
        rng = np.random.default_rng(0)
        trace, finals = [], 0
        for _ in range(120):
            obs, reward, term, trunc, info = venv.step(rng.integers(0, 4, 4))
            trace.append((obs.copy(), reward.copy(), term | trunc))
            if "final_obs" in info:
                finals += 1
                assert all((info["final_obs"][i] is not None) == bool(d) for i, d in enumerate(term | trunc))
        venv.close()
        runs[vec] = (trace, finals)
    assert runs["sync"][1] == runs["workers"][1] > 0
    for (o1, r1, d1), (o2, r2, d2) in zip(runs["sync"][0], runs["workers"][0]):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)


def test_worker_shares_step_a_native_env_as_it_steps_alone():
    """vectorization workers over an env with a native vector env (Huggy's dogs): the acting process's share and
    the worker's share together give what the native env gives for the same seeds and actions."""
    runs = {}
    actions = np.random.default_rng(0).uniform(-1, 1, size=(6, 3, 8))
    for vec in ("native", "workers"):
        venv = make_vec_env("Huggy", 3, seed=4, vectorization=vec)
        assert type(venv).__name__ == {"native": "HuggyVectorEnv", "workers": "WorkerVectorEnv"}[vec]
        obs0 = venv.reset(seed=4)[0]
        runs[vec] = [obs0] + [venv.step(a)[:2] for a in actions]
        venv.close()
    np.testing.assert_array_equal(runs["native"][0], runs["workers"][0])
    for (o1, r1), (o2, r2) in zip(runs["native"][1:], runs["workers"][1:]):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)


def test_env_workers_leave_ctrl_c_to_the_trainer():
    """A Ctrl-C reaches every process of the group; env workers ignore it and go on stepping until the trainer,
    which acts on it (a checkpoint, its one message), closes them."""
    import os
    import signal

    venv = make_vec_env("LunarLander-v2", 4, seed=0, vectorization="workers")
    try:
        assert venv.procs
        for proc in venv.procs:
            os.kill(proc.pid, signal.SIGINT)
        for _ in range(3):
            obs = venv.step(np.zeros(4, dtype=np.int64))[0]
        assert obs.shape == (4, 8)
        assert all(proc.is_alive() for proc in venv.procs)
    finally:
        venv.close()
    assert not any(proc.is_alive() for proc in venv.procs)


@pytest.mark.parametrize("case", ["workers", "numpy acting"])
def test_collection_leaves_the_other_cores_to_env_workers(case):
    """With the envs in worker processes (steps_elsewhere), or with the policy acting through numpy on a handful of
    rows, the acting process runs torch and BLAS on one thread while it collects (a second one would spin against
    the env's stepping on the other core), and gets its thread counts back after."""
    import gymnasium as gym
    from threadpoolctl import threadpool_info

    from deeprl.nets import set_threads
    from deeprl.policies import build_policy

    seen = []

    class Elsewhere(gym.vector.SyncVectorEnv):
        steps_elsewhere = case == "workers"

        def step(self, actions):
            blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
            seen.append((torch.get_num_threads(), max(blas)))
            return super().step(actions)

    venv = Elsewhere([lambda: gym.make("CartPole-v1")] * 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    policy = _ConstPolicy()
    if case == "numpy acting":
        policy = build_policy(venv.single_observation_space, venv.single_action_space, {}, fast=True)
        assert policy.fast is not None
    before = torch.get_num_threads()
    set_threads(2)
    try:
        col = Collector(venv, None, gamma=0.5, seed=0)
        col.collect(policy, RolloutBuffer(3, 2, venv.single_observation_space, venv.single_action_space))
        assert seen == [(1, 1)] * 3
        assert torch.get_num_threads() == 2
        assert max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas") == 2
    finally:
        set_threads(before)
        venv.close()
